"""CounterFilter: counts matched messages and reports the rate (Heka's own filter)."""

from __future__ import annotations

from types import SimpleNamespace

from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Filter, register

OUTPUT_TYPE = "heka.counter-output"


@register
class CounterFilter(Filter):
    """Every ticker_interval seconds (default 5) injects a message of Type
    "heka.counter-output" with Payload "Got N messages. R msg/sec", and every tenth
    report a summary "AGG Sum. Min: … Max: … Mean: …". Silent while nothing arrives.
    The rate is per second of the ticks' time: the clock's in the daemon, the lines'
    own under `hekapy replay` (the rate they were logged at).

    Keys: message_matcher ("Type != 'heka.counter-output'"), ticker_interval (5).

        [counter]
        type = "CounterFilter"
        message_matcher = "Type == 'logfile'"
        ticker_interval = 10
    """

    defaults = {"message_matcher": "Type != 'heka.counter-output'", "ticker_interval": 5}

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self.count = 0
        self._last_count = 0
        self._last_ns: int | None = None
        self._rates: list[float] = []

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        self.count += len(messages)

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        sent = self.count - self._last_count
        if sent == 0:
            return
        # The tick's own time: the clock in the daemon (as Heka's filter), the lines'
        # time under replay, so that a backfill reports the rate it was logged at.
        # The first tick, and one after the clock went back, count one interval.
        elapsed = (now_ns - self._last_ns) / 1e9 if self._last_ns is not None else 0.0
        if elapsed <= 0:
            elapsed = float(self.cfg.ticker_interval)
        rate = sent / elapsed
        self._last_count = self.count
        self._last_ns = now_ns
        self._rates.append(rate)
        ctx.inject(Message(type=OUTPUT_TYPE, logger=self.name, hostname=ctx.hostname,
                           payload=f"Got {self.count} messages. {rate:0.2f} msg/sec"))
        if len(self._rates) == 10:
            rates = sorted(self._rates)
            ctx.inject(Message(
                type=OUTPUT_TYPE, logger=self.name, hostname=ctx.hostname,
                payload=f"AGG Sum. Min: {rates[0]:0.2f}    Max: {rates[-1]:0.2f}    "
                        f"Mean: {sum(rates) / len(rates):0.2f}"))
            self._rates.clear()
