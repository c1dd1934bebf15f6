"""NotificationDecoder (LMA's notification.lua) and ResourceCreationTimeFilter (LMA's
resource_creation_time.lua); docs/compatibility.md, "LMA notifications"."""

from __future__ import annotations

import json

import pytest

from hekapy.collector.engine.datetimes import format_datetime, parse_timestamp_ns
from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError
from hekapy.decoders.notification import LOGGER_BY_PREFIX, NotificationDecoder, normalize_uuid
from hekapy.filters.resource_creation_time import ResourceCreationTimeFilter
from hekapy.outputs.influxdb.line_protocol import message_points
from tests.helpers.filters import RecordingFilterContext
from tests.helpers.paths import TEST_DATA
from tests.helpers.plugins import config_from, make_plugin

VECTORS = json.loads((TEST_DATA / "lma" / "notification.json").read_text())
CASES = VECTORS["cases"]
V1_BARE = (TEST_DATA / "lab" / "oslo_notification_v1_bare.json").read_text()
V2_ENVELOPE = (TEST_DATA / "lab" / "oslo_notification_envelope.json").read_text()


def decode(body: str | dict, **options) -> Message:
    if isinstance(body, dict):
        body = json.dumps(body)
    dec = make_plugin(NotificationDecoder, "notification_decoder", **options)
    return dec.decode(Message(type="amqp", logger="openstack_info", hostname="collector-1",
                              payload=body))


def fields(msg: Message) -> dict:
    return {f.name: f.values[0] for f in msg.fields}


def notification(event_type: str = "compute.instance.update", payload: dict | None = None,
                 **top) -> dict:
    n = {"message_id": "m1", "publisher_id": "compute.node-3", "event_type": event_type,
         "priority": "INFO", "timestamp": "2015-11-30 08:40:00.000000",
         "payload": payload if payload is not None else {}}
    n.update(top)
    return n


def envelope(notif: dict) -> dict:
    return {"oslo.version": "2.0", "oslo.message": json.dumps(notif)}


# --- decoder: LMA vectors ---------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_lma_vectors(case):
    msg = decode(case["input"])
    want = case["expected"]
    assert msg.type == want["Type"]
    assert msg.logger == want["Logger"]
    assert msg.severity == want["Severity"]
    assert msg.timestamp == want["Timestamp"]
    # The audit vector leaves Hostname to the input (the record's).
    assert msg.hostname == want.get("Hostname", "collector-1")
    assert fields(msg) == want["Fields"]
    assert [f.name for f in msg.fields if f.name in want["Fields"]] == \
        [f.name for f in msg.fields]  # nothing beyond the expected fields


def test_vector_field_types_and_payload():
    msg = decode(CASES[0]["input"])
    by_name = {f.name: f for f in msg.fields}
    for name in ("memory_mb", "vcpus", "disk_gb"):
        assert by_name[name].value_type == INTEGER
    assert by_name["display_name"].value_type == STRING
    inner = json.loads(json.loads(CASES[0]["input"])["oslo.message"])
    assert json.loads(msg.payload) == inner["payload"]
    assert ", " not in msg.payload and ": " not in msg.payload  # compact encoding


def test_vector_prefix_table_matches():
    assert LOGGER_BY_PREFIX == VECTORS["event_type_prefix_to_logger"]


@pytest.mark.parametrize("prefix,logger", sorted(VECTORS["event_type_prefix_to_logger"].items()))
def test_event_type_prefix_gives_the_logger(prefix, logger):
    assert decode(notification(f"{prefix}.create.end")).logger == logger


def test_unknown_prefix_keeps_the_input_logger():
    msg = decode(notification("loadbalancer.member.down"))
    assert msg.logger == "openstack_info"
    assert msg.type == "notification"


# --- decoder: real captures ---------------------------------------------------------------

@pytest.mark.parametrize("body", [V1_BARE, V2_ENVELOPE], ids=["v1 bare", "v2 envelope"])
def test_real_oslo_captures(body):
    msg = decode(body)
    assert msg.type == "notification"
    assert msg.logger == "openstack_info"  # loadbalancer.* is not in LMA's table
    assert msg.severity == 4  # WARN
    assert msg.hostname == "host1"
    assert fields(msg) == {"publisher": "lbaas-agent", "hostname": "host1",
                           "event_type": "loadbalancer.member.down",
                           "severity_label": "WARN"}
    assert json.loads(msg.payload) == {"member": "10.0.0.5:80", "n": 2}


def test_v1_and_v2_give_the_same_message():
    a, b = decode(V1_BARE), decode(V2_ENVELOPE)
    assert a.fields == b.fields and a.payload == b.payload
    # "2026-11-23 20:16:29.801419" and "...28.813068", naive = UTC (calendar.timegm), µs kept
    assert a.timestamp == 1795464989_801_419_000
    assert b.timestamp == 1795464988_813_068_000


