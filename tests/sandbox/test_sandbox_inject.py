"""inject_message's typing rules (docs/compatibility.md, "Lua sandbox"): hash and array
Fields, value /
representation tables, arrays, headers, the protobuf-string form and decode_message,
and what each plugin kind does with an injected message."""

from __future__ import annotations

import pytest

from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import DecodeError
from hekapy.collector.engine.protobuf import decode_message, encode_message
from hekapy.collector.sandbox.api import derived_uuid, format_number
from tests.helpers.paths import LUA
from tests.helpers.plugins import CollectOutput, ScriptInput, config_from
from tests.helpers.wait import wait_for

SCRIPT = LUA / "inject_types.lua"
RECORD_UUID = bytes(range(16))


@pytest.fixture
def dec(tmp_path):
    cfg = config_from(tmp_path, f"""
        [dec]
        type = "SandboxDecoder"
        filename = "{SCRIPT}"
    """)
    return Pipeline(cfg).build_plugin("dec", "Decoder")


def run(dec, case: str, **headers) -> list[Message]:
    rec = Message(uuid=RECORD_UUID, timestamp=5_000, type="logfile", logger="src",
                  hostname="node-1", severity=6, pid=99, payload=case, **headers)
    out = dec.decode(rec)
    return out if isinstance(out, list) else [out]


def by_name(m: Message) -> dict[str, Field]:
    return {f.name: f for f in m.fields}


def test_scalars_strings_numbers_booleans(dec):
    [m] = run(dec, "scalars")
    assert by_name(m) == {
        "s": Field("s", ["text"], STRING),
        "n": Field("n", [42.0], DOUBLE),  # a Lua number is a DOUBLE...
        "f": Field("f", [1.5], DOUBLE),
        "b": Field("b", [True], BOOL),
        "no": Field("no", [False], BOOL),
    }
    assert isinstance(by_name(m)["n"].values[0], float)


def test_value_tables_with_value_type_and_representation(dec):
    [m] = run(dec, "typed")
    assert by_name(m) == {
        "i": Field("i", [42], INTEGER, "count"),  # ...unless value_type = 2 (truncated)
        "neg": Field("neg", [-7], INTEGER),
        "raw": Field("raw", [b"\x00\x01\xff"], BYTES),
        "d": Field("d", [3.0], DOUBLE, "ms"),
        "s": Field("s", ["x"], STRING, "uri"),
        "flag": Field("flag", [True], BOOL),
    }


def test_arrays(dec):
    [m] = run(dec, "arrays")
    assert by_name(m) == {
        "names": Field("names", ["a", "b", "c"], STRING),
        "nums": Field("nums", [1.0, 2.5, 3.0], DOUBLE),
        "ints": Field("ints", [1, 2, 3], INTEGER, "B"),
        "flags": Field("flags", [True, False], BOOL),
    }  # an empty table makes no field


def test_array_form_keeps_order_and_repeated_names(dec):
    [m] = run(dec, "array_form")
    assert m.fields == [Field("first", ["1"], STRING), Field("second", [2], INTEGER, "B"),
                        Field("first", ["again"], STRING), Field("list", ["x", "y"], STRING)]


def test_headers_from_the_table(dec):
    [m] = run(dec, "headers")
    assert (m.uuid, m.timestamp, m.type, m.logger, m.hostname, m.severity, m.pid,
            m.env_version, m.payload) == (b"0123456789abcdef", 1_500_000_000_000_000_000,
                                          "headers", "my-logger", "my-host", 3, 77, "2",
                                          "the payload")


def test_decoder_copies_the_headers_the_table_leaves_out(dec):
    [m] = run(dec, "defaults")
    # Uuid "too short" is not 16 bytes: ignored, so the record's Uuid is kept.
    assert (m.uuid, m.timestamp, m.type, m.logger, m.hostname, m.severity, m.pid) == (
        RECORD_UUID, 5_000, "defaults", "src", "node-1", 6, 99)


def test_two_messages_from_one_record_get_stable_uuids(dec):
    first = run(dec, "two")
    again = run(dec, "two")
    assert [m.type for m in first] == ["one", "two"]
    assert [m.uuid for m in first] == [RECORD_UUID, derived_uuid(RECORD_UUID, 1)]
    assert [m.uuid for m in again] == [m.uuid for m in first]


