"""Heka's report messages (docs/compatibility.md, "Reports"): DashboardOutput makes hekapy
inject `heka.all-report` every ticker_interval; filters matching it get it, with every
field a self-monitoring filter to the contract of LMA's heka_monitoring.lua reads (a Lua
filter written for these tests, run unchanged by SandboxFilter, turns them into hekad_*
metrics); the output writes Heka's files; an output's injections obey
max_message_loops; the timings behind ProcessMessageAvgDuration."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import aiohttp
import pytest

from hekapy.collector.app.status import StatusServer
from hekapy.collector.engine.config import ConfigInvalid
from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.heka_report import (
    CATEGORIES,
    render_all_report,
    report_data,
    report_payload,
)
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import Option, Output, register
from tests.helpers.paths import LUA
from tests.helpers.plugins import CollectOutput, ScriptInput, config_from
from tests.helpers.wait import wait_for

HOST = "collector-1"


def access_line(status: int, i: int) -> str:
    return (f"2015-11-30 08:38:{i % 60:02d}.306 3434 INFO nova.osapi_compute.wsgi.server "
            f"[req-0fd2a9ba-448d-40f5-995e-33e32ac5a6ba - - - - -] 192.168.0.2 "
            f'"GET /v2/servers HTTP/1.1" status: {status} len: 1893 time: 0.1252210\n')


LINES = [access_line(200 if i % 3 else 503, i) for i in range(30)]


def monitored_config(tmp_path: Path, dashboard: str = "", extra: str = ""):
    """A Lua decoder and a Lua filter at work, the report monitor, DashboardOutput."""
    return config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        share_dir = "{tmp_path / 'share'}"
        hostname = "{HOST}"
        [src]
        type = "ScriptInput"
        decoder = "openstack_decoder"
        [openstack_decoder]
        type = "SandboxDecoder"
        filename = "{LUA / 'openstack_log.lua'}"
        module_directory = "{LUA / 'modules'}"
        native = false
        [http_counter_filter]
        type = "SandboxFilter"
        filename = "{LUA / 'status_counter.lua'}"
        message_matcher = "Type == 'log'"
        ticker_interval = 0.01
          [http_counter_filter.config]
          payload_name = "statuses"
        [heka_monitoring_filter]
        type = "SandboxFilter"
        filename = "{LUA / 'report_monitor.lua'}"
        message_matcher = "Type == 'heka.all-report'"
        [DashboardOutput]
        ticker_interval = 0.01
        {dashboard}
        [metrics]
        type = "CollectOutput"
        message_matcher = "Type == 'heka.sandbox.bulk_metric'"
        [reports]
        type = "CollectOutput"
        message_matcher = "Type == 'heka.all-report'"
        {extra}
    """)


def points(msg: Message) -> dict[tuple[str, str, str], float]:
    """(metric, kind, name) → value of one bulk metric message."""
    return {(p["name"], p["tags"]["type"], p["tags"]["name"]): p["value"]
            for p in json.loads(msg.payload)}


def report_of(msg: Message) -> dict[str, dict[str, dict]]:
    """category → plugin name → entry of a heka.all-report message."""
    return {k: {e["Name"]: e for e in v} for k, v in json.loads(msg.payload).items()}


def counted_everything(msg: Message) -> bool:
    r = report_of(msg)
    return (r["filters"]["http_counter_filter"]["ProcessMessageCount"]["value"] == len(LINES)
            and r["filters"]["http_counter_filter"]["TimerEventSamples"]["value"] > 0)


async def run_until_reported(cfg) -> Pipeline:
    """Deliver LINES; run until a report shows them all counted and the monitor turned
    such a report into metrics; stop."""
    ScriptInput.script = [LINES[:10], LINES[10:]]
    ScriptInput.linger = True
    p = Pipeline(cfg)
    await p.start()
    metrics = CollectOutput.instances["metrics"]
    await wait_for(lambda: any(points(m).get(("hekad_msg_count", "filter", "http_counter"))
                               == len(LINES) for m in metrics.messages),
                   "hekad_* metrics of a report with every line counted")
    await p.stop()
    return p


