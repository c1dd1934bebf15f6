"""MetricDecoder (LMA's metric.lua; docs/compatibility.md, "LMA metrics"): bulk metric
messages of the listed Loggers exploded into one metric per point, everything else
passed through unchanged.

The vectors are written from metric.lua's behaviour (docs/compatibility.md); the HTTP
response-time point and its InfluxDB line come from
tests/data/lma/http_metrics_aggregator.json (LMA's vector files, provenance inside)."""

from __future__ import annotations

import json
import textwrap

import pytest

from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.contexts import add_tags, deployment_tag_fields
from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message, new_record_message
from hekapy.collector.engine.plugin import DecodeError
from hekapy.collector.engine.protobuf import encode_message
from hekapy.decoders.metric import MetricDecoder
from hekapy.outputs.influxdb.line_protocol import message_points
from tests.helpers.paths import LMA_DATA
from tests.helpers.plugins import make_plugin, write_config

LMA_LOGGERS = "aggregated_http_metrics_filter hdd_errors_counter_filter logs_counter_filter"
TS = 1_480_000_000_123_456_789


def decoder(loggers: str | list[str] = LMA_LOGGERS) -> MetricDecoder:
    d = make_plugin(MetricDecoder, "metric_decoder",
                    deserialize_bulk_metric_for_loggers=MetricDecoder.options[
                        "deserialize_bulk_metric_for_loggers"].convert(loggers))
    assert isinstance(d, MetricDecoder)
    return d


def bulk(points: object, logger: str = "aggregated_http_metrics_filter",
         type: str = "heka.sandbox.bulk_metric", hostname: str = "node-1",
         severity: int = 6) -> Message:
    """A bulk metric message as LMA's lma_utils.inject_bulk_metric made it (injected
    by a SandboxFilter, hence the heka.sandbox. prefix and Logger = the filter)."""
    payload = points if isinstance(points, str) else json.dumps(points)
    return Message(timestamp=TS, type=type, logger=logger, severity=severity,
                   hostname=hostname, payload=payload,
                   fields=[Field("hostname", [hostname]), Field("source", ["log_collector"])])


def received(msg: Message) -> Message:
    """What the TcpInput hands the decoder: a fresh message whose raw bytes are the
    frame's body (HekaFramingSplitter, use_message_bytes)."""
    return new_record_message(1, "metric_tcpinput", "metric_tcpinput", "127.0.0.1:40000",
                              "", encode_message(msg))


def fields(m: Message) -> dict[str, tuple[int, list]]:
    return {f.name: (f.value_type, f.values) for f in m.fields}


