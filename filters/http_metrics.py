"""HttpMetricsFilter: response-time statistics of the HTTP requests that the logs show,
as LMA's http_metrics_aggregator.lua computed them (docs/compatibility.md, "LMA metrics").

Every `ticker_interval` seconds (10), one multi-value metric per (service, method,
status class): `<first two Logger tokens>_http_response_times`
(openstack_nova_http_response_times, …) with fields min, max, sum, count, upper_<p>
(the p-th percentile: the (count - round((100-p)/100 * count))-th smallest time) and
rate (count / interval), tags hostname, http_method (GET POST OPTIONS DELETE PUT HEAD
TRACE CONNECT PATCH only) and http_status (1xx … 5xx). Lines older than the previous
tick minus `grace_time` are ignored (a backlog replayed after an outage would otherwise
land in the current bucket). Under `hekapy replay` the ticks follow the lines' own
Timestamps (collector/engine/message_clock.py), so a backfill gets its metrics at their time.

Keys: ticker_interval (10), percentile (90), grace_time (5 s).

    [http_metrics]
    type = "HttpMetricsFilter"
    message_matcher = "Type == 'log' && Fields[http_response_time] != NIL"
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.metrics import metric_message
from hekapy.collector.engine.plugin import Filter, Option, OptionError, register

METHODS = frozenset(("GET", "POST", "OPTIONS", "DELETE", "PUT", "HEAD", "TRACE", "CONNECT",
                     "PATCH"))


def percentile_value(times: list[float], percentile: int) -> float:
    """`times` sorted; LMA's index: count - round((100 - p)% of count), 1-based."""
    n = len(times)
    index = n - round((100 - percentile) / 100 * n)
    return times[max(index, 1) - 1]


@register
class HttpMetricsFilter(Filter):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "percentile": Option("int", 90),
        "grace_time": Option("duration", "5s"),
    }
    defaults: ClassVar[dict[str, Any]] = {
        "message_matcher": "Type == 'log' && Fields[http_response_time] != NIL",
        "ticker_interval": 10,
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if not 0 < cfg.percentile < 100:
            raise OptionError("must be between 1 and 99", key="percentile")
        if cfg.ticker_interval <= 0:
            raise OptionError("must be more than 0", key="ticker_interval")
        self.buckets: dict[tuple[str, str, str], list[float]] = {}
        self.last_tick = time.time_ns()
        self.ignored = 0

    def init(self, ctx: FilterContext) -> None:
        if ctx.message_time:  # replay: the first tick is the first interval's end
            self.last_tick = 0

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        oldest = self.last_tick - int(self.cfg.grace_time * 1e9)
        buckets = self.buckets
        for m in messages:
            if m.timestamp < oldest:
                self.ignored += 1
                continue
            t = m.find_field("http_response_time")
            method = m.find_field("http_method")
            status = m.find_field("http_status")
            if t is None or method is None or status is None:
                continue
            verb = method.values[0]
            try:
                code = int(status.values[0])
                seconds = float(t.values[0])
            except (TypeError, ValueError):
                continue
            if verb not in METHODS or not 100 <= code <= 599:
                continue
            tokens = m.logger.split(".")
            measurement = "_".join(tokens[:2]) + "_http_response_times"
            key = (measurement, verb, f"{code // 100}xx")
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [seconds]
            else:
                bucket.append(seconds)

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        interval = self.cfg.ticker_interval
        for (measurement, verb, status), times in self.buckets.items():
            times.sort()
            values = {"min": times[0], "max": times[-1], "sum": sum(times),
                      "count": len(times),
                      f"upper_{self.cfg.percentile}": percentile_value(times,
                                                                       self.cfg.percentile),
                      "rate": len(times) / interval}
            ctx.inject(metric_message(measurement, values,
                                      {"hostname": ctx.hostname, "http_method": verb,
                                       "http_status": status}, now_ns, self.name,
                                      ctx.hostname))
        self.buckets = {}
        self.last_tick = now_ns

    def shutdown(self, ctx: FilterContext) -> None:
        # A stop or a reload (SIGHUP) would lose the requests seen since the last tick:
        # they are sent now, as Heka's timer_event_on_shutdown did, so counts add up
        # across restarts. (Under replay every interval was ticked already.)
        if self.buckets:
            self.timer_event(time.time_ns(), ctx)
