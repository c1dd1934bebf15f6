"""ESJsonEncoder / ESLogstashV0Encoder against docs/compatibility.md, "Elasticsearch
encoders" (the documented output of
https://hekad.readthedocs.io/en/v0.10.0/config/encoders/esjson.html and
https://hekad.readthedocs.io/en/v0.10.0/config/encoders/eslogstashv0.html, on a Keystone
log message written for these tests), Go float formatting, escaping, interpolation, and
valid NDJSON for any message (hypothesis)."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import OptionError
from hekapy.outputs.elasticsearch.es_encoder import doc_string, go_float
from hekapy.outputs.elasticsearch.es_json import ESJsonEncoder
from hekapy.outputs.elasticsearch.es_logstash_v0 import ESLogstashV0Encoder
from tests.helpers.plugins import make_plugin

UUID = uuid.UUID("3d9b6c2e-7f41-4a0b-9e25-c18d0f6a7b34").bytes
TS = 1631801272 * 10**9  # 2021-09-16T14:07:52Z


def keystone_message() -> Message:
    """A Keystone warning with a string field that needs escaping and an integer one."""
    return Message(uuid=UUID, timestamp=TS, type="log", logger="openstack.keystone",
                   severity=4, payload="Authorization failed", env_version="1.0", pid=2203,
                   hostname="ctl-1",
                   fields=[Field("user", ['ad"min'], STRING),
                           Field("status", [401], INTEGER)])


def lines(data: bytes) -> list[bytes]:
    out = data.split(b"\n")
    assert out[-1] == b"" and len(out) == 3
    return out[:2]


def test_worked_example_of_the_spec():
    enc = make_plugin(ESJsonEncoder)
    action, doc = lines(enc.encode(keystone_message()))
    today = time.strftime("%Y.%m.%d", time.gmtime()).encode()
    assert action == b'{"index":{"_index":"heka-' + today + b'","_type":"message"}}'
    assert doc == (b'{"Uuid":"3d9b6c2e-7f41-4a0b-9e25-c18d0f6a7b34","Timestamp":'
                   b'"2021-09-16T14:07:52","Type":"log","Logger":"openstack.keystone",'
                   b'"Severity":4,"Payload":"Authorization failed","EnvVersion":"1.0",'
                   b'"Pid":2203,"Hostname":"ctl-1","user":"ad\\u0022min","status":401}')


def test_lma_configuration():
    """LMA's ESJsonEncoder settings (docs/compatibility.md, "LMA collectors"): index
    from the message time, second-precision UTC timestamps, LMA's field list; plus the
    idempotent _id hekapy configs use."""
    enc = make_plugin(ESJsonEncoder, index="%{Type}-%{%Y.%m.%d}", es_index_from_timestamp=True,
                      timestamp="%Y-%m-%dT%H:%M:%S%z", id="%{UUID}",
                      fields=["DynamicFields", "Hostname", "Logger", "Payload", "Pid",
                              "Severity", "Timestamp", "Type"])
    m = keystone_message()
    m.type = "Log"
    action, doc = lines(enc.encode(m))
    assert action == (b'{"index":{"_index":"log-2021.09.16","_type":"message",'
                      b'"_id":"3d9b6c2e-7f41-4a0b-9e25-c18d0f6a7b34"}}')
    # DynamicFields first: Heka dropped the commas here; we keep valid JSON.
    assert doc == (b'{"user":"ad\\u0022min","status":401,"Hostname":"ctl-1",'
                   b'"Logger":"openstack.keystone","Payload":"Authorization failed",'
                   b'"Pid":2203,"Severity":4,"Timestamp":"2021-09-16T14:07:52+0000",'
                   b'"Type":"Log"}')


@pytest.mark.parametrize("type_name", ["%{Logger}", "x"])
def test_action_head_follows_the_headers_and_the_second_it_is_cached_by(type_name):
    # The head is cached by the second and Type (and Logger when the type is "%{Logger}"):
    # each change must show.
    enc = make_plugin(ESJsonEncoder, index="%{Type}-%{%Y.%m.%d}", es_index_from_timestamp=True,
                      type_name=type_name)
    seen = []
    for typ, logger, ts in [("log", "a", 0), ("notification", "a", 0), ("log", "a", 0),
                            ("log", "b", 0), ("log", "b", 86_400), ("log", "b", 86_400)]:
        m = keystone_message()
        m.type, m.logger, m.timestamp = typ, logger, ts * 1_000_000_000
        seen.append(lines(enc.encode(m))[0].split(b',"_id"')[0])
    types = [b"a", b"a", b"a", b"b", b"b", b"b"] if type_name != "x" else [b"x"] * 6
    indices = [b"log-1970.01.01", b"notification-1970.01.01", b"log-1970.01.01",
               b"log-1970.01.01", b"log-1970.01.02", b"log-1970.01.02"]
    assert seen == [b'{"index":{"_index":"%s","_type":"%s"}}' % (i, t)
                    for i, t in zip(indices, types, strict=True)]


def test_type_name_empty_omits_type_and_bad_id_omits_id():
    enc = make_plugin(ESJsonEncoder, type_name="", id="%{nope}", index="x-%{Logger}")
    action, _ = lines(enc.encode(keystone_message()))
    assert action == b'{"index":{"_index":"x-openstack.keystone"}}'


def test_index_from_dynamic_field_and_literal_fallback():
    enc = make_plugin(ESJsonEncoder, index="%{user}-%{2006.01.02}", type_name="%{Severity}")
    m = keystone_message()
    m.fields[0] = Field("user", ["Nova"], STRING)
    action, _ = lines(enc.encode(m))
    # The Go-layout form is no strftime format: Heka's constant index name.
    assert action == b'{"index":{"_index":"nova-2006.01.02","_type":"4"}}'


@pytest.mark.parametrize("x,text", [
    (64.0, "64"), (27182.8, "27182.8"), (123456.0, "123456"), (1e6, "1e+06"),
    (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (1e-05, "1e-05"),
    (2718281.0, "2.718281e+06"), (314159265.0, "3.14159265e+08"), (0.1, "0.1"),
    (-2.5, "-2.5"), (0.0, "0"), (1e21, "1e+21"), (123456789012.5, "1.234567890125e+11"),
    (float("nan"), "null"), (float("inf"), "null"), (5e-324, "5e-324"), (100.0, "100"),
    (0.000123, "0.000123"), (999999.0, "999999"),
])
def test_go_float_formatting(x, text):
    assert go_float(x) == text


def test_value_encoding_of_every_type():
    enc = make_plugin(ESJsonEncoder, fields=["DynamicFields"], raw_bytes_fields=["raw"],
                      replace_dots_with="_")
    m = Message(fields=[
        Field("s", ["x\n\t\\é/€"], STRING), Field("many", [1, 2], INTEGER),
        Field("d", [1.5, 1e6], DOUBLE), Field("b", [True], BOOL),
        Field("one_bytes", [b"\xffok"], BYTES), Field("two_bytes", [b"a", b"b"], BYTES),
        Field("raw", ['{"k":1}'], STRING), Field("dotted.name", ["v"], STRING),
        Field("dup", ["1"], STRING), Field("dup", ["2"], STRING)])
    _, doc = lines(enc.encode(m))
    assert doc == ('{"s":"x\\u000a\\u0009\\u005c\u00e9/\u20ac","many":[1,2],'
                   '"d":[1.5,1e+06],"b":true,"one_bytes":"\ufffdok",'
                   '"two_bytes":["YQ==","Yg=="],"raw":{"k":1},"dotted_name":"v",'
                   '"dup":"1","dup":"2"}').encode()


def test_dynamic_fields_filter_and_field_mappings():
    enc = make_plugin(ESJsonEncoder, fields=["Timestamp", "Payload", "DynamicFields"],
                      dynamic_fields=["status"], field_mappings={"Timestamp": "@timestamp",
                                                            "Payload": "message"})
    _, doc = lines(enc.encode(keystone_message()))
    assert doc == (b'{"@timestamp":"2021-09-16T14:07:52","message":"Authorization failed",'
                   b'"status":401}')


def test_bad_options_name_the_key():
    with pytest.raises(OptionError) as e:
        make_plugin(ESJsonEncoder, fields=["Uuid", "Colour"])
    assert e.value.key == "fields"
    with pytest.raises(OptionError) as e:
        make_plugin(ESJsonEncoder, field_mappings={"Colour": "x"})
    assert e.value.key == "field_mappings"


def test_logstash_v0():
    enc = make_plugin(ESLogstashV0Encoder, es_index_from_timestamp=True)
    action, doc = lines(enc.encode(keystone_message()))
    assert action == b'{"index":{"_index":"logstash-2021.09.16","_type":"message"}}'
    assert doc == (b'{"@uuid":"3d9b6c2e-7f41-4a0b-9e25-c18d0f6a7b34",'
                   b'"@timestamp":"2021-09-16T14:07:52","@type":"message",'
                   b'"@logger":"openstack.keystone","@severity":4,'
                   b'"@message":"Authorization failed","@envversion":"1.0","@pid":2203,'
                   b'"@source_host":"ctl-1","@fields":{"user":"ad\\u0022min","status":401}}')
    enc = make_plugin(ESLogstashV0Encoder, use_message_type=True)
    assert b'"@type":"log"' in enc.encode(keystone_message())


def test_escaping_matches_json():
    for text in ['a"b', "\\", "\x00\x1f", "ünïcødé", "</script>", "\u2028"]:
        assert orjson.loads(doc_string(text)) == text


_values = {
    STRING: st.text(max_size=20), INTEGER: st.integers(-2**63, 2**63 - 1),
    DOUBLE: st.floats(), BOOL: st.booleans(), BYTES: st.binary(max_size=20),
}
_field = st.sampled_from(sorted(_values)).flatmap(
    lambda t: st.builds(Field, st.text(max_size=10), st.lists(_values[t], min_size=1,
                                                               max_size=3), st.just(t)))


@settings(max_examples=300, deadline=None)
@given(st.builds(Message, type=st.text(max_size=10), logger=st.text(max_size=10),
                 payload=st.text(max_size=50), hostname=st.text(max_size=10),
                 pid=st.none() | st.integers(0, 2**31), severity=st.integers(0, 7),
                 fields=st.lists(_field, max_size=5)),
       st.sampled_from([ESJsonEncoder, ESLogstashV0Encoder]),
       st.booleans())
def test_always_two_valid_json_lines(msg, cls, dynamic_first):
    fields = ["DynamicFields", "Uuid", "Payload"] if dynamic_first else None
    enc = make_plugin(cls, **({"fields": fields} if fields else {}),
                      index="%{Logger}-%{%Y}", id="%{UUID}")
    action, doc = lines(enc.encode(msg))
    assert orjson.loads(action)["index"]["_id"] == msg.uuid_text
    d = orjson.loads(doc)
    assert isinstance(d, dict)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40) | st.text(max_size=40).map(lambda t: t + "\n"))
def test_fast_paths_escape_exactly_like_the_table(text):
    from hekapy.outputs.elasticsearch.es_encoder import _DOC_ESCAPES
    assert doc_string(text) == '"' + text.translate(_DOC_ESCAPES) + '"'


_names = st.sampled_from(["a", "b.c", "http_status", "Payload", "é", 'q"uote', "back\\slash",
                          "new\nline"])


@settings(max_examples=500, deadline=None)
@given(st.builds(Message, type=st.text(max_size=10), logger=st.text(max_size=10),
                 payload=st.text(max_size=60), hostname=st.text(max_size=10),
                 pid=st.none() | st.integers(0, 2**31), severity=st.integers(0, 7),
                 fields=st.lists(st.one_of(
                     st.builds(Field, _names, st.lists(st.text(max_size=10), min_size=1,
                                                       max_size=2), st.just(STRING)),
                     st.builds(Field, _names, st.lists(st.integers(-2**70, 2**70),
                                                       min_size=1, max_size=2),
                               st.just(INTEGER)),
                     st.builds(Field, _names, st.lists(st.floats(), min_size=1, max_size=2),
                               st.just(DOUBLE)),
                     st.builds(Field, _names, st.lists(st.booleans(), min_size=1),
                               st.just(BOOL))), max_size=5)),
       st.sampled_from(["usual", "raw", "dots"]))
def test_fast_document_equals_the_member_by_member_one(msg, config):
    # "usual" (LMA's): field document values are kept on the Field; the others check
    # names and values for each message.
    keys = {"raw": {"raw_bytes_fields": ["http_status"]},
            "dots": {"replace_dots_with": "_"}}.get(config, {})
    enc = make_plugin(ESJsonEncoder, **keys)
    fast = enc.fast_document(msg)
    if fast is not None:
        assert fast == enc.slow_document(msg)


def test_a_mapped_name_with_a_quote_is_escaped_in_hekas_way():
    # orjson's fast path would write \" here; Heka's escaping is \u0022.
    enc = make_plugin(ESJsonEncoder, field_mappings={"Payload": 'msg"x'})
    assert b'"msg\\u0022x":"Authorization failed"' in enc.encode(keystone_message())
