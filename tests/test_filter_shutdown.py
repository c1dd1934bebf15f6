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
from tests.conftest import make_plugin
from tests.test_metric_filters import Ctx, log, values


def test_http_metrics_sends_its_open_interval_on_shutdown():
    f = make_plugin(HttpMetricsFilter)
    ctx = Ctx()
    now = time.time_ns()
    f.process([log("openstack.nova", "GET", 200, 0.1 * i, now) for i in range(1, 8)], ctx)
    f.timer_event(now + 10**9, ctx)
    f.process([log("openstack.nova", "GET", 200, 0.5, now + 10**9) for _ in range(3)], ctx)
    f.shutdown(ctx)
    counts = [values(m)["count"] for m in ctx.injected]
    assert counts == [7, 3]
    f.shutdown(ctx)  # nothing new: nothing sent
    assert len(ctx.injected) == 2


def test_log_counter_sends_its_open_interval_on_shutdown():
    f = make_plugin(LogCounterFilter, ticker_interval=60)
    ctx = Ctx()
    f.process([Message(type="log", logger="openstack.nova", severity=6)] * 90, ctx)
    f.shutdown(ctx)
    info = [m for m in ctx.injected if values(m)["level"] == "info"]
    assert [values(m)["value"] * 60 for m in info] == [90]
    ctx.injected.clear()
    f.shutdown(ctx)
    assert ctx.injected == []
