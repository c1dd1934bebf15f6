"""HddErrorsCounterFilter: LMA's hdd_errors_counter.lua natively. The LMA vectors (kernel
lines → device), the Lua-pattern translation, LMA's timing rules (first interval with
errors not sent, devices reported every tick once seen, old lines skipped), and the
series through the line protocol (a `device` tag, no hostname tag)."""

from __future__ import annotations

import json
import re

import pytest

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import OptionError
from hekapy.filters.hdd_errors_counter import HddErrorsCounterFilter, lua_pattern
from hekapy.outputs.influxdb.line_protocol import message_points
from tests.helpers.filters import RecordingFilterContext, first_values
from tests.helpers.paths import LMA_DATA
from tests.helpers.plugins import make_plugin

VECTOR = json.loads((LMA_DATA / "hdd_errors_counter.json").read_text())
S = 1_000_000_000


def kern(payload: str, ts: int) -> Message:
    return Message(type="log", logger="system.kern", payload=payload, timestamp=ts)


def test_lma_vectors_give_the_device():
    patterns = " ".join(f"/{p}/" for p in VECTOR["config"]["patterns"])
    f = make_plugin(HddErrorsCounterFilter, patterns=patterns)
    f.start_ns = 0
    for case in VECTOR["cases"]:
        f.counts.clear()
        f.process([kern(case["payload"], 10 * S)], RecordingFilterContext())
        assert f.counts == {case["expected_device"]: 1}, case


@pytest.mark.parametrize(("lua", "text", "expected"), [
    ("error%s.+([sv]d[a-z][a-z]?)%d?", "I/O error on device sdd2, block", "sdd"),
    ("([sv]d[a-z][a-z]?)%d?.+%serror", "XFS (sdf3): metadata I/O error: block", "sdf"),
    ("^(%w+)-(%d+)$", "abc-42", "abc"),
    ("a(.-)b", "xaXbYb", "X"),  # '-' is lazy
    ("[%d%.]+ (%a+)", "v1.2 ok", "ok"),
    ("%[(%S+)%]", "[req-1] x", "req-1"),
    ("[^%s]+", "  word ", None),
])
def test_lua_patterns_translate(lua, text, expected):
    m = lua_pattern(lua).search(text)
    assert m is not None
    assert (m.group(1) if m.re.groups else None) == expected or \
        (expected is None and m.group(0) == "word")


def test_unsupported_or_broken_patterns_are_config_errors():
    for bad in ("/%bxy/", "/abc%/", "/[abc/", "/%q/", "no slashes"):
        with pytest.raises(OptionError):
            make_plugin(HddErrorsCounterFilter, patterns=bad)


def test_ticks_follow_lma_first_errors_interval_is_not_sent_then_rates_and_zeros():
    f = make_plugin(HddErrorsCounterFilter)
    f.start_ns = 0
    ctx = RecordingFilterContext("node-3")
    f.timer_event(10 * S, ctx)  # no error yet: nothing, and the interval keeps growing
    assert ctx.injected == [] and f.last_tick is None
    f.process([kern("Buffer I/O error on device sdb1, logical block 9", 12 * S)], ctx)
    f.timer_event(20 * S, ctx)  # the first interval with errors: not sent (LMA)
    assert ctx.injected == [] and f.last_tick == 20 * S
    f.process([kern("Buffer I/O error on device sdb1, logical block 9", 21 * S)] * 5 +
              [kern("XFS (vdc): xfs_log_force: error 5 returned.", 22 * S)], ctx)
    f.timer_event(30 * S, ctx)
    got = {first_values(m)["device"]: first_values(m)["value"] for m in ctx.injected}
    assert got == {"sdb": 0.5, "vdc": 0.1}
    ctx.injected.clear()
    f.timer_event(40 * S, ctx)  # devices once seen: zeros
    assert {first_values(m)["device"]: first_values(m)["value"] for m in ctx.injected} == {
        "sdb": 0.0, "vdc": 0.0}
    # A line older than the previous tick by more than grace_interval (10 s) is skipped.
    f.process([kern("Buffer I/O error on device sdb1", 29 * S)], ctx)
    f.process([kern("Buffer I/O error on device sdb1", 31 * S)], ctx)
    assert f.counts["sdb"] == 1 and f.skipped == 1


def test_points_have_a_device_tag_and_no_hostname_tag():
    f = make_plugin(HddErrorsCounterFilter)
    f.start_ns = 0
    ctx = RecordingFilterContext("node-3")
    for t in (10, 20):
        f.process([kern("Buffer I/O error on device sda", (t - 1) * S)], ctx)
        f.timer_event(t * S, ctx)
    [msg] = ctx.injected
    [line] = message_points(msg, precision="ms")
    assert re.fullmatch(r"hdd_errors_rate,device=sda value=0\.100000 20000", line), line
    assert msg.hostname == "node-3" and msg.logger == "p"