@pytest.mark.parametrize("case, error", [
    ("mixed", "inject_message() field 'bad': array has mixed types"),
    ("inconsistent", "inject_message() field 'bad': value_type 2 does not fit a Lua string"),
    ("unsupported", "inject_message() field 'bad': unsupported value type"),
])
def test_typing_errors_are_lua_errors_at_the_call(dec, case, error):
    # Called through pcall (a C function) the error has no script position; called
    # directly it has one (see test_filter_inject_limit_terminates).
    with pytest.raises(DecodeError) as e:
        run(dec, case)
    assert str(e.value).startswith(error)
    [m] = run(dec, "scalars")  # the script caught them with pcall: still running
    assert m.type == "scalars"


def test_decode_message_then_inject_the_table(dec):
    original = Message(uuid=RECORD_UUID, timestamp=7, type="orig", logger="lg",
                       hostname="h", severity=2, pid=5, env_version="1",
                       payload="roundtrip", fields=[
                           Field("s", ["a", "b"], STRING, "rep"), Field("i", [1, 2], INTEGER),
                           Field("d", [0.5], DOUBLE), Field("b", [True], BOOL),
                           Field("by", [b"\x00"], BYTES)])
    original.raw = encode_message(original)
    out = dec.decode(original)
    [m] = out
    assert (m.uuid, m.timestamp, m.type, m.logger, m.hostname, m.severity, m.pid,
            m.env_version, m.payload) == (RECORD_UUID, 7, "copy of orig", "lg", "h", 2, 5,
                                          "1", "roundtrip")
    assert m.fields == [*original.fields, Field("copied", [True], BOOL)]


def test_inject_a_protobuf_string(dec):
    original = Message(uuid=RECORD_UUID, timestamp=7, type="pb", logger="lg",
                       payload="protobuf", fields=[Field("n", [3], INTEGER)])
    [m] = dec.decode(original)
    assert m == original and m is not original


async def test_filter_prefixes_type_and_sets_logger_and_hostname(tmp_path):
    cfg = config_from(tmp_path, f"""
        [hekad]
        hostname = "collector-1"
        max_process_inject = 2
        [src]
        type = "ScriptInput"
        [typing]
        type = "SandboxFilter"
        filename = "{SCRIPT}"
        message_matcher = "Type == ''"
        [sink]
        type = "CollectOutput"
        message_matcher = "Type =~ /^heka\\\\.sandbox\\\\./"
    """)
    ScriptInput.script = [["headers"], ["two"]]
    ScriptInput.linger = False
    p = Pipeline(cfg)
    await p.start()
    sink = CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) == 3, "three injected messages")
    await p.stop()
    m = sink.messages[0]
    # The table said Logger my-logger and Hostname my-host: a filter cannot choose them.
    assert (m.type, m.logger, m.hostname, m.severity, m.pid, m.uuid) == (
        "heka.sandbox.headers", "typing", "collector-1", 3, 77, b"0123456789abcdef")
    assert [x.type for x in sink.messages[1:]] == ["heka.sandbox.one", "heka.sandbox.two"]


async def test_filter_inject_limit_terminates(tmp_path):
    cfg = config_from(tmp_path, f"""
        [src]
        type = "ScriptInput"
        [typing]
        type = "SandboxFilter"
        filename = "{SCRIPT}"
        message_matcher = "Type == ''"
        [sink]
        type = "CollectOutput"
        message_matcher = "Type != ''"
    """)
    ScriptInput.script = [["two"]]  # two injections, max_process_inject is 1
    ScriptInput.linger = False
    p = Pipeline(cfg)
    await p.start()
    sink = CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) == 2, "the injection and the termination")
    await p.stop()
    one, dead = sink.messages
    assert one.type == "heka.sandbox.one"
    assert dead.type == "heka.sandbox-terminated"
    assert dead.payload.endswith("process_message() inject_types.lua:81: inject_message() "
                                 "exceeded max_process_inject (1)")


def test_encoder_output_is_the_protobuf_of_the_table(tmp_path):
    cfg = config_from(tmp_path, f"""
        [enc]
        type = "SandboxEncoder"
        filename = "{SCRIPT}"
    """)
    enc = Pipeline(cfg).build_plugin("enc", "Encoder")
    data = enc.encode(Message(payload="array_form", timestamp=1))
    m = decode_message(data)
    assert m.type == "array_form"
    assert [f.name for f in m.fields] == ["first", "second", "first", "list"]


@pytest.mark.parametrize("value, text", [
    (5, b"5"), (-3, b"-3"), (0.5, b"0.5"), (1 / 3, b"0.33333333"), (2.0, b"2"),
    (1e10, b"10000000000"), (float("nan"), b"nan"), (float("-inf"), b"-inf"),
    (-0.125, b"-0.125"),
])
def test_numbers_in_payloads_as_lua_sandbox_writes_them(value, text):
    assert format_number(value) == text