async def test_a_lua_filter_to_heka_monitorings_contract_makes_hekad_metrics(tmp_path):
    p = await run_until_reported(monitored_config(tmp_path))
    _, monitor_ctx, _ = next(f for f in p.filters if f[1].name == "heka_monitoring_filter")
    assert monitor_ctx.stats.errors == 0  # no entry lacked a field it reads
    final = next(m for m in CollectOutput.instances["metrics"].messages
                 if points(m).get(("hekad_msg_count", "filter", "http_counter")) == len(LINES))
    assert (final.type, final.logger, final.hostname) == (
        "heka.sandbox.bulk_metric", "heka_monitoring_filter", HOST)
    got = points(final)
    assert {k[1:] for k in got} == {("filter", "http_counter"), ("filter", "heka_monitoring"),
                                    ("decoder", "openstack")}
    # The decoder decoded every line; the filter counted every one, timed, in Lua memory.
    assert got[("hekad_msg_count", "decoder", "openstack")] == len(LINES)
    assert got[("hekad_msg_avg_duration", "decoder", "openstack")] > 0
    assert got[("hekad_memory", "decoder", "openstack")] > 0
    assert got[("hekad_msg_avg_duration", "filter", "http_counter")] > 0
    assert got[("hekad_memory", "filter", "http_counter")] > 0
    assert got[("hekad_timer_event_count", "filter", "http_counter")] > 0
    assert got[("hekad_timer_event_avg_duration", "filter", "http_counter")] > 0
    # The monitor reports itself too: in each report, the reports it had processed
    # before that one (never fewer than in an earlier one).
    seen = [points(m)[("hekad_msg_count", "filter", "heka_monitoring")]
            for m in CollectOutput.instances["metrics"].messages]
    assert seen == sorted(seen) and seen[-1] < len(seen)
    assert got[("hekad_timer_event_count", "filter", "heka_monitoring")] == 0


async def test_report_message_and_the_fields_heka_monitoring_reads(tmp_path):
    await run_until_reported(monitored_config(tmp_path))
    reports = CollectOutput.instances["reports"].messages
    assert reports
    msg = next(m for m in reports if counted_everything(m))
    # As hekad made it: Logger hekad, this collector, no fields, Go's JSON with a newline.
    assert (msg.type, msg.logger, msg.hostname, msg.pid) == (
        "heka.all-report", "hekad", HOST, os.getpid())
    assert msg.fields == []
    assert msg.payload.endswith("}\n")
    data = json.loads(msg.payload)
    assert set(data) == set(CATEGORIES)
    for entries in data.values():
        for e in entries:
            assert isinstance(e["Name"], str)
            for key, value in e.items():
                if key != "Name":
                    assert set(value) == {"value", "representation"}, (key, value)

    def value(entry: dict, key: str, rep: str) -> int:
        assert entry[key]["representation"] == rep, key
        v = entry[key]["value"]
        assert type(v) is int, (key, v)  # JSON integers: Lua numbers
        return v

    r = report_of(msg)
    for kind in ("filters", "decoders"):
        for e in r[kind].values():
            value(e, "ProcessMessageCount", "count")
            value(e, "ProcessMessageAvgDuration", "ns")
            value(e, "ProcessMessageSamples", "count")
            value(e, "ProcessMessageFailures", "count")
    counter = r["filters"]["http_counter_filter"]
    assert value(counter, "ProcessMessageSamples", "count") == len(LINES)
    assert value(counter, "TimerEventSamples", "count") > 0
    assert value(counter, "TimerEventAvgDuration", "ns") > 0
    assert value(counter, "InjectMessageCount", "count") == \
        2 * value(counter, "TimerEventSamples", "count")  # a payload and a message per tick
    assert value(counter, "InChanCapacity", "count") == 30
    assert value(counter, "LeakCount", "count") == 0
    memory = value(counter, "Memory", "B")
    assert 0 < memory <= value(counter, "MaxMemory", "B") < 8 << 20
    assert value(counter, "MaxOutput", "B") > len("total 30\n")
    decoder = r["decoders"]["openstack_decoder"]
    assert value(decoder, "ProcessMessageCount", "count") == len(LINES)
    assert value(decoder, "ProcessMessageSamples", "count") == len(LINES)
    assert value(decoder, "ProcessMessageAvgDuration", "ns") > 0
    assert value(decoder, "Memory", "B") > 0
    assert value(r["outputs"]["DashboardOutput"], "ProcessMessageCount", "count") >= 1
    assert r["globals"]["Router"]["ProcessMessageCount"]["value"] > len(LINES)


