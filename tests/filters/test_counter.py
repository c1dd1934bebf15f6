"""CounterFilter: Heka's "Got N messages. R msg/sec" reports, at the rate of the tick's
own time (the clock in the daemon, the lines' time under replay)."""

from __future__ import annotations

from hekapy.collector.engine.message import Message
from hekapy.filters.counter import CounterFilter
from tests.helpers.filters import RecordingFilterContext
from tests.helpers.plugins import make_plugin

S = 10**9


def payloads(ctx: RecordingFilterContext) -> list[str]:
    return [m.payload for m in ctx.injected]


def test_rate_is_per_second_of_the_ticks_time():
    f = make_plugin(CounterFilter, ticker_interval=5)
    ctx = RecordingFilterContext()
    f.process([Message(type="log")] * 50, ctx)
    f.timer_event(1000 * S, ctx)  # the first tick counts one interval
    f.process([Message(type="log")] * 30, ctx)
    f.timer_event(1010 * S, ctx)  # 10 s of (message) time later, however fast it came
    assert payloads(ctx) == ["Got 50 messages. 10.00 msg/sec",
                             "Got 80 messages. 3.00 msg/sec"]


def test_silent_without_messages_and_a_clock_gone_back_counts_one_interval():
    f = make_plugin(CounterFilter, ticker_interval=5)
    ctx = RecordingFilterContext()
    f.timer_event(1000 * S, ctx)
    assert payloads(ctx) == []
    f.process([Message(type="log")] * 20, ctx)
    f.timer_event(2000 * S, ctx)
    f.process([Message(type="log")] * 20, ctx)
    f.timer_event(1500 * S, ctx)  # the wall clock was set back
    assert payloads(ctx)[-1] == "Got 40 messages. 4.00 msg/sec"


def test_every_tenth_report_adds_the_summary():
    f = make_plugin(CounterFilter, ticker_interval=1)
    ctx = RecordingFilterContext()
    for i in range(10):
        f.process([Message(type="log")] * (i + 1), ctx)
        f.timer_event((i + 1) * S, ctx)
    assert payloads(ctx)[-1] == "AGG Sum. Min: 1.00    Max: 10.00    Mean: 5.50"
    assert all(m.type == "heka.counter-output" for m in ctx.injected)
