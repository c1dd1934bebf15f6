"""Batches and the bounded queue that carries them between stages.

Stages hand each other lists of messages (`Batch`), never single messages: in Python a
per-message hand-off costs more than the work itself. Every queue is bounded by batch
count (Heka's `plugin_chansize`) and by bytes; a full queue makes the producer wait,
which is how a slow output stalls its inputs instead of growing memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hekapy.collector.engine.acks import Ticket
    from hekapy.collector.engine.message import Message


class Batch:
    """Messages plus the ticket that acknowledges them to their input.

    `nbytes` approximates the memory the batch pins (the raw record bytes it came from).
    `loops` counts filter re-injections (Heka's `max_message_loops`).
    `watermark`: in message time (replay), a Timestamp every later message of the
    sources still being read is at least as new as (collector/engine/message_clock.py).
    """

    __slots__ = ("loops", "messages", "nbytes", "ticket", "watermark")

    def __init__(self, messages: list[Message], ticket: Ticket | None = None,
                 nbytes: int = 0, loops: int = 0, watermark: int | None = None) -> None:
        self.messages = messages
        self.ticket = ticket
        self.nbytes = nbytes
        self.loops = loops
        self.watermark = watermark

    def done(self) -> None:
        """The consumer has durably handled this batch."""
        t = self.ticket
        if t is not None:
            self.ticket = None  # a second done() is a no-op, never a double release
            t.release()

    def __len__(self) -> int:
        return len(self.messages)


class QueueClosed(Exception):
    """put() on a queue whose consumer has gone away."""


class BatchQueue:
    """An asyncio FIFO of batches bounded by count and bytes; one consumer.

    `close()` lets the consumer drain what is queued, after which `get()` returns None.
    """

    def __init__(self, max_batches: int = 30, max_bytes: int = 4 << 20) -> None:
        self.max_batches = max(1, max_batches)
        self.max_bytes = max(1, max_bytes)
        self._items: deque[Batch] = deque()
        self._bytes = 0
        self._messages = 0
        self._closed = False
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._not_empty = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def nmessages(self) -> int:
        return self._messages

    @property
    def closed(self) -> bool:
        return self._closed

    def _full(self) -> bool:
        # An oversized batch is accepted into an empty queue so it can never wedge.
        return bool(self._items) and (len(self._items) >= self.max_batches
                                      or self._bytes >= self.max_bytes)

    async def put(self, batch: Batch) -> None:
        while self._full():
            if self._closed:
                raise QueueClosed
            self._not_full.clear()
            await self._not_full.wait()
        if self._closed:
            raise QueueClosed
        self._items.append(batch)
        self._bytes += batch.nbytes
        self._messages += len(batch.messages)
        self._not_empty.set()

    async def get(self) -> Batch | None:
        """The next batch, or None once the queue is closed and drained."""
        while not self._items:
            if self._closed:
                return None
            self._not_empty.clear()
            await self._not_empty.wait()
        return self._pop()

    async def wait_nonempty(self) -> None:
        """Until a batch is queued or the queue is closed. Safe to cancel (unlike a
        cancelled get(), it can never swallow a batch)."""
        while not self._items and not self._closed:
            self._not_empty.clear()
            await self._not_empty.wait()

    def get_nowait(self) -> Batch | None:
        return self._pop() if self._items else None

    def _pop(self) -> Batch:
        batch = self._items.popleft()
        self._bytes -= batch.nbytes
        self._messages -= len(batch.messages)
        if not self._full():
            self._not_full.set()
        return batch

    def put_front(self, batches: list[Batch]) -> None:
        """Return batches to the head of the queue, in order (a restarted consumer gets
        what its crashed predecessor had not acknowledged). Ignores the bounds: these
        batches were already counted against them once."""
        for b in reversed(batches):
            self._items.appendleft(b)
            self._bytes += b.nbytes
            self._messages += len(b.messages)
        if batches:
            self._not_empty.set()

    def close(self) -> None:
        """No more puts; wake the consumer so it can drain and finish."""
        self._closed = True
        self._not_empty.set()
        self._not_full.set()