async def test_dashboard_output_writes_heka_files(tmp_path):
    # A static file to copy, and a file of an earlier run that Heka's start removed.
    static = tmp_path / "share" / "dasher"
    (static / "js").mkdir(parents=True)
    (static / "index.html").write_text("<html></html>")
    (static / "js" / "app.js").write_text("//")
    work = tmp_path / "state" / "dashboard"
    work.mkdir(parents=True)
    (work / "stale.html").write_text("old")
    # A sandbox that dies on its first message: Heka's termination line.
    dying = tmp_path / "dying.lua"
    dying.write_text('function process_message() error("boom") end\n')
    await run_until_reported(monitored_config(tmp_path, extra=f"""
        [dying_filter]
        type = "SandboxFilter"
        filename = "{dying}"
        message_matcher = "Type == 'log'"
    """))
    data_dir = work / "data"
    assert (work / "index.html").read_text() == "<html></html>"
    assert (work / "js" / "app.js").read_text() == "//"
    assert not (work / "stale.html").exists()
    # The latest report, whole (written by replacing the file).
    report = json.loads((data_dir / "heka_report.json").read_text())
    assert set(report) == set(CATEGORIES)
    # The counter's inject_payload output, named <filter>.<payload_name>.<payload_type>.
    out = (data_dir / "http_counter_filter.statuses.txt").read_text()
    assert out.startswith("openstack.nova 2xx ") and "total " in out
    assert json.loads((data_dir / "sandboxes.json").read_text()) == {"sandboxes": [
        {"Name": "http_counter_filter", "Outputs": [
            {"Name": "statuses", "Filename": "data/http_counter_filter.statuses.txt"}]}]}
    [line] = (data_dir / "heka_sandbox_termination.tsv").read_text().splitlines()
    seconds, plugin, reason = line.split("\t")
    assert abs(int(seconds) - time.time()) < 600
    assert plugin == "dying_filter" and "boom" in reason


async def test_address_and_headers_are_accepted_with_a_warning(tmp_path, caplog):
    cfg = monitored_config(tmp_path, dashboard="""
        address = "127.0.0.1:4353"
          [DashboardOutput.headers]
          X-Frame-Options = ["DENY"]
    """)
    with caplog.at_level(logging.WARNING, logger="hekapy.DashboardOutput"):
        await run_until_reported(cfg)
    warned = [r.getMessage() for r in caplog.records if r.name == "hekapy.DashboardOutput"]
    assert any("address has no effect" in w and "/heka.all-report" in w for w in warned)
    assert any("headers has no effect" in w for w in warned)


def test_bad_headers_are_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigInvalid) as e:
        config_from(tmp_path, """
            [DashboardOutput]
              [DashboardOutput.headers]
              X-Frame-Options = 3
        """)
    assert "[DashboardOutput]" in str(e.value) and "headers" in str(e.value)
    assert "X-Frame-Options" in str(e.value)


def test_defaults_are_hekas(tmp_path):
    cfg = config_from(tmp_path, "[DashboardOutput]\n")
    spec = cfg.plugins["DashboardOutput"]
    assert spec.cfg.ticker_interval == 5
    assert spec.cfg.message_matcher == ("Type == 'heka.all-report' || "
                                        "Type == 'heka.sandbox-terminated' || "
                                        "Type == 'heka.sandbox-output'")
    assert (spec.cfg.working_directory, spec.cfg.static_directory) == ("dashboard",
                                                                        "dasher")


