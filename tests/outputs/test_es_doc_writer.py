"""The typed Elasticsearch item writer (outputs/elasticsearch/es_doc_writer.pyx) against
its reference, ESJsonEncoder's Python code: the same bytes for the corpus, for the
lines a log file can hold besides (invalid UTF-8, control characters, a 300 kB line, a
line with no oslo.log header) and for every kind of field value; where the writer
declines (None), the encoder's reference gives the item."""

from __future__ import annotations

import importlib
import math
import uuid
from types import SimpleNamespace

import pytest

from hekapy.benchmarks.corpus import OSLO_FILES, Corpus
from hekapy.collector import compiled
from hekapy.collector.catalog import load_all
from hekapy.collector.engine.message import (
    BOOL,
    BYTES,
    DOUBLE,
    INTEGER,
    STRING,
    Field,
    Message,
    new_record_message,
)
from hekapy.collector.engine.plugin import DecodeError
from hekapy.outputs.elasticsearch import es_json
from hekapy.outputs.elasticsearch.es_json import ESJsonEncoder
from tests.helpers.plugins import make_plugin
from tests.tools.hot_path_digest import ODD_LINES

WRITER = "hekapy.outputs.elasticsearch.es_doc_writer"
LMA = {"index": "%{Type}-%{%Y.%m.%d}", "es_index_from_timestamp": True, "type_name": "",
       "id": "%{UUID}"}
UUID = uuid.UUID("3d9b6c2e-7f41-4a0b-9e25-c18d0f6a7b34").bytes


@pytest.fixture
def typed(monkeypatch):
    """ESJsonEncoder with the typed writer, whatever HEKAPY_PURE says (the test's point
    is to compare the two; the module has no Python twin HEKAPY_PURE could select)."""
    module = importlib.import_module(WRITER)
    assert compiled.is_compiled(module)
    monkeypatch.setattr(es_json, "_doc_writer", module)

    def make(**options) -> ESJsonEncoder:
        enc = make_plugin(ESJsonEncoder, **options)
        assert enc._writer is not None
        return enc
    return make


def same(enc: ESJsonEncoder, msg: Message) -> bool:
    """The encoder gives the reference's bytes; True when the typed writer wrote them."""
    expected = enc.reference_encode(msg)
    assert enc.encode(msg) == expected
    return enc._writer.encode(enc._head(msg) if enc._id_is_uuid else
                              enc.action(msg, "\n"), msg) is not None


def decoded(lines: list[bytes]) -> list[Message]:
    cls = load_all()["OpenStackLogDecoder"]
    options = {k: o.default_value() for k, o in cls.all_options().items()}
    decoder = cls("diff", SimpleNamespace(**{**options, "tz": "UTC"}))
    out: list[Message] = []
    for n, raw in enumerate(lines):
        msg = new_record_message(10**18, "logfile", "nova_api" if n % 2 else "neutron_lbaas",
                                 "node-1", raw.decode("utf-8", "replace"))
        msg.uuid = n.to_bytes(16, "big")
        try:
            got = decoder.decode(msg)
        except DecodeError:
            continue
        if got is not None:
            out.append(got)
    return out + decoder.flush()


@pytest.mark.parametrize("options", [LMA, {}, {"fields": [
    "DynamicFields", "Hostname", "Logger", "Payload", "Pid", "Severity", "Timestamp",
    "Type"], "timestamp": "%Y-%m-%dT%H:%M:%S%z", **LMA}], ids=["lma", "defaults", "lma-fields"])
def test_corpus_and_odd_lines_give_the_reference_bytes(typed, options):
    corpus = Corpus(seed=5)
    lines = [corpus.oslo_event(path).encode() for path in OSLO_FILES for _ in range(400)]
    lines += [*ODD_LINES, b"\x00\x1f\x7f\x80 only control and stray bytes\n",
              b"2026-11-30 07:00:01 1 INFO m [-] \xed\xa0\x80 surrogate bytes\n"]
    enc = typed(**options)
    msgs = decoded(lines)
    assert len(msgs) > 1500
    written = [same(enc, m) for m in msgs]
    assert all(written)  # nothing in a log line needs the reference
    payloads = b"".join(enc.encode(m) for m in msgs)
    assert b"x" * 300_000 in payloads and b"\\u0001" in payloads and b"\xef\xbf\xbd" in payloads


def message(fields: list[Field], **headers) -> Message:
    base = dict(uuid=UUID, timestamp=1631801272 * 10**9 + 5, type="log",
                logger="openstack.nova", severity=6, payload="a line\n", pid=2203,
                hostname="node-1")
    return Message(**{**base, **headers}, fields=fields)


FLOATS = [0.0, -0.0, 1.0, -2.5, 0.5910681, 1e-05, 0.0001, 123456.0, 1234567.0, 1e21,
          1.5e16, 1 / 3, -1e-300, 5e-324, 1.7976931348623157e308, math.nan, math.inf,
          -math.inf, 100.0, 10.25, 0.001]


