"""The router: hands each batch's matching messages to every filter and output queue.

There is no router task. Whoever produced a batch (an input, or a filter injecting)
awaits `route()`, so a full consumer queue blocks the producer directly: that is the
backpressure path from a slow output back to the file being read.

`tap` is None unless a `hekapy tap` viewer is attached (collector/engine/tap.py): then every
batch is offered to it first, which never waits. Without a viewer the cost is that one
attribute check per batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hekapy.collector.engine.queue import Batch, BatchQueue, QueueClosed

if TYPE_CHECKING:
    from hekapy.collector.engine.message import Message
    from hekapy.collector.engine.stats import PluginStats
    from hekapy.collector.engine.tap import TapRegistry


class Route:
    """One consumer as the router sees it: its matcher, its `message_signer` and its
    queue.

    `signer` ("" = none): the consumer takes only messages whose verified signer
    (Message.signer) is exactly this name, whatever its matcher says (docs/compatibility.md,
    "Heka stream framing"). Routes without one pay nothing for it."""

    __slots__ = ("always", "name", "predicate", "queue", "signer", "stats")

    def __init__(self, name: str, predicate: Callable[[Message], bool], queue: BatchQueue,
                 stats: PluginStats, signer: str = "") -> None:
        self.name = name
        self.predicate = predicate
        # True: every message matches; False: none does; None: evaluate per message.
        self.always = getattr(predicate, "always", None)
        self.queue = queue
        self.stats = stats
        self.signer = signer


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.messages_routed = 0
        self.messages_unmatched = 0
        self.tap: TapRegistry | None = None  # set only while a tap viewer is attached

    def add(self, route: Route) -> None:
        self.routes.append(route)

    def remove(self, name: str) -> None:
        self.routes = [r for r in self.routes if r.name != name]

    async def route(self, batch: Batch, skip: str | None = None) -> None:
        """Deliver `batch` to every matching consumer (except `skip`), then release the
        producer's reference on its ticket. Unmatched messages are done at once."""
        msgs = batch.messages
        n = len(msgs)
        ticket = batch.ticket
        delivered = False
        try:
            tap = self.tap
            if tap is not None:
                tap.offer(msgs, skip)
            for r in self.routes:
                if r.always is False or r.name == skip:
                    continue
                if r.signer:
                    matched = self._signed(r, msgs)
                    if not matched:
                        continue
                elif r.always:
                    matched = msgs
                else:
                    pred = r.predicate
                    t0 = time.perf_counter()
                    matched = [m for m in msgs if pred(m)]
                    r.stats.matcher_seconds += time.perf_counter() - t0
                    if not matched:
                        continue
                k = len(matched)
                nbytes = batch.nbytes if k == n else batch.nbytes * k // n
                if ticket is not None:
                    ticket.retain()
                try:
                    await r.queue.put(Batch(matched, ticket, nbytes, batch.loops,
                                           batch.watermark))
                except QueueClosed:
                    # The consumer has stopped; it will never acknowledge this.
                    r.stats.dropped += k
                    if ticket is not None:
                        ticket.release()
                    continue
                r.stats.messages_in += k
                r.stats.bytes_in += nbytes
                delivered = True
        finally:
            self.messages_routed += n
            if not delivered:
                self.messages_unmatched += n
            batch.done()

    @staticmethod
    def _signed(r: Route, msgs: list[Message]) -> list[Message]:
        """The messages of a route with message_signer: that signer's, and matched."""
        signer = r.signer
        if r.always:
            return [m for m in msgs if m.signer == signer]
        pred = r.predicate
        t0 = time.perf_counter()
        matched = [m for m in msgs if m.signer == signer and pred(m)]
        r.stats.matcher_seconds += time.perf_counter() - t0
        return matched
