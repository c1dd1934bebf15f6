"""Live views of a running collector, the engine side: the tap registry the router offers
batches to.

`TapRegistry` hangs off `Router.tap` only while at least one viewer is attached; with
none, the router's whole cost is one attribute check per batch. Each viewer (`TapViewer`)
has a small bounded queue of message references. `offer()` never waits: it runs the
viewer's matcher (and, for `plugin=NAME`, that plugin's own message_matcher, i.e. what
the router delivers to its queue) and appends what fits; what does not fit is dropped
*for that viewer only* and counted. While a viewer's queue is full its matcher is not even
run: those messages are counted as unexamined. The status server's `GET /tap`
(collector/app/status/server.py) attaches viewers and streams their queues; `hekapy tap`
(collector/app/tap.py) reads that stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hekapy.collector.engine.message import Message
    from hekapy.collector.engine.router import Route, Router

DEFAULT_BUFFER = 1000
MAX_BUFFER = 100_000


class TapViewer:
    """One attached viewer: its matcher, the plugin it watches and its bounded queue."""

    def __init__(self, predicate: Callable[[Message], bool], route: Route | None = None,
                 capacity: int = DEFAULT_BUFFER) -> None:
        always = getattr(predicate, "always", None)
        self.nothing = always is False
        self.predicate = None if always else predicate
        self.route = route
        self.capacity = max(1, capacity)
        self.queue: deque[Message] = deque()
        self.dropped = 0  # matching messages that did not fit
        self.unexamined = 0  # messages that passed while the queue was full
        self.delivered = 0
        self.wake = asyncio.Event()

    def offer(self, msgs: list[Message], skip: str | None) -> None:
        room = self.capacity - len(self.queue)
        if room <= 0:
            self.unexamined += len(msgs)
            return
        if self.nothing:
            return
        r = self.route
        if r is not None:
            if r.name == skip or r.always is False:
                return
            if not r.always:
                rp = r.predicate
                msgs = [m for m in msgs if rp(m)]
        pred = self.predicate
        matched = msgs if pred is None else [m for m in msgs if pred(m)]
        if not matched:
            return
        if len(matched) > room:
            self.dropped += len(matched) - room
            matched = matched[:room]
        self.queue.extend(matched)
        self.wake.set()

    def take(self, n: int) -> list[Message]:
        q = self.queue
        out = [q.popleft() for _ in range(min(n, len(q)))]
        self.delivered += len(out)
        return out


class TapRegistry:
    """The viewers of one router; sets `router.tap` only while there are any."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.viewers: list[TapViewer] = []
        self.dropped_total = 0  # of viewers already gone, for /metrics
        self.offer_errors = 0

    def attach(self, viewer: TapViewer) -> None:
        self.viewers.append(viewer)
        self.router.tap = self

    def detach(self, viewer: TapViewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
            self.dropped_total += viewer.dropped + viewer.unexamined
        if not self.viewers:
            self.router.tap = None

    def dropped(self) -> int:
        """Messages every viewer so far missed (dropped or unexamined)."""
        return self.dropped_total + sum(v.dropped + v.unexamined for v in self.viewers)

    def offer(self, msgs: list[Message], skip: str | None = None) -> None:
        """Called by Router.route for every batch while viewers are attached. Never
        waits and never raises into the pipeline."""
        for v in self.viewers:
            try:
                v.offer(msgs, skip)
            except Exception:
                self.offer_errors += 1
