"""End-to-end acknowledgement: an input learns which of its positions are safe to journal.

Each input numbers its batches with `Ticket`s. A ticket is reference-counted: the
producer holds one reference while routing, the router adds one per consumer that took
(part of) the batch, and each consumer releases its reference once the batch is durably
handled (stored by the server, written to a disk buffer, or consumed by a filter).

The `AckTracker` keeps the tickets in order and a watermark: the newest ticket before
which every ticket is done. When the watermark moves past tickets, the input's
`on_progress` callback gets each of their positions, oldest first (an opaque value:
file and offset, AMQP delivery tag, ...). An input with several streams (files) thus
learns every stream's safe position, not only the last one's.

A ticket may carry the positions of `earlier` batches besides its own: a multi-line
decoder held some of their records back, and they travel in this batch or were
delivered before it, so those positions are safe only once the watermark passes this
ticket (see collector/engine/hold_window.py). They are reported just before the
ticket's own position, in the order they were given.

The tracker also bounds how much an input may have in flight, by batches (Heka's
`poolsize`) and by bytes: an input whose outputs never acknowledge stops reading.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any


class Ticket:
    __slots__ = ("done", "earlier", "nbytes", "position", "refs", "seq", "tracker")

    def __init__(self, tracker: AckTracker | None, seq: int, position: Any, nbytes: int,
                 earlier: list[Any] | None = None) -> None:
        self.tracker = tracker
        self.seq = seq
        self.position = position
        self.nbytes = nbytes
        self.refs = 1
        self.done = False
        # Positions of earlier batches that became safe only with this one (see above).
        self.earlier = earlier

    def retain(self, n: int = 1) -> None:
        """Another consumer (or another part of a split batch) now holds this ticket."""
        self.refs += n

    def release(self) -> None:
        """One holder is finished with the batch."""
        self.refs -= 1
        if self.refs == 0:
            self.done = True
            if self.tracker is not None:
                self.tracker._advance()
        elif self.refs < 0:
            raise RuntimeError(f"ticket {self.seq} released more often than retained")


class AckTracker:
    """Orders one input's tickets, bounds its in-flight window, reports progress."""

    def __init__(self, on_progress: Callable[[Any], None] | None = None,
                 max_batches: int = 100, max_bytes: int = 64 << 20) -> None:
        self.on_progress = on_progress
        self.max_batches = max(1, max_batches)
        self.max_bytes = max(1, max_bytes)
        self._pending: deque[Ticket] = deque()
        self._seq = 0
        self._bytes = 0
        self._space = asyncio.Event()
        self._space.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.acked_position: Any = None
        self.acked_batches = 0

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def in_flight_bytes(self) -> int:
        return self._bytes

    @property
    def full(self) -> bool:
        """No room for another batch: ticket() would wait."""
        return self._full()

    def _full(self) -> bool:
        # A lone batch larger than max_bytes still goes through: never deadlock on it.
        return bool(self._pending) and (len(self._pending) >= self.max_batches
                                        or self._bytes >= self.max_bytes)

    async def ticket(self, position: Any, nbytes: int = 0,
                     earlier: list[Any] | None = None) -> Ticket:
        """A new ticket for a batch ending at `position` (None: no position of its own),
        reporting the `earlier` positions first; waits while the window is full."""
        while self._full():
            self._space.clear()
            await self._space.wait()
        self._seq += 1
        t = Ticket(self, self._seq, position, nbytes, earlier)
        self._pending.append(t)
        self._bytes += nbytes
        self._idle.clear()
        return t

    def _advance(self) -> None:
        pending = self._pending
        if not pending or not pending[0].done:
            return
        progress = self.on_progress
        while pending and pending[0].done:
            t = pending.popleft()
            self._bytes -= t.nbytes
            self.acked_batches += 1
            if t.earlier:
                for p in t.earlier:
                    self.acked_position = p
                    if progress is not None:
                        progress(p)
            if t.position is not None:
                self.acked_position = t.position
                if progress is not None:
                    progress(t.position)
        if not self._full():
            self._space.set()
        if not pending:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until every ticket handed out so far is done."""
        await self._idle.wait()
