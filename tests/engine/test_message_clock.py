"""Message-time ticks for replay (collector/engine/message_clock.py): the watermark over the
files being read and the next one to start, and a filter's buckets closing in order."""

from __future__ import annotations

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.message_clock import MAX_IDLE_TICKS, MessageClock, TickSchedule

S = 1_000_000_000


def at(*seconds: float) -> list[Message]:
    return [Message(timestamp=int(s * S), payload=str(s)) for s in seconds]


def test_watermark_is_the_slowest_file_or_the_next_to_start():
    # In start order, as replay sorts them: unknown first line first, then by time.
    clock = MessageClock([("c", None), ("b", 50 * S), ("a", 100 * S)])
    assert clock.watermark == -1  # "c" has no known first line: nothing is complete
    clock.start("c")
    clock.observe("c", 10 * S)
    assert clock.watermark == 10 * S
    clock.finish("c")
    assert clock.watermark == 50 * S  # "b" has not started: nothing older than its first
    clock.start("a")
    clock.start("b")
    clock.observe("a", 300 * S)
    clock.observe("b", 120 * S)
    assert clock.watermark == 120 * S
    clock.finish("b")
    assert clock.watermark == 300 * S
    clock.finish("a")
    assert clock.watermark is None


def test_buckets_tick_in_time_order_when_the_watermark_passes():
    sched = TickSchedule(10)
    steps = list(sched.add(at(1, 2, 12, 25), watermark=12 * S))
    assert [([m.payload for m in ms], t // S) for ms, t in steps] == [(["1", "2"], 10)]
    steps = list(sched.add(at(13, 31), watermark=31 * S))
    assert [([m.payload for m in ms], t // S) for ms, t in steps] == [
        (["12", "13"], 20), (["25"], 30)]
    # Older than a bucket already ticked: counted in the oldest open one, and said so.
    steps = list(sched.add(at(5), watermark=31 * S))
    assert steps == [] and sched.late == 1
    assert [([m.payload for m in ms], t // S) for ms, t in sched.drain()] == [
        (["31", "5"], 40)]


def test_idle_intervals_tick_empty_up_to_the_bound_then_jump():
    sched = TickSchedule(1)
    list(sched.add(at(0.5), watermark=S))
    steps = list(sched.add(at(1000.5), watermark=1001 * S))
    idle = [t // S for ms, t in steps if not ms]
    assert idle == list(range(2, 2 + MAX_IDLE_TICKS))
    assert [t // S for ms, t in steps if ms] == [1001]
