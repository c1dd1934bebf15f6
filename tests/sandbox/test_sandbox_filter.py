"""SandboxFilter in a running pipeline: timer_event and inject_payload, failures,
preserve_data across a stop and a start, and scripts that loop forever or allocate
without bound being terminated while the pipeline goes on."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from hekapy.collector.engine.config import Config
from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.sandbox import Sandbox, SandboxTerminated
from hekapy.collector.sandbox.api import FILTER
from hekapy.collector.sandbox.sandbox_filter import SandboxFilter
from tests.helpers.paths import LUA
from tests.helpers.plugins import (
    CollectOutput,
    ScriptInput,
    config_from,
    make_plugin,
    run_script_pipeline,
)
from tests.helpers.wait import wait_for


def access_line(status: int, i: int = 0) -> str:
    return (f"2015-11-30 08:38:{i % 60:02d}.306 3434 INFO nova.osapi_compute.wsgi.server "
            f"[req-0fd2a9ba-448d-40f5-995e-33e32ac5a6ba - - - - -] 192.168.0.2 "
            f'"GET /v2/servers HTTP/1.1" status: {status} len: 1893 time: 0.1252210\n')


def counter_config(tmp_path: Path, extra: str = "") -> Config:
    return config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        hostname = "collector-1"
        [src]
        type = "ScriptInput"
        decoder = "dec"
        [dec]
        type = "OpenStackLogDecoder"
        tz = "UTC"
        [counter]
        type = "SandboxFilter"
        filename = "{LUA / 'status_counter.lua'}"
        message_matcher = "Type == 'log'"
        timer_event_on_shutdown = true
        preserve_data = true
        {extra}
          [counter.config]
          payload_name = "statuses"
        [reports]
        type = "CollectOutput"
        message_matcher = "Logger == 'counter'"
    """)


async def test_timer_event_and_inject_payload(tmp_path):
    cfg = counter_config(tmp_path)
    lines = [access_line(s, i) for i, s in enumerate([200, 200, 404, 503, 201])]
    await run_script_pipeline(cfg, [lines[:2], lines[2:]])
    payload, metric = CollectOutput.instances["reports"].messages
    assert (payload.type, payload.logger, payload.hostname) == (
        "heka.sandbox-output", "counter", "collector-1")
    assert payload.payload == "openstack.nova 2xx 3\nopenstack.nova 4xx 1\n" \
                              "openstack.nova 5xx 1\ntotal 5\n"
    assert payload.fields == [Field("payload_type", ["txt"], STRING, "file-extension"),
                              Field("payload_name", ["statuses"], STRING)]
    assert (metric.type, metric.logger, metric.hostname) == (
        "heka.sandbox.http_counts", "counter", "collector-1")
    assert {f.name: f for f in metric.fields} == {
        "total": Field("total", [5], INTEGER), "services": Field("services", [1.0], DOUBLE)}


async def test_ticker_drives_timer_event(tmp_path):
    cfg = counter_config(tmp_path, "ticker_interval = 0.01")
    ScriptInput.script = [[access_line(200)]]
    ScriptInput.linger = True
    p = Pipeline(cfg)
    await p.start()
    reports = CollectOutput.instances["reports"]
    await wait_for(lambda: any(m.payload.endswith("total 1\n") for m in reports.messages),
                   "a timer report with the line counted")
    await p.stop()


async def test_negative_status_counts_as_a_failure(tmp_path):
    cfg = counter_config(tmp_path)
    no_http = "2015-11-30 08:38:59.306 3434 INFO nova.api [-] no access line here\n"
    p = await run_script_pipeline(cfg, [[no_http, access_line(200)]])
    filt, ctx, _ = p.filters[0]
    assert ctx.stats.errors == 1
    assert filt.sandbox.terminated is None
    assert CollectOutput.instances["reports"].messages[0].payload.endswith("total 1\n")


async def test_preserve_data_across_stop_and_start(tmp_path):
    cfg = counter_config(tmp_path)
    await run_script_pipeline(cfg, [[access_line(200, i) for i in range(3)]])
    data = tmp_path / "state" / "sandbox_preservation" / "counter.data"
    text = data.read_text()
    assert text.startswith("if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= 1 then "
                           "return end\n")
    assert '_G["seen"] = 3\n' in text
    assert '_G["counts"]["openstack.nova"]["2xx"] = 3\n' in text
    assert "last_report" in text  # set by the shutdown timer_event

    CollectOutput.instances.clear()
    await run_script_pipeline(counter_config(tmp_path), [[access_line(404), access_line(200)]])
    payload, metric = CollectOutput.instances["reports"].messages
    assert payload.payload == "openstack.nova 2xx 4\nopenstack.nova 4xx 1\ntotal 5\n"
    assert metric.get_field("total") == 5

    # A script with another _PRESERVATION_VERSION starts from scratch.
    script = tmp_path / "status_counter_v2.lua"
    script.write_text((LUA / "status_counter.lua").read_text().replace(
        "_PRESERVATION_VERSION = 1", "_PRESERVATION_VERSION = 2"))
    cfg = counter_config(tmp_path)
    cfg.plugins["counter"].cfg.filename = str(script)
    CollectOutput.instances.clear()
    await run_script_pipeline(cfg, [[access_line(500)]])
    payload, _ = CollectOutput.instances["reports"].messages
    assert payload.payload == "openstack.nova 5xx 1\ntotal 1\n"


