"""Message time for time-driven filters, when the pipeline replays the past.

The daemon ticks its filters (`ticker_interval`) on the wall clock: a metric for the
last 60 s counts the lines that arrived in the last 60 s. `hekapy replay` reads a month
in minutes, so there the ticks follow the messages' own Timestamps instead:

- `MessageClock` is the input's side. Each source (a replayed file) reports the newest
  Timestamp it delivered; the watermark is the oldest of those over the sources still
  being read, and of the first Timestamp of the next file to start (files start in the
  order of their first lines): every later message is at least that new, as a file's
  lines are in time order. Each batch carries the watermark of its delivery.
- `TickSchedule` is a filter's side. It sorts the messages into `ticker_interval`
  buckets by Timestamp and, once a batch's watermark has passed a bucket's end, hands
  the filter that bucket's messages and then `timer_event(bucket end)`, in time order.
  So a filter's metrics carry the time of the lines they count, at the ticks that
  aligned wall-clock ticks would have had.

A message older than a bucket already closed (a file whose lines are not in time order)
cannot go back: it is counted in the oldest open bucket and
counted as `late`. Idle gaps (archives with days missing) get no ticks beyond
`MAX_IDLE_TICKS` empty intervals after the last busy one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable, Iterator

from hekapy.collector.engine.message import Message

# Empty intervals ticked after a busy one (LogCounterFilter's zero counts), before the
# schedule jumps to the next interval that has messages.
MAX_IDLE_TICKS = 10


class MessageClock:
    """The replay watermark: the oldest of the newest Timestamps of the files being
    read and the first Timestamp of the next file to start.

    `upcoming` lists the files in the order they will start, oldest first, with their
    first Timestamp (None when unknown: such a file holds the watermark back until it
    delivers its first batch).
    """

    def __init__(self, upcoming: Iterable[tuple[Hashable, int | None]] = ()) -> None:
        self._latest: dict[Hashable, int] = {}
        self._upcoming = deque(upcoming)
        self._first = dict(self._upcoming)
        self._started: set[Hashable] = set()

    def start(self, source: Hashable) -> None:
        """`source` is being read; nothing of it is older than its first Timestamp."""
        self._started.add(source)
        first = self._first.get(source)
        self._latest[source] = -1 if first is None else first

    def observe(self, source: Hashable, newest_ns: int) -> None:
        if newest_ns > self._latest.get(source, -1):
            self._latest[source] = newest_ns

    def finish(self, source: Hashable) -> None:
        """`source` delivers nothing more; it no longer holds the watermark back."""
        self._latest.pop(source, None)
        self._started.add(source)

    @property
    def watermark(self) -> int | None:
        """None while nothing is being read and nothing is to come."""
        upcoming = self._upcoming
        while upcoming and upcoming[0][0] in self._started:
            upcoming.popleft()
        marks = list(self._latest.values())
        if upcoming:
            first = upcoming[0][1]
            marks.append(-1 if first is None else first)
        return min(marks) if marks else None


class TickSchedule:
    """One time-driven filter's buckets of pending messages, in message time."""

    def __init__(self, interval_s: float) -> None:
        self.interval = max(1, int(interval_s * 1e9))
        self.buckets: dict[int, list[Message]] = {}
        self.closed_before: int | None = None  # buckets below this index have ticked
        self.late = 0
        self._idle = 0  # idle ticks since the last busy one

    def add(self, messages: list[Message], watermark: int | None
            ) -> Iterator[tuple[list[Message], int]]:
        """File `messages`, then yield (messages, tick_ns) for each bucket the watermark
        has passed, oldest first (an empty list for an idle tick)."""
        interval = self.interval
        buckets = self.buckets
        floor = self.closed_before
        for m in messages:
            b = m.timestamp // interval
            if floor is not None and b < floor:
                self.late += 1
                b = floor
            bucket = buckets.get(b)
            if bucket is None:
                buckets[b] = [m]
            else:
                bucket.append(m)
        if watermark is not None:
            yield from self._close(watermark // interval)

    def drain(self) -> Iterator[tuple[list[Message], int]]:
        """Every bucket still open (the replay ended)."""
        if self.buckets:
            yield from self._close(max(self.buckets) + 1)

    def _close(self, before: int) -> Iterator[tuple[list[Message], int]]:
        """Tick every interval below index `before` that is due: the busy ones, and up
        to MAX_IDLE_TICKS idle ones after each busy one."""
        interval = self.interval
        while True:
            busy = min(self.buckets) if self.buckets else None
            limit = before if busy is None else min(before, busy)
            done = self.closed_before
            if done is not None and done < limit:
                while done < limit and self._idle < MAX_IDLE_TICKS:
                    yield [], (done + 1) * interval
                    done += 1
                    self._idle += 1
                self.closed_before = limit  # the rest of a long gap gets no ticks
            if busy is None or busy >= before:
                return
            yield self.buckets.pop(busy), (busy + 1) * interval
            self.closed_before = busy + 1
            self._idle = 0
