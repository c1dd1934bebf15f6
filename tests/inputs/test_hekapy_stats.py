"""HekapyStatsInput: the running pipeline's own counters as metric messages (per plugin,
queue, disk buffer and the process), read on its ticker, with the deployment tags, in
the line protocol InfluxdbOutput writes. Its real trip to InfluxDB through the shipped
collectors is in tests/conf/test_grafana_dashboards.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hekapy.collector.engine.config import ConfigInvalid
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.outputs.influxdb.line_protocol import message_points
from tests.helpers.plugins import CollectOutput, config_from
from tests.helpers.wait import wait_for


def point(msg: Message) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(measurement, tags, values) of one stats message."""
    tags = {t: msg.find_field(t).values[0] for t in msg.find_field("tag_fields").values}
    values = {v: msg.find_field(v).values[0] for v in msg.find_field("value_fields").values}
    return msg.find_field("name").values[0], tags, values


def latest(sink: CollectOutput, name: str, **tags: str) -> dict[str, Any] | None:
    """The values of the newest point `name` whose tags include `tags`."""
    for msg in reversed(sink.messages):
        n, t, v = point(msg)
        if n == name and all(t.get(k) == want for k, want in tags.items()):
            return v
    return None


async def test_points_report_the_pipelines_counters(tmp_path):
    p = Pipeline(config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'metric_collector'}"
        hostname = "node-3"
        deployment_tags = {{ environment_label = "env-9", deployment_id = "9" }}
        [seq]
        type = "SequenceInput"
        count = 30
        batch = 10
        decoder = "noop"
        [noop]
        type = "NoopDecoder"
        msg_type = "test"
        [sink]
        type = "CollectOutput"
        message_matcher = "Type == 'test'"
        [stats_sink]
        type = "CollectOutput"
        message_matcher = "Logger == 'hekapy_stats'"
        [hekapy_stats]
        type = "HekapyStatsInput"
        ticker_interval = 0.02
    """))
    await p.start()
    stats = CollectOutput.instances["stats_sink"]

    def settled() -> bool:
        seq = latest(stats, "hekapy_plugin", plugin="seq")
        sink = latest(stats, "hekapy_plugin", plugin="sink")
        return bool(seq and sink and seq["messages_out"] == 30 and sink["messages_in"] == 30
                    and seq["unacked_batches"] == 0)

    await wait_for(settled, "a tick after the 30 messages were stored", timeout=120)
    await p.stop()

    seq = latest(stats, "hekapy_plugin", plugin="seq", category="input")
    assert seq is not None and seq["up"] == 1.0 and seq["decode_failures"] == 0
    dec = latest(stats, "hekapy_plugin", plugin="noop", category="decoder",
                 plugin_type="NoopDecoder")
    assert dec is not None and dec["messages_in"] == dec["messages_out"] == 30
    out = latest(stats, "hekapy_plugin", plugin="sink", category="output",
                 plugin_type="CollectOutput")
    assert out is not None and out["retrying_seconds"] == 0 and out["up"] == 1.0
    queue = latest(stats, "hekapy_queue", plugin="sink", queue="input")
    assert queue is not None and queue["capacity_batches"] == 30  # plugin_chansize
    assert 0 <= queue["fill_ratio"] <= 1
    proc = latest(stats, "hekapy_collector")
    assert proc is not None
    assert proc["rss_bytes"] > 1 << 20 and proc["cpu_seconds"] > 0 and proc["open_fds"] > 0
    assert proc["uptime_seconds"] > 0 and proc["routed_messages"] >= 30
    assert proc["plugins_gave_up"] == 0

    # Every point carries the node, the collector (base_dir's last part) and the
    # deployment tags; the line protocol makes them tags and the values float fields.
    msg = stats.messages[0]
    assert msg.type == "metric" and msg.hostname == "node-3"
    [line] = message_points(msg)
    head, fields, _ts = line.split(" ")
    assert ",collector=metric_collector," in head + ","
    assert ",hostname=node-3" in head and ",environment_label=env-9" in head
    assert ",deployment_id=9" in head
    assert all(re.fullmatch(r"[a-z_]+=-?\d+\.\d{6}", f) for f in fields.split(",")), fields


async def test_a_buffered_output_reports_its_disk_buffer(tmp_path):
    p = Pipeline(config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [seq]
        type = "SequenceInput"
        count = 200
        batch = 20
        pad = 200
        [stuck]
        type = "CollectOutput"
        mode = "stuck"
        message_matcher = "Type == 'test'"
        use_buffering = true
          [stuck.buffering]
          max_buffer_size = 1048576
          full_action = "block"
        [stats_sink]
        type = "CollectOutput"
        message_matcher = "Logger == 'hekapy_stats'"
        [hekapy_stats]
        type = "HekapyStatsInput"
        collector = "log_collector"
        ticker_interval = 0.02
    """))
    await p.start()
    stats = CollectOutput.instances["stats_sink"]

    def buffered() -> dict[str, Any] | None:
        b = latest(stats, "hekapy_buffer", plugin="stuck", collector="log_collector")
        return b if b and b["bytes"] >= 200 * 200 else None

    await wait_for(lambda: buffered() is not None, "the 200 records in the disk buffer",
                   timeout=120)
    b = buffered()
    assert b is not None
    assert b["max_bytes"] == 1048576 and b["fill_ratio"] == b["bytes"] / 1048576
    assert b["dropped"] == 0
    roles = {point(m)[1]["queue"] for m in stats.messages if point(m)[0] == "hekapy_queue"
             and point(m)[1]["plugin"] == "stuck"}
    assert roles == {"input", "buffer-in"}
    p.hekad.shutdown_timeout = 0.2  # the stuck output never drains
    await p.stop()


@pytest.mark.parametrize("interval", ["0", "-1s"])
def test_a_ticker_of_zero_is_refused(tmp_path, interval):
    with pytest.raises(ConfigInvalid) as e:
        config_from(tmp_path, f"""
            [hekapy_stats]
            type = "HekapyStatsInput"
            ticker_interval = "{interval}"
        """)
    assert "hekapy_stats" in str(e.value) and "ticker_interval" in str(e.value)