def test_preserved_values_round_trip(tmp_path):
    script = tmp_path / "state.lua"
    script.write_text(r"""
text = "line one\nline \"two\"\0\255 \\ end"
numbers = {1, -2, 0.1, 1/3, 2^53, 2^60 + 2^10, 1e300, -1e-300, 1/0, -1/0}
flags = {yes = true, no = false}
nested = {a = {b = {c = "deep"}}, [5] = "five", [2.5] = "float key", [true] = "bool key"}
nested.self = nested
alias = nested.a
skipped = {fn = function() end, ok = 1}
with_meta = setmetatable({x = 1}, {})
lib = string
nan = 0/0
function process_message() return 0 end
""")
    cfg = make_plugin_cfg(script)
    first = Sandbox("SandboxFilter", "state", cfg, FILTER)
    path = str(tmp_path / "state.data")
    first.save(path)
    # A fresh state whose script starts empty: everything comes from the file.
    script.write_text("function process_message() return 0 end\n")
    second = Sandbox("SandboxFilter", "state", cfg, FILTER)
    assert second.restore(path)
    g = second.box.globals
    assert g.text == b'line one\nline "two"\x00\xff \\ end'
    assert [g.numbers[i] for i in range(1, 9)] == [
        1, -2, 0.1, 1 / 3, 2**53, 2**60 + 2**10, 1e300, -1e-300]
    assert g.numbers[9] == math.inf and g.numbers[10] == -math.inf
    assert math.isnan(g.nan)
    assert (g.flags.yes, g.flags.no) == (True, False)
    assert g.nested.a.b.c == b"deep"
    assert (g.nested[5], g.nested[2.5], g.nested[True]) == (b"five", b"float key",
                                                             b"bool key")
    assert second.box.lua.eval("nested.self == nested and alias == nested.a")
    assert g.skipped.ok == 1 and g.skipped.fn is None
    assert g.with_meta is None and g.lib is None
    assert second.box.lua.eval("string.format('%d', 7)") == b"7"  # the library untouched


def make_plugin_cfg(script: Path) -> SimpleNamespace:
    values = {k: o.default_value() for k, o in SandboxFilter.all_options().items()}
    values.update(filename=str(script), preserve_data=True)
    return SimpleNamespace(**values)


async def test_runaway_and_hog_filters_are_terminated_and_the_pipeline_goes_on(tmp_path):
    cfg = config_from(tmp_path, f"""
        [hekad]
        hostname = "collector-1"
        [src]
        type = "ScriptInput"
        [runaway]
        type = "SandboxFilter"
        filename = "{LUA / 'runaway.lua'}"
        message_matcher = "Type == ''"
        [hog]
        type = "SandboxFilter"
        filename = "{LUA / 'hog.lua'}"
        message_matcher = "TRUE"
        [everything]
        type = "CollectOutput"
        message_matcher = "Type == ''"
        [dead]
        type = "CollectOutput"
        message_matcher = "Type == 'heka.sandbox-terminated'"
    """)
    ScriptInput.script = [["first"], ["second", "third"]]
    ScriptInput.linger = False
    p = Pipeline(cfg)
    await p.start()
    dead = CollectOutput.instances["dead"]
    everything = CollectOutput.instances["everything"]
    await wait_for(lambda: len(dead.messages) == 2 and len(everything.messages) == 3,
                   "both terminations and every record")
    await p.stop()
    reasons = {m.get_field("plugin"): m for m in dead.messages}
    assert set(reasons) == {"runaway", "hog"}
    for name, m in reasons.items():
        assert (m.logger, m.hostname) == ("hekad", "collector-1")
        assert m.payload.startswith(f"SandboxFilter '{name}' ({LUA / (name + '.lua')}) "
                                    "terminated: process_message() ")
    assert reasons["runaway"].payload.endswith("instruction_limit exceeded")
    assert reasons["hog"].payload.endswith("memory_limit exceeded")
    # Both left the router; the records went on to the output all the same.
    assert {r.name for r in p.router.routes} == {"everything", "dead"}
    assert [m.payload for m in everything.messages] == ["first", "second", "third"]
    assert ScriptInput.last.acked[-1] == 2
    assert p.failed is None


def test_filter_lua_error_names_plugin_script_and_line(tmp_path):
    script = tmp_path / "oops.lua"
    script.write_text("count = 0\n\nfunction process_message()\n"
                      "    count = count + read_message('Fields[n]')\n    return 0\nend\n")
    filt = make_plugin(SandboxFilter, "adder", filename=str(script))
    with pytest.raises(SandboxTerminated) as e:
        filt.sandbox.process_message(Message(payload="x"))
    assert str(e.value) == (f"SandboxFilter 'adder' ({script}) terminated: process_message() "
                            "oops.lua:4: attempt to perform arithmetic on a nil value")
    assert filt.sandbox.terminated == e.value.reason
