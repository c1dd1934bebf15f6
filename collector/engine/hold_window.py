"""The hold window: what an input may checkpoint while its decoder holds records back.

A multi-line decoder (an OpenStack traceback, a MultiDecoder over one) keeps the last
message of a stream back until the next line shows whether it goes on. Its records came
in deliveries that were already routed, so the positions of those deliveries must not
reach the checkpoint yet: a restart would skip the held lines. Two ways to keep them out
were possible. Holding the deliveries' tickets open would fill the input's window
(poolsize) with held records and stall it. Instead each delivery is numbered, and the
position of one that a held message may have records from is *deferred*: kept here, out
of its own ticket, and handed to the first later ticket routed once no held message has
records from it or before (`Ticket.earlier` in collector/engine/acks.py). The watermark
then reports it only when that ticket, and so every batch before it (the ones that
carried the held records included), is done. In steady flow only the newest delivery's
position waits.

Two things end a hold besides the next line:

- The hold timeout. A held message whose stream stayed quiet for the decoder's
  `hold_timeout` is sent as it is. Quiet means *active* time: time the input spends
  waiting for room in its window (backpressure) does not count, as the next line may be
  just behind, unread because the input waits. Each delivery is dated in active time
  when it ends; one timer runs while anything is held.
- The safety net. A message that keeps growing over more deliveries than the window
  holds (poolsize) is sent before its end: its position, and every later one, would
  otherwise wait without bound. `forced_flushes` counts them (/stats, /metrics).

A decoder that cannot say which delivery its oldest held record came in
(`oldest_held_batch` is None) is taken to hold records from every delivery since it
started holding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Decoder
from hekapy.collector.engine.stats import RateLimitedLog

# What `settle` returns for "nothing was forced out" (never mutated).
_NOTHING: list[Message] = []


class HoldWindow:
    """The hold bookkeeping of one input whose decoder may hold messages back.

    The input numbers each delivery with `open()` before it routes it, asks `settle()`
    which position its ticket may carry, reports the delivery with `note_delivery()`
    once it is routed (or `note_flush()` after routing held messages), and brackets the
    time it waits for room with `pause()` / `resume()`. `on_idle` is called (from the
    event loop's timer) when some held message has been quiet for `hold_timeout`: the
    input then routes `take_idle()` under its delivery lock."""

    __slots__ = ("_deferred", "_hold_since", "_log", "_marks", "_on_idle", "_paused",
                 "_paused_since", "_timer", "decoder", "delivery", "forced_flushes",
                 "undelivered", "window")

    def __init__(self, decoder: Decoder, window: int, log: RateLimitedLog,
                 on_idle: Callable[[], None]) -> None:
        self.decoder = decoder
        self.window = window  # the input's poolsize: deliveries a held message may span
        self._log = log
        self._on_idle = on_idle
        self.delivery = 0  # the number of the latest delivery
        # Records decoded for the coming delivery but not routed yet: their deliveries'
        # positions must not be released by a flush that runs in between.
        self.undelivered = False
        self._deferred: deque[tuple[int, Any]] = deque()  # (delivery, position)
        # (delivery, active time at its end) of the deliveries a held message may have
        # its latest line from: the hold timeout counts from there.
        self._marks: deque[tuple[int, float]] = deque()
        self._hold_since: int | None = None
        self._paused = 0.0
        self._paused_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.forced_flushes = 0

    @property
    def waiting_positions(self) -> int:
        """How many delivered positions are kept out of the checkpoint now."""
        return len(self._deferred)

    # --- deliveries ----------------------------------------------------------------------
    def upcoming(self) -> int:
        """The number of the delivery whose records are being decoded now (the decoder
        dates what it holds by it)."""
        self.undelivered = True
        return self.delivery + 1

    def open(self) -> int:
        """Number a delivery that is about to be routed."""
        self.undelivered = False
        self.delivery += 1
        return self.delivery

    def settle(self, n: int, position: Any) -> tuple[list[Message], Any, list[Any] | None]:
        """For delivery `n` ending at `position`: the messages the safety net forced out
        (route them with the delivery), the position its ticket may carry (None when it
        is deferred) and the deferred positions that became safe with it."""
        dec = self.decoder
        if not (dec.holding or self._deferred or self._marks):
            return _NOTHING, position, None
        forced = _NOTHING
        oldest = self._oldest_held(n)
        if oldest is not None and n - oldest >= self.window:
            forced = self._flush_spanning(n)
            oldest = self._oldest_held(n)
        earlier = self._safe_positions(oldest)
        if oldest is not None and position is not None:
            self._deferred.append((n, position))
            position = None
        return forced, position, earlier

    def released(self) -> list[Any] | None:
        """The deferred positions a batch of flushed held messages may carry now. None
        while records are decoded but not yet routed: that delivery releases them."""
        if self.undelivered:
            return None
        return self._safe_positions(self._oldest_held(self.delivery))

    def note_delivery(self, n: int) -> None:
        """Delivery `n` is routed: date it for the hold timeout."""
        self._after(n)

    def note_flush(self) -> None:
        """Held messages were routed (or there was nothing to route)."""
        self._after(None)

    def take_idle(self) -> list[Message] | None:
        """The held messages of streams quiet for hold_timeout (None: none is)."""
        dec = self.decoder
        cutoff = self._idle_cutoff(dec.hold_timeout)
        if cutoff is None:
            return None
        flushed = dec.flush_stale(idle_before=cutoff + 1)
        # What is still held got a line after `cutoff`: older dates are of no use (a
        # long traceback still growing would otherwise look idle at once).
        marks = self._marks
        while marks and marks[0][0] <= cutoff:
            marks.popleft()
        return flushed

    # --- waiting for room ----------------------------------------------------------------
    def pause(self) -> None:
        """The input starts waiting for room in its window (not idleness)."""
        self._paused_since = time.monotonic()

    def resume(self) -> None:
        """The wait that `pause` began is over."""
        since = self._paused_since
        if since is not None:
            self._paused += time.monotonic() - since
            self._paused_since = None

    def _active_time(self) -> float:
        """Monotonic seconds minus the time spent waiting for room."""
        now = time.monotonic()
        paused = self._paused
        if self._paused_since is not None:
            paused += now - self._paused_since
        return now - paused

    # --- bookkeeping ---------------------------------------------------------------------
    def _oldest_held(self, n: int) -> int | None:
        """The delivery the oldest held record came in (None: nothing held), as of
        delivery `n`."""
        dec = self.decoder
        if not dec.holding:
            self._hold_since = None
            return None
        oldest = dec.oldest_held_batch
        if oldest is None:  # the decoder cannot say: every delivery since it held
            if self._hold_since is None:
                self._hold_since = n
            oldest = self._hold_since
        return oldest

    def _safe_positions(self, oldest: int | None) -> list[Any] | None:
        """The deferred positions of deliveries before `oldest` (all when None): no held
        message has records from them, and all of theirs travel in this batch or did
        before."""
        deferred = self._deferred
        if not deferred or (oldest is not None and deferred[0][0] >= oldest):
            return None
        out = []
        while deferred and (oldest is None or deferred[0][0] < oldest):
            out.append(deferred.popleft()[1])
        return out

    def _flush_spanning(self, n: int) -> list[Message]:
        """The safety net: the held messages that began a window's worth of deliveries
        before `n`, sent as they are."""
        window = self.window
        flushed = self.decoder.flush_stale(started_before=n - window + 1)
        if flushed:
            self.forced_flushes += len(flushed)
            self._log(logging.WARNING, "sent %d multi-line message(s) before their end: "
                      "they spanned more than %d deliveries (poolsize)", len(flushed),
                      window)
        return flushed

    def _after(self, n: int | None) -> None:
        """Date delivery `n` (None: a flush), forget the dates no held message needs,
        and keep the timer running while anything is held."""
        if not self.decoder.holding:
            self._marks.clear()
            self._hold_since = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        marks = self._marks
        if n is not None:
            marks.append((n, self._active_time()))
        oldest = self._oldest_held(self.delivery)
        while marks and oldest is not None and marks[0][0] < oldest:
            marks.popleft()
        if self._timer is None and marks:
            self._arm()

    # --- the hold timer ------------------------------------------------------------------
    def _arm(self) -> None:
        """Wake up when the oldest dated delivery turns hold_timeout old."""
        delay = self.decoder.hold_timeout - (self._active_time() - self._marks[0][1])
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.001),
                                                            self._expired)

    def _idle_cutoff(self, timeout: float) -> int | None:
        """The newest delivery that ended at least `timeout` seconds of active time ago
        (a held message whose latest line came in it or before is idle), or None."""
        limit = self._active_time() - timeout
        cutoff = None
        for n, t in self._marks:
            if t > limit:
                break
            cutoff = n
        return cutoff

    def _expired(self) -> None:
        self._timer = None
        dec = self.decoder
        if not dec.holding or not self._marks:
            return
        if self._paused_since is not None:
            return  # waiting for room is not idleness; the delivery re-arms when it ends
        if self._idle_cutoff(dec.hold_timeout) is None:
            self._arm()
            return
        self._on_idle()
