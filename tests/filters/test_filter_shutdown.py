"""The log-derived metric filters send what they counted since their last tick when
they stop (a SIGHUP reload drains and restarts the pipeline, a stop ends it): without
that, every reload lost up to a ticker_interval of HTTP request counts and log rates
(found by the soak, benchmarks/soak.py, whose InfluxDB counts fell short by about one
interval per reload)."""

from __future__ import annotations

import time

from hekapy.collector.engine.message import Message
from hekapy.filters.http_metrics import HttpMetricsFilter
from hekapy.filters.log_counter import LogCounterFilter
from tests.helpers.filters import RecordingFilterContext, api_log, first_values
from tests.helpers.plugins import make_plugin


def test_http_metrics_sends_its_open_interval_on_shutdown():
    f = make_plugin(HttpMetricsFilter)
    ctx = RecordingFilterContext()
    now = time.time_ns()
    f.process([api_log("openstack.nova", "GET", 200, 0.1 * i, now) for i in range(1, 8)], ctx)
    f.timer_event(now + 10**9, ctx)
    f.process([api_log("openstack.nova", "GET", 200, 0.5, now + 10**9) for _ in range(3)], ctx)
    f.shutdown(ctx)
    counts = [first_values(m)["count"] for m in ctx.injected]
    assert counts == [7, 3]
    f.shutdown(ctx)  # nothing new: nothing sent
    assert len(ctx.injected) == 2


def test_log_counter_sends_its_open_interval_on_shutdown():
    f = make_plugin(LogCounterFilter, ticker_interval=60)
    ctx = RecordingFilterContext()
    f.process([Message(type="log", logger="openstack.nova", severity=6)] * 90, ctx)
    f.shutdown(ctx)
    info = [m for m in ctx.injected if first_values(m)["level"] == "info"]
    assert [first_values(m)["value"] * 60 for m in info] == [90]
    ctx.injected.clear()
    f.shutdown(ctx)
    assert ctx.injected == []
