"""The message model."""

from __future__ import annotations

import pytest

from hekapy.collector.engine.message import (
    BOOL,
    BYTES,
    DOUBLE,
    INTEGER,
    STRING,
    Field,
    Message,
    new_record_message,
    uuid_text,
)


def test_defaults():
    m = Message()
    assert m.severity == 7 and m.pid is None
    assert (m.type, m.logger, m.payload, m.env_version, m.hostname) == ("", "", "", "", "")
    assert m.fields == [] and m.timestamp > 1_600_000_000 * 10**9


def test_uuid_is_v4_lazy_and_stable():
    m = Message()
    u = m.uuid
    assert len(u) == 16 and u == m.uuid
    assert u[6] >> 4 == 4 and u[8] >> 6 == 2
    t = m.uuid_text
    assert len(t) == 36 and t == t.lower() and t.count("-") == 4
    assert uuid_text(b"short") == ""
    assert Message().uuid != u


def test_field_types_inferred_and_repeated_names_kept():
    m = Message()
    m.add_field("s", "x", "uri")
    m.add_field("n", 3)
    m.add_field("f", 1.5, "ms")
    m.add_field("b", True)
    m.add_field("raw", b"\x00\x01")
    m.add_field("s", ["y", "z"])
    assert [(f.name, f.value_type) for f in m.fields] == [
        ("s", STRING), ("n", INTEGER), ("f", DOUBLE), ("b", BOOL), ("raw", BYTES),
        ("s", STRING)]
    assert m.get_field("s") == "x"
    assert m.get_field("s", fi=1, ai=1) == "z"
    assert m.get_field("s", fi=2) is None and m.get_field("missing", 0) == 0
    assert m.find_field("f").representation == "ms"


def test_set_and_delete_field():
    m = Message(fields=[Field("a", [1], INTEGER), Field("a", [2], INTEGER)])
    m.set_field("a", 5)
    assert [f.values for f in m.fields] == [[5], [2]]
    assert m.delete_field("a", fi=1) and not m.delete_field("zz")
    assert [f.values for f in m.fields] == [[5]]


def test_copy_is_independent():
    m = Message(type="t", payload="p")
    m.add_field("x", [1, 2])
    c = m.copy()
    assert c == m
    c.fields[0].values.append(3)
    c.type = "other"
    assert m.fields[0].values == [1, 2] and m.type == "t"


def test_unsupported_value_type():
    with pytest.raises(TypeError):
        Field.of("x", object())
    with pytest.raises(ValueError):
        Field.of("x", [])


def test_as_dict_is_json_friendly():
    m = Message(type="t", pid=None)
    m.add_field("raw", b"\xffab")
    d = m.as_dict()
    assert d["Pid"] == 0 and d["Severity"] == 7
    assert d["Fields"] == [{"name": "raw", "value_type": "BYTES", "representation": "",
                            "value": ["\ufffdab"]}]


def test_new_record_message_equals_keyword_construction():
    fast = new_record_message(5, "logfile", "nova", "host", "line\n")
    slow = Message(timestamp=5, type="logfile", logger="nova", hostname="host",
                   payload="line\n", uuid=fast.uuid)
    assert fast == slow and fast.raw is None and fast.pid is None
    for slot in Message.__slots__:  # every slot is set by the fast constructor
        getattr(fast, slot)


def test_uuid_text_follows_the_uuid():
    # The text is kept with the bytes it came from; every way the Uuid is set shows.
    m = new_record_message(5, "logfile", "nova", "host", "line\n")
    lazy = m.uuid_text
    assert lazy == m.uuid_text and len(lazy) == 36
    m.uuid = bytes(range(16))
    assert m.uuid_text == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    m.uuid = bytes(range(1, 17))
    assert m.uuid_text == "01020304-0506-0708-090a-0b0c0d0e0f10"
    m._uuid = bytes(16)  # as the disk buffer's reader and the sandbox set it
    assert m.uuid_text == "00000000-0000-0000-0000-000000000000"
    m._uuid = None  # lazy again: a new random Uuid
    assert m.uuid_text not in (lazy, "00000000-0000-0000-0000-000000000000")
    assert m.uuid_text == uuid_text(m.uuid)
