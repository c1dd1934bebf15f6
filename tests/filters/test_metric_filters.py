"""HttpMetricsFilter and LogCounterFilter: LMA's log-derived series, checked on the LMA
research vector, through the line protocol, and end to end into a real InfluxDB."""

from __future__ import annotations

import json

import pytest

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.filters.http_metrics import HttpMetricsFilter
from hekapy.filters.log_counter import LogCounterFilter
from hekapy.outputs.influxdb.line_protocol import message_points
from tests.helpers.filters import RecordingFilterContext, api_log, first_values
from tests.helpers.paths import LMA_DATA
from tests.helpers.plugins import ScriptInput, config_from, make_plugin
from tests.services import influxdb

VECTOR = json.loads((LMA_DATA / "http_metrics_aggregator.json").read_text())


def test_http_metrics_vector_and_its_influxdb_line():
    """Constructed by the LMA research from http_metrics_aggregator.lua (derived)."""
    f = make_plugin(HttpMetricsFilter)
    ctx = RecordingFilterContext()
    now = f.last_tick
    inp = VECTOR["input"]
    f.process([api_log(inp["Logger"], inp["http_method"], inp["http_status"], t, now)
               for t in inp["http_response_times"]], ctx)
    f.timer_event(now + 10 * 10**9, ctx)
    [m] = ctx.injected
    want = VECTOR["expected_bulk_point"]
    got = first_values(m)
    assert got["name"] == want["name"]
    for k, v in want["values"].items():
        assert abs(got[k] - v) < 1e-9, k
    assert (got["hostname"], got["http_method"], got["http_status"]) == ("node-1", "GET", "2xx")
    m.fields += [Field("deployment_id", ["1"], STRING),
                 Field("environment_label", ["env-1"], STRING)]
    [line] = message_points(m)
    expected = VECTOR["expected_influxdb_line"].replace("<ms>", str(m.timestamp // 10**6))
    assert line == expected
    assert m.type == "heka.sandbox.multivalue_metric"


def test_http_metrics_rules():
    f = make_plugin(HttpMetricsFilter, percentile=50)
    ctx = RecordingFilterContext()
    now = f.last_tick
    f.process([api_log("openstack.neutron.server", "GET", 404, 0.5, now),
               api_log("openstack.neutron.server", "BREW", 200, 0.5, now),  # not a method
               api_log("openstack.neutron.server", "GET", 700, 0.5, now),  # not a status
               api_log("openstack.neutron.server", "GET", 200, 0.5, now - 60 * 10**9)], ctx)
    assert f.ignored == 1  # older than the last tick minus grace_time
    f.timer_event(now + 10**10, ctx)
    [m] = ctx.injected
    v = first_values(m)
    assert (v["name"], v["http_status"], v["count"], v["upper_50"]) == (
        "openstack_neutron_http_response_times", "4xx", 1, 0.5)
    ctx.injected.clear()
    f.timer_event(now + 2 * 10**10, ctx)
    assert ctx.injected == []  # buckets reset every tick


def test_log_counter_emits_every_level_per_service():
    f = make_plugin(LogCounterFilter, ticker_interval=60)
    ctx = RecordingFilterContext()
    msgs = [Message(type="log", logger="openstack.nova", severity=s) for s in (3, 6, 6)]
    msgs.append(Message(type="log", logger="openstack.keystone", severity=6))
    f.process(msgs, ctx)
    f.timer_event(1, ctx)
    by = {(first_values(m)["service"], first_values(m)["level"]): first_values(m)["value"]
          for m in ctx.injected}
    assert len(by) == 16  # 2 services x 8 levels, zeros included
    assert by[("nova", "info")] == 2 / 60 and by[("nova", "error")] == 1 / 60
    assert by[("keystone", "debug")] == 0
    ctx.injected.clear()
    f.timer_event(2, ctx)
    assert len(ctx.injected) == 16 and all(first_values(m)["value"] == 0 for m in ctx.injected)


@pytest.mark.services
async def test_logs_to_influxdb_series(tmp_path):
    lines = [f"2026-11-24 10:00:0{i}.000 1 INFO nova.osapi_compute.wsgi.server "
             f'[-] 10.0.0.1 "GET /v2.1/servers HTTP/1.1" status: 200 len: 10 '
             f"time: 0.{i + 1}\n" for i in range(5)]
    ScriptInput.script = [lines]
    ScriptInput.linger = True
    async with influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        p = Pipeline(config_from(tmp_path, f"""
            [hekad]
            base_dir = "{tmp_path / 'state'}"
            hostname = "ctl-1"
            deployment_tags = {{ deployment_id = "7", environment_label = "env-7" }}
            [src]
            type = "ScriptInput"
            decoder = "dec"
            [dec]
            type = "OpenStackLogDecoder"
            tz = "UTC"
            [http_metrics]
            type = "HttpMetricsFilter"
            ticker_interval = 0.2
            grace_time = "1000000h"
            [logs_counter]
            type = "LogCounterFilter"
            ticker_interval = 0.2
            [influxdb]
            type = "InfluxdbOutput"
            message_matcher = "Type =~ /metric$/"
            url = "{db.url}"
            flush_interval = 50
            use_buffering = false
        """))
        await p.start()
        rows: list = []

        async def arrived() -> bool:
            # The last line waits in the decoder (it might have a continuation) until
            # hold_timeout: the five requests may span two ticks.
            nonlocal rows
            rows = await db.query('SELECT sum("count"), max("max") FROM '
                                  "openstack_nova_http_response_times GROUP BY *", db="lma")
            return bool(rows) and rows[0]["sum"] == 5

        import asyncio
        for _ in range(200):
            if await arrived():
                break
            await asyncio.sleep(0.05)
        counts = await db.query("SELECT sum(value) FROM log_messages WHERE "
                                "service = 'nova' AND level = 'info'", db="lma")
        await p.stop()
    [row] = rows
    assert (row["sum"], row["http_method"], row["http_status"], row["hostname"]) == (
        5, "GET", "2xx", "ctl-1")
    assert row["deployment_id"] == "7" and abs(row["max"] - 0.5) < 1e-9
    assert counts and counts[0]["sum"] > 0