def test_the_same_notification_bare_or_in_an_envelope():
    n = json.loads(json.loads(CASES[0]["input"])["oslo.message"])
    a, b = decode(n), decode(envelope(n))
    assert (a.type, a.logger, a.severity, a.timestamp, a.hostname, a.payload) == \
        (b.type, b.logger, b.severity, b.timestamp, b.hostname, b.payload)
    assert a.fields == b.fields


# --- decoder: rules -----------------------------------------------------------------------

@pytest.mark.parametrize("priority,severity", [
    ("DEBUG", 7), ("INFO", 6), ("WARN", 4), ("WARNING", 4), ("ERROR", 3), ("CRITICAL", 2),
    ("info", 6)])
def test_priority_to_severity(priority, severity):
    msg = decode(notification(priority=priority))
    assert msg.severity == severity
    assert fields(msg)["severity_label"] == priority


def test_unknown_priority_keeps_the_input_severity():
    msg = decode(notification(priority="SAMPLE"))
    assert msg.severity == 7 and fields(msg)["severity_label"] == "SAMPLE"


def test_payload_host_overrides_the_publisher_host():
    msg = decode(notification(payload={"host": "node-7.test.domain.local"},
                              publisher_id="volume.node-3@lvm"))
    assert msg.hostname == "node-7"
    assert fields(msg)["hostname"] == "node-7"
    assert fields(msg)["publisher"] == "volume"


def test_publisher_without_host_keeps_the_input_hostname():
    msg = decode(notification(publisher_id="nova-compute"))
    assert msg.hostname == "collector-1"
    assert "publisher" not in fields(msg)
    assert fields(msg)["hostname"] == "collector-1"


def test_null_values_are_left_out():
    payload = {"tenant_id": None, "user_id": None, "display_name": None, "memory_mb": None,
               "state": None, "created_at": None, "launched_at": None, "host": None,
               "instance_type": "m1.tiny"}
    f = fields(decode(notification(payload=payload)))
    for key in payload:
        if key != "instance_type":
            assert key not in f
    assert f["instance_type"] == "m1.tiny"
    assert f["hostname"] == "node-3"


def test_dates_are_normalised_and_empty_ones_dropped():
    f = fields(decode(notification(payload={
        "created_at": "2015-11-30 08:38:59",
        "launched_at": "2015-11-30T08:39:09.5+02:00",
        "deleted_at": "",
        "terminated_at": "not a date"})))
    assert f["created_at"] == "2015-11-30T08:38:59.000000+00:00"
    assert f["launched_at"] == "2015-11-30T08:39:09.500000+02:00"
    assert "deleted_at" not in f and "terminated_at" not in f


def test_ids_are_normalised_and_non_uuids_left_out():
    f = fields(decode(notification(payload={
        "tenant_id": "112245730b1f4858ab62e3673e1ee9e2",
        "user_id": "admin",
        "instance_id": "d6b38a3e-6c4d-4a9a-9d58-1c2d7b0e9a01",
        "network_id": "d6b38a3e-6c4d4a9a9d581c2d7b0e9a01",
        "port_id": 12,
        "volume_id": "112245730b1f4858ab62e3673e1ee9e2ff"})))
    assert f["tenant_id"] == "11224573-0b1f-4858-ab62-e3673e1ee9e2"
    assert f["instance_id"] == "d6b38a3e-6c4d-4a9a-9d58-1c2d7b0e9a01"
    for key in ("user_id", "network_id", "port_id", "volume_id"):
        assert key not in f


def test_cinder_status_becomes_state():
    msg = decode(notification("volume.create.end", payload={
        "status": "available", "size": 10, "volume_id": "0b7a4f5c9f778f0bd1f0a1b23f1a7c3e",
        "replication_status": "disabled", "display_name": "vol1"}))
    f = fields(msg)
    assert msg.logger == "cinder"
    assert f["state"] == "available" and "status" not in f
    assert f["size"] == 10 and f["replication_status"] == "disabled"
    assert f["volume_id"] == "0b7a4f5c-9f77-8f0b-d1f0-a1b23f1a7c3e"


def test_nova_state_wins_over_status():
    f = fields(decode(notification(payload={"state": "active", "status": "ignored"})))
    assert f["state"] == "active"


def test_number_field_types():
    msg = decode(notification(payload={"memory_mb": 512, "vcpus": 1.5, "disk_gb": "20",
                                       "size": 2 ** 70}))
    by_name = {f.name: f for f in msg.fields}
    assert by_name["memory_mb"] == Field("memory_mb", [512], INTEGER)
    assert by_name["vcpus"] == Field("vcpus", [1.5], DOUBLE)
    assert by_name["disk_gb"] == Field("disk_gb", ["20"], STRING)
    assert by_name["size"].value_type == DOUBLE