@pytest.mark.parametrize("fields", [
    [Field("n", [v], DOUBLE)] for v in FLOATS] + [
    [Field("many", [1.5, -0.0, 2e-7], DOUBLE)],
    [Field("i", [0], INTEGER), Field("j", [-(2**63)], INTEGER), Field("k", [2**63 - 1], INTEGER)],
    [Field("ints", [1, -2, 30], INTEGER), Field("none", [], STRING)],
    [Field("b", [True], BOOL), Field("bs", [False, True], BOOL)],
    [Field("s", ["x", 'q"uote', "back\\slash", "tab\tnl\n", "été ☃ \u2028", "\x7f"], STRING)],
    [Field('na"me\n', ["v"], STRING), Field("dup", ["1"], STRING), Field("dup", ["2"], STRING)],
    [Field("dotted.name", ["v"], STRING), Field("ünï", ["ok"], STRING)],
], ids=[f"double-{v!r}" for v in FLOATS] + [
    "doubles", "int64-edges", "ints-and-empty", "bools", "strings", "odd-names", "names"])
def test_field_values_give_the_reference_bytes(typed, fields):
    assert same(typed(**LMA), message(fields))
    assert same(typed(), message(fields))


@pytest.mark.parametrize("msg", [
    message([Field("big", [2**63], INTEGER)]),
    message([Field("neg", [-(2**63) - 1], INTEGER)]),
    message([Field("flag", [True], INTEGER)]),
    message([Field("raw", [b"\x00bytes"], BYTES)]),
    message([Field("raw", [b"a", b"b"], BYTES)]),
    message([Field("int-typed", ["7"], INTEGER)]),
    message([Field("not-str", [7], STRING)]),
    message([], payload="lone \udcff surrogate"),
    message([Field("s", ["\ud800"], STRING)]),
    message([], uuid=b"short"),
    message([], pid=2**70),
], ids=["int-2^63", "int-below", "bool-int", "bytes", "bytes-several", "int-of-str",
        "str-of-int", "surrogate-payload", "surrogate-field", "short-uuid", "huge-pid"])
def test_what_only_the_reference_writes_falls_back_to_it(typed, msg):
    enc = typed(**LMA)
    try:
        expected = enc.reference_encode(msg)
    except Exception as e:  # the reference's own error must stay the encoder's
        with pytest.raises(type(e)):
            enc.encode(msg)
        return
    assert enc.encode(msg) == expected
    assert not same(enc, msg)


def test_headers_odd_values_and_mappings(typed):
    enc = typed(field_mappings={"Payload": 'msg"x', "Timestamp": "@timestamp"}, id="%{Logger}",
                index="a-%{Hostname}")
    for msg in [message([], pid=None, hostname='h"\x01', logger="ünï\ncode", type="",
                        env_version="0.8", payload=""),
                message([], timestamp=-1), message([], timestamp=-1_000_000_001),
                message([], severity=-3, pid=0)]:
        assert same(enc, msg)


def test_a_message_without_uuid_gets_the_same_one_in_action_and_document(typed):
    enc = typed(**LMA)
    msg = new_record_message(10**18, "log", "l", "h", "p")
    item = enc.encode(msg)
    assert item == enc.reference_encode(msg)
    assert item.count(msg.uuid_text.encode()) == 2


def test_pure_selects_the_reference(monkeypatch):
    monkeypatch.setenv(compiled.PURE_ENV, WRITER)
    assert compiled.typed_module(WRITER) is None
    monkeypatch.setenv(compiled.PURE_ENV, "1")
    assert compiled.typed_module(WRITER) is None
    monkeypatch.delenv(compiled.PURE_ENV)
    assert compiled.typed_module(WRITER) is not None


def test_a_huge_item_then_small_ones(typed):
    # The buffer grows for the 3 MiB item and shrinks after it; the next items are whole.
    enc = typed(**LMA)
    for msg in [message([], payload="é" * 1_500_000), message([Field("a", ["b"], STRING)]),
                message([], payload="x" * 70_000 + "\n")]:
        assert same(enc, msg)


def test_a_reentrant_call_gets_none_and_the_outer_item_stays_whole(typed):
    # A callback the writer makes (here render_time) that encodes again, as another
    # thread could during a Python-level property: the buffer is in use.
    module = importlib.import_module(WRITER)
    enc = typed(**LMA)
    inner: list = []

    def render_time(ns: int) -> str:
        inner.append(writer.encode("head", message([])))
        return enc.render_time(ns)

    members = [(module.TIMESTAMP, '"Timestamp":'), (module.PAYLOAD, '"Payload":')]
    writer = module.DocumentWriter(members, render_time, False)
    item = writer.encode("head\n", message([]))
    assert inner == [None]
    assert item == b'head\n{"Timestamp":"2021-09-16T14:07:52","Payload":"a line\\u000a"}\n'