def test_http_response_times_point_becomes_a_multivalue_metric_and_lmas_line():
    vector = json.loads((LMA_DATA / "http_metrics_aggregator.json").read_text())
    point = vector["expected_bulk_point"]
    out = decoder().decode(received(bulk([point])))
    assert isinstance(out, list) and len(out) == 1
    [m] = out
    assert (m.type, m.logger, m.hostname, m.timestamp, m.severity, m.payload) == (
        "multivalue_metric", "aggregated_http_metrics_filter", "node-1", TS, 6, "")
    f = fields(m)
    assert f["name"] == (STRING, ["openstack_nova_http_response_times"])
    assert f["value_fields"] == (STRING, list(point["values"]))
    for k, v in point["values"].items():
        assert f[k] == (DOUBLE, [float(v)])  # Lua numbers: DOUBLE, 10 → 10.0
    assert f["tag_fields"] == (STRING, ["hostname", "http_method", "http_status"])
    # Fields.hostname is the message's Hostname (the point's "<node>" tag value loses).
    assert f["hostname"] == (STRING, ["node-1"])
    assert f["http_method"] == (STRING, ["GET"]) and f["http_status"] == (STRING, ["2xx"])
    assert "source" not in f  # the bulk message's own fields are not copied
    # The deployment tags the input adds, then the InfluxDB line LMA wrote.
    tags = deployment_tag_fields({"deployment_id": "1", "environment_label": "env-1"})
    add_tags([m], tags, frozenset(t.name for t in tags))
    expected = vector["expected_influxdb_line"].replace("<ms>", str(TS // 1_000_000))
    assert message_points(m) == [expected]


def test_single_values_zero_included_and_points_without_a_hostname_tag():
    points = [
        # logs_counter: every level, zeros included (a 0 is a value: Lua's 0 is true).
        {"name": "log_messages", "value": 0, "tags": {"service": "nova", "level": "debug",
                                                      "hostname": "node-1"}},
        {"name": "log_messages", "value": 0.25, "tags": {"service": "nova", "level": "info",
                                                         "hostname": "node-1"}},
    ]
    out = decoder().decode(received(bulk(points, logger="logs_counter_filter")))
    assert [m.type for m in out] == ["metric", "metric"]
    assert [fields(m)["value"] for m in out] == [(DOUBLE, [0.0]), (DOUBLE, [0.25])]
    assert all(fields(m)["tag_fields"] == (STRING, ["service", "level", "hostname"])
               for m in out)
    assert message_points(out[1]) == [
        f"log_messages,hostname=node-1,level=info,service=nova value=0.250000 "
        f"{TS // 1_000_000}"]
    # hdd_errors_counter's points carry no hostname tag: Fields.hostname is set, but
    # tag_fields lists only the point's own tags, so the series has no hostname tag.
    [hdd] = decoder().decode(received(bulk(
        [{"name": "hdd_errors_rate", "value": 0.1, "tags": {"device": "sda"}}],
        logger="hdd_errors_counter_filter", hostname="cmp-2", severity=7)))
    f = fields(hdd)
    assert (hdd.type, hdd.severity, hdd.hostname) == ("metric", 7, "cmp-2")
    assert f["hostname"] == (STRING, ["cmp-2"]) and f["tag_fields"] == (STRING, ["device"])
    assert message_points(hdd) == [f"hdd_errors_rate,device=sda value=0.100000 "
                                   f"{TS // 1_000_000}"]


def test_every_point_of_a_bulk_message_with_stable_uuids():
    points = [{"name": f"m{i}", "value": i + 1} for i in range(5)]
    msg = bulk(points, type="bulk_metric")  # without the heka.sandbox. prefix too
    first = decoder().decode(received(msg))
    again = decoder().decode(received(msg))
    assert [fields(m)["name"][1] for m in first] == [[f"m{i}"] for i in range(5)]
    assert all(m.timestamp == TS and m.logger == msg.logger for m in first)
    # No tags: no tag_fields field; hostname is there all the same.
    assert all("tag_fields" not in fields(m) and fields(m)["hostname"] == (STRING, ["node-1"])
               for m in first)
    # The same bulk message received twice explodes into the same Uuids.
    assert len({m.uuid for m in first}) == 5
    assert [m.uuid for m in first] == [m.uuid for m in again]
    assert decoder().decode(received(bulk([]))) == []


def test_value_types_and_name_collisions_follow_metric_lua():
    point = {"name": "svc", "values": {"up": True, "state": "ok", "n": [1, 2]},
             "tags": {"name": "not the name", "hostname": "elsewhere", "zone": "az1"}}
    [m] = decoder().decode(received(bulk([point], hostname="ctl-1")))
    f = fields(m)
    assert f["up"] == (BOOL, [True]) and f["state"] == (STRING, ["ok"])
    assert f["n"] == (DOUBLE, [1.0, 2.0])
    # metric.lua assigns name and hostname after the tags: they win.
    assert f["name"] == (STRING, ["svc"]) and f["hostname"] == (STRING, ["ctl-1"])
    assert f["tag_fields"] == (STRING, ["name", "hostname", "zone"])
    assert [x.name for x in m.fields].count("name") == 1


def test_other_messages_pass_through_unchanged():
    d = decoder()
    single = Message(timestamp=TS, type="heka.sandbox.metric", logger="logs_counter_filter",
                     hostname="node-1", severity=6,
                     fields=[Field("name", ["log_messages"]), Field("value", [2.0], DOUBLE)])
    other_logger = bulk([{"name": "x", "value": 1}], logger="some_other_filter")
    for msg in (single, other_logger):
        rec = received(msg)
        out = d.decode(rec)
        assert isinstance(out, Message)
        assert out == msg  # Uuid, headers and fields as sent
        assert encode_message(out) == rec.raw  # byte-exact pass-through
    # Without the key (metric.lua without its config) nothing is exploded.
    assert isinstance(decoder("").decode(received(bulk([{"name": "x", "value": 1}]))),
                      Message)
    # A TOML array of Loggers works too.
    assert len(decoder(["aggregated_http_metrics_filter"]).decode(
        received(bulk([{"name": "x", "value": 1}])))) == 1


@pytest.mark.parametrize("payload, reason", [
    ("not json", "not JSON"),
    ('{"name": "x", "value": 1}', "not a JSON array"),
    ('[{"name": "x"}]', "neither a value nor a table of values"),
    ('[{"name": "x", "value": null}]', "neither a value"),
    ('[{"name": "x", "value": 1}, 3]', "expected a JSON object"),
    ('[{"name": "x", "value": 1, "tags": ["a"]}]', "tags must be a JSON object"),
    ('[{"name": "x", "value": {"deep": 1}}]', "unsupported value"),
])
def test_malformed_bulk_messages_are_decode_failures(payload, reason):
    with pytest.raises(DecodeError, match=reason):
        decoder().decode(received(bulk(payload)))


def test_record_without_message_bytes_is_a_decode_failure():
    with pytest.raises(DecodeError, match="no message bytes"):
        decoder().decode(Message(type="metric_tcpinput", payload="x"))


def test_lmas_sandbox_decoder_section_runs_the_native_decoder(tmp_path):
    conf = write_config(tmp_path, f"""
        [metric_decoder]
        type = "SandboxDecoder"
        filename = "/usr/share/lma_collector/decoders/metric.lua"
        module_directory = "/usr/share/lma_collector_modules;/usr/share/heka/lua_modules"
          [metric_decoder.config]
          deserialize_bulk_metric_for_loggers = "{LMA_LOGGERS}"
        [metric_tcpinput]
        type = "TcpInput"
        address = "127.0.0.1:5567"
        decoder = "metric_decoder"
        splitter = "HekaFramingSplitter"
    """)
    spec = load_config(conf, strict=True).plugins["metric_decoder"]
    assert spec.cls is MetricDecoder
    assert spec.cfg.deserialize_bulk_metric_for_loggers == frozenset(LMA_LOGGERS.split())
    # A misspelt key is an error naming the native decoder's keys, not ignored.
    bad = write_config(tmp_path, conf.read_text().replace(
        "deserialize_bulk_metric_for_loggers", "deserialize_bulk_metrics_for_loggers"),
        "bad.toml")
    errors = load_config(bad).errors
    assert any("deserialize_bulk_metrics_for_loggers" in str(e) and "MetricDecoder" in str(e)
               for e in errors), errors


def test_sample_is_a_working_section(tmp_path):
    sample = MetricDecoder.sample()
    toml = textwrap.dedent(sample[sample.index("    [metric_decoder]"):
                                  sample.index("or, without")])
    spec = load_config(write_config(tmp_path, toml), strict=True).plugins["metric_decoder"]
    assert spec.cls is MetricDecoder
    assert spec.cfg.deserialize_bulk_metric_for_loggers == frozenset(LMA_LOGGERS.split())