def test_nested_values_are_not_copied():
    f = fields(decode(notification(payload={"display_name": {"a": 1}, "state": ["x"]})))
    assert "display_name" not in f and "state" not in f


def test_include_full_notification():
    n = json.loads(json.loads(CASES[0]["input"])["oslo.message"])
    inner = json.dumps(n)
    assert decode(envelope(n), include_full_notification=True).payload == inner
    assert decode(inner, include_full_notification=True).payload == inner
    msg = decode(CASES[0]["input"], include_full_notification=True)
    assert fields(msg) == CASES[0]["expected"]["Fields"]


def test_cadf_event_without_outcome():
    n = notification("identity.authenticate", payload={
        "eventType": "activity", "eventTime": "2016-11-04T10:00:00Z", "action": "x"},
        publisher_id="identity.node-1", priority="WARN")
    msg = decode(n)
    assert msg.type == "audit" and msg.logger == "identity.node-1" and msg.severity == 4
    assert msg.timestamp == 1478253600_000_000_000
    assert fields(msg) == {"action": "x", "notification_type": "identity.authenticate",
                           "event_type": "activity", "severity_label": "WARN"}


@pytest.mark.parametrize("body,reason", [
    ("not json", "not JSON"),
    ("", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"oslo.version": "2.0", "oslo.message": {"event_type": "x"}}',
     "'oslo.message' is not a string"),
    ('{"oslo.version": "2.0"}', "'oslo.message' is not a string"),
    ('{"oslo.version": "2.0", "oslo.message": "{oops"}', "'oslo.message' is not JSON"),
    ('{"oslo.version": "2.0", "oslo.message": "[1]"}', "'oslo.message' is not a JSON object"),
    (json.dumps({k: v for k, v in notification().items() if k != "event_type"}),
     "no event_type"),
    (json.dumps(notification(event_type=None)), "no event_type"),
    (json.dumps(notification(timestamp="yesterday")), "bad or missing timestamp 'yesterday'"),
    (json.dumps(notification(timestamp="2015-13-40 08:40:00")), "bad or missing timestamp"),
    (json.dumps({k: v for k, v in notification().items() if k != "timestamp"}),
     "bad or missing timestamp None"),
    (json.dumps(notification(payload="text")), "no 'payload' object"),
    (json.dumps(notification(payload={"eventType": "activity", "eventTime": "soon"})),
     "bad eventTime 'soon'"),
])
def test_bad_input_raises_decode_error(body, reason):
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(").replace("[", r"\[")):
        decode(body)


def test_helpers():
    assert normalize_uuid("be6876f2c1e642eaad95792a5500f0fa") == \
        "be6876f2-c1e6-42ea-ad95-792a5500f0fa"
    assert normalize_uuid("ze6876f2c1e642eaad95792a5500f0fa") is None
    assert normalize_uuid("be6876f2-c1e642eaad95792a5500f0fa") is None
    # LMA's patterns.Timestamp vectors
    assert parse_timestamp_ns("1970-01-01 00:00:01+00:00") == 1_000_000_000
    assert parse_timestamp_ns("1970-01-01 00:00:02") == 2_000_000_000
    assert parse_timestamp_ns("1970-01-01T00:00:04-00:00") == 4_000_000_000
    assert parse_timestamp_ns("1970-01-01 01:00:05+01:00") == 5_000_000_000
    assert parse_timestamp_ns("1970-01-01 00:00:00.123456+00:00") == 123_456_000
    assert parse_timestamp_ns("1970-01-01 00:01") is None
    assert parse_timestamp_ns("2016-11-04T10:00:00.123456+0000") == 1478253600123456000
    assert format_datetime("2016-11-04T10:00:00.1234567-0130") == \
        "2016-11-04T10:00:00.123456-01:30"


def test_sandbox_section_runs_the_native_decoder(tmp_path):
    from hekapy.collector.engine.pipeline import Pipeline
    p = Pipeline(config_from(tmp_path, """
        [notification_decoder]
        type = "SandboxDecoder"
        filename = "/usr/share/lma_collector/decoders/notification.lua"
          [notification_decoder.config]
          include_full_notification = true
    """))
    dec = p.build_plugin("notification_decoder", "Decoder")
    assert isinstance(dec, NotificationDecoder)
    assert dec.cfg.include_full_notification is True


def test_native_section_defaults(tmp_path):
    from hekapy.collector.engine.pipeline import Pipeline
    p = Pipeline(config_from(tmp_path, """
        [notification_decoder]
        type = "NotificationDecoder"
    """))
    dec = p.build_plugin("notification_decoder", "Decoder")
    assert isinstance(dec, NotificationDecoder)
    assert dec.cfg.include_full_notification is False


# --- filter -------------------------------------------------------------------------------

def run_filter(*messages: Message) -> tuple[ResourceCreationTimeFilter, list[Message]]:
    f = make_plugin(ResourceCreationTimeFilter, "resource_creation_time")
    ctx = RecordingFilterContext("collector-1")
    f.process(list(messages), ctx)
    return f, ctx.injected


def test_filter_default_matcher_is_lmas():
    f = make_plugin(ResourceCreationTimeFilter)
    assert f.cfg.message_matcher == ("Type == 'notification' && Fields[event_type] =~ "
                                     "/^(compute.instance|volume).(create|attach).end$/")


def test_filter_vector_instance_creation_time():
    notif = decode(CASES[0]["input"])
    f, [m] = run_filter(notif)
    want = CASES[0]["derived_metric"]
    assert m.type == want["Type"] == "heka.sandbox.metric"
    assert m.timestamp == CASES[0]["expected"]["Timestamp"]
    assert m.logger == "resource_creation_time" and m.hostname == "collector-1"
    assert m.severity == 6
    v = fields(m)
    assert v["name"] == want["name"]
    assert v["value"] == want["value_s"] == 10.0
    assert m.find_field("value").value_type == DOUBLE
    assert m.find_field("value").representation == "s"
    assert v["hostname"] == "node-2" and v["source"] == "nova" and v["type"] == "gauge"
    assert v["tenant_id"] == "11224573-0b1f-4858-ab62-e3673e1ee9e2"
    assert v["user_id"] == "8206d40a-bcc3-452d-8a9c-1ea629b4a8d0"
    assert m.find_field("tag_fields").values == ["hostname"]
    assert f.skipped == 0
    [line] = message_points(m)
    assert line == ("openstack_nova_instance_creation_time,hostname=node-2,"
                    "tenant_id=11224573-0b1f-4858-ab62-e3673e1ee9e2,"
                    "user_id=8206d40a-bcc3-452d-8a9c-1ea629b4a8d0 value=10.000000 "
                    "1448872750123")


def test_filter_volume_creation_time():
    notif = decode(notification("volume.create.end", publisher_id="volume.node-4", payload={
        "status": "available", "created_at": "2015-11-30 08:38:59",
        "launched_at": "2015-11-30 08:39:01.2345"}))
    _, [m] = run_filter(notif)
    v = fields(m)
    assert v["name"] == "openstack_cinder_volume_creation_time"
    assert v["value"] == 2.235  # rounded to the millisecond
    assert v["hostname"] == "node-4" and v["source"] == "cinder"
    assert "tenant_id" not in v and "user_id" not in v
    assert m.timestamp == notif.timestamp


@pytest.mark.parametrize("full", [False, True])
def test_filter_volume_attachment_time(full):
    notif = decode(notification("volume.attach.end", publisher_id="volume.node-4", payload={
        "tenant_id": "112245730b1f4858ab62e3673e1ee9e2",
        "created_at": "2015-11-30 08:00:00",
        "volume_attachment": [
            {"created_at": "2015-11-30 08:39:00", "attach_time": "2015-11-30T08:39:03.500000"},
            {"created_at": "2015-11-30 08:00:00", "attach_time": "2015-11-30T09:00:00"}]}),
        include_full_notification=full)
    _, [m] = run_filter(notif)
    v = fields(m)
    assert v["name"] == "openstack_cinder_volume_attachment_time"
    assert v["value"] == 3.5
    assert v["tenant_id"] == "11224573-0b1f-4858-ab62-e3673e1ee9e2"


@pytest.mark.parametrize("event_type,payload", [
    ("compute.instance.create.end", {"created_at": "2015-11-30 08:38:59"}),
    ("compute.instance.create.end", {"created_at": "2015-11-30 08:38:59", "launched_at": ""}),
    ("compute.instance.create.end", {"created_at": "2015-11-30 08:39:59",
                                     "launched_at": "2015-11-30 08:38:59"}),
    ("volume.create.end", {"launched_at": None}),
    ("volume.attach.end", {"volume_attachment": []}),
    ("volume.attach.end", {"volume_attachment": [{"created_at": "2015-11-30 08:39:00"}]}),
    ("volume.attach.end", {"volume_attachment": "x"}),
    ("volume.attach.end", {}),
])
def test_filter_skips_notifications_without_dates(event_type, payload):
    f, injected = run_filter(decode(notification(event_type, payload=payload)))
    assert injected == [] and f.skipped == 1


def test_filter_ignores_other_events_and_bad_payloads():
    other = decode(notification("compute.instance.delete.end", payload={
        "created_at": "2015-11-30 08:38:59", "launched_at": "2015-11-30 08:39:59"}))
    broken = Message(type="notification", payload="not json",
                     fields=[Field("event_type", ["volume.attach.end"], STRING)])
    f, injected = run_filter(other, broken)
    assert injected == [] and f.skipped == 1
