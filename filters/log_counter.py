"""LogCounterFilter: log messages per second by service and level, as LMA's
logs_counter.lua (docs/compatibility.md, "LMA metrics"): every `ticker_interval` seconds (60) one
`log_messages` metric per service (second Logger token: openstack.nova → nova) and
level (the 8 syslog levels, lower case), zeros included for every service seen so far,
tags hostname, service, level. Under `hekapy replay` the ticks follow the lines' own
Timestamps (collector/engine/message_clock.py), so a backfill counts each minute's lines.

Keys: ticker_interval (60).

    [logs_counter]
    type = "LogCounterFilter"
    message_matcher = 'Type == "log" && Logger =~ /^openstack\\./'
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.metrics import metric_message
from hekapy.collector.engine.plugin import Filter, OptionError, register
from hekapy.collector.engine.severity import LABEL_BY_SEVERITY

LEVELS = tuple(label.lower() for label in LABEL_BY_SEVERITY)


@register
class LogCounterFilter(Filter):
    __doc__ = __doc__

    defaults: ClassVar[dict[str, Any]] = {
        "message_matcher": "Type == 'log' && Logger =~ /^openstack\\./",
        "ticker_interval": 60,
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if cfg.ticker_interval <= 0:
            raise OptionError("must be more than 0", key="ticker_interval")
        self.counts: dict[str, list[int]] = {}

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        counts = self.counts
        for m in messages:
            tokens = m.logger.split(".")
            service = tokens[1] if len(tokens) > 1 else tokens[0]
            per_level = counts.get(service)
            if per_level is None:
                per_level = counts[service] = [0] * 8
            severity = m.severity if 0 <= m.severity <= 7 else 7
            per_level[severity] += 1

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        interval = self.cfg.ticker_interval
        for service, per_level in self.counts.items():
            for severity, n in enumerate(per_level):
                ctx.inject(metric_message(
                    "log_messages", n / interval,
                    {"hostname": ctx.hostname, "service": service,
                     "level": LEVELS[severity]}, now_ns, self.name, ctx.hostname))
            self.counts[service] = [0] * 8

    def shutdown(self, ctx: FilterContext) -> None:
        # A stop or a reload would lose the lines counted since the last tick: sent now
        # (as Heka's timer_event_on_shutdown), a rate over the whole interval, so the
        # counts add up across restarts. (Under replay every interval was ticked already.)
        if any(any(per_level) for per_level in self.counts.values()):
            self.timer_event(time.time_ns(), ctx)