# --- OutputContext.inject ----------------------------------------------------------------

@register
class InjectingOutput(Output):
    """Injects one message per batch it gets, at that batch's loop count. It awaits
    the route in its reading loop, which a real output must not (its own queue may be
    full): here the queue always has room."""

    options = {"inject_type": Option("str", "echo")}
    instances: dict[str, InjectingOutput] = {}

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.routed: list[int] = []
        InjectingOutput.instances[name] = self

    async def run(self, ctx: OutputContext) -> None:
        while (batch := await ctx.next_batch()) is not None:
            made = Message(type=self.cfg.inject_type, payload=f"after {batch.loops}")
            loops = batch.loops
            batch.done()
            self.routed.append(await ctx.inject([made], loops))


async def test_an_output_injects_through_the_router_within_max_message_loops(tmp_path):
    """An output that injects what its own matcher takes: each message comes back to
    it one loop further, until max_message_loops (4) stops the chain."""
    cfg = config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [src]
        type = "SequenceInput"
        count = 1
        [echo]
        type = "InjectingOutput"
        message_matcher = "Type == 'test' || Type == 'echo'"
        [sink]
        type = "CollectOutput"
        message_matcher = "Type == 'echo'"
    """)
    p = Pipeline(cfg)
    await p.start()
    echo = InjectingOutput.instances["echo"]
    await wait_for(lambda: len(echo.routed) == 5, "the chain to reach max_message_loops")
    sink = CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) == 4, "the routed echoes")
    await p.stop()
    # Loops 0 (the input's batch) to 3 routed one message each; the fifth would be 5.
    assert echo.routed == [1, 1, 1, 1, 0]
    assert [m.payload for m in sink.messages] == [f"after {n}" for n in range(4)]
    _, octx = p.outputs[0]
    assert (octx.stats.injected, octx.stats.dropped) == (4, 1)


async def test_report_data_reads_a_pipeline_without_a_status_server(tmp_path):
    """The engine renders the report by itself: what the status endpoint renders from
    its snapshot, the same shape."""
    cfg = config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [src]
        type = "SequenceInput"
        count = 20
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
        encoder = "PayloadEncoder"
        [PayloadEncoder]
    """)
    p = Pipeline(cfg)
    await p.start()
    await wait_for(lambda: len(CollectOutput.instances["sink"].messages) == 20, "delivery")
    report = render_all_report(report_data(p))
    await p.stop()
    assert json.loads(report_payload(report)) == report
    r = {k: {e["Name"]: e for e in v} for k, v in report.items()}
    assert r["inputs"]["src"]["MessagesOut"]["value"] == 20
    assert r["outputs"]["sink"]["ProcessMessageCount"]["value"] == 20
    assert r["encoders"]["PayloadEncoder"]["OutputCount"]["value"] == 1


async def test_the_status_server_serves_the_report_where_heka_did(tmp_path):
    """Without a DashboardOutput: /data/heka_report.json (Heka's dashboard path) and
    /heka.all-report serve the engine's report."""
    cfg = config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        status_address = "127.0.0.1:0"
        [src]
        type = "SequenceInput"
        count = 20
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """)
    p = Pipeline(cfg)
    server = StatusServer(p, cfg)
    assert await server.start()
    assert server.bound is not None
    base = f"http://127.0.0.1:{server.bound[1]}"
    await p.start()
    try:
        await wait_for(lambda: len(CollectOutput.instances["sink"].messages) == 20, "delivery")
        async with aiohttp.ClientSession() as s:
            for path in ("/data/heka_report.json", "/heka.all-report"):
                async with s.get(base + path) as r:
                    assert r.status == 200 and r.content_type == "application/json"
                    report = await r.json()
                assert set(report) == set(CATEGORIES)
                sink = {e["Name"]: e for e in report["outputs"]}["sink"]
                assert sink["ProcessMessageCount"] == {"value": 20, "representation": "count"}
                assert sink["LeakCount"]["value"] == 0
    finally:
        await p.stop()
        await server.stop()
