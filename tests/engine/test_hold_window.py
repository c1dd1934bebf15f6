"""HoldWindow on its own, with a real multi-line decoder: which delivered positions wait
for a held message, when they are released, the poolsize safety net and the hold timer.
(The pipeline-level behaviour is in test_decoder_hold.py and test_decoder_hold_flow.py
beside it.)"""

from __future__ import annotations

import asyncio
import logging

from hekapy.collector.engine.hold_window import HoldWindow
from hekapy.collector.engine.message import Message, new_record_message
from hekapy.collector.engine.stats import RateLimitedLog
from hekapy.decoders.openstack_log import OpenStackLogDecoder
from tests.helpers.plugins import make_plugin

T0 = "2015-12-15 10:00:00.123 1234 "


class Feed:
    """Runs deliveries through a HoldWindow as InputContext does: decode, number,
    settle, route (here: collect), note."""

    def __init__(self, window: int = 10) -> None:
        self.dec = make_plugin(OpenStackLogDecoder, tz="UTC")
        self.idle = asyncio.Event()
        self.hold = HoldWindow(self.dec, window, RateLimitedLog(logging.getLogger("t")),
                               self.idle.set)
        self.routed: list[Message] = []
        self.tickets: list[tuple[object, list | None]] = []

    def deliver(self, lines: list[str], position: object) -> None:
        self.dec.batch = self.hold.upcoming()
        for text in lines:
            r = self.dec.decode(new_record_message(1, "logfile", "nova_api", "h",
                                                   T0 + text + "\n"))
            if r is not None:
                self.routed.extend([r] if isinstance(r, Message) else r)
        n = self.hold.open()
        forced, position, earlier = self.hold.settle(n, position)
        self.routed.extend(forced)
        self.tickets.append((position, earlier))
        self.hold.note_delivery(n)


async def test_a_position_waits_until_no_held_message_has_lines_from_it():
    feed = Feed()
    feed.deliver(["ERROR nova.x [-] failed"], "p1")  # held: a traceback may follow
    assert feed.tickets[-1] == (None, None) and feed.hold.waiting_positions == 1
    # A new message ends the first (p1 is safe with this batch) and is held itself.
    feed.deliver(["ERROR nova.x Traceback (most recent call last):"], "p2")
    assert feed.tickets[-1] == (None, ["p1"])
    feed.deliver(['ERROR nova.x   File "f.py", line 1, in f'], "p3")
    assert feed.tickets[-1] == (None, None)  # p2 and p3 both have lines in it
    assert feed.hold.waiting_positions == 2
    # Records decoded for a delivery not routed yet: a flush must not release them.
    feed.dec.batch = feed.hold.upcoming()
    assert feed.hold.released() is None
    feed.hold.open()
    assert feed.hold.released() is None  # the traceback is still held
    [held] = feed.dec.flush()
    assert held.payload == 'Traceback (most recent call last):\n  File "f.py", line 1, in f\n'
    assert feed.hold.released() == ["p2", "p3"]
    assert feed.hold.waiting_positions == 0
    feed.hold.note_flush()


async def test_a_message_spanning_the_window_is_forced_out_with_its_positions():
    feed = Feed(window=3)
    feed.deliver(["ERROR nova.x [-] failed", "ERROR nova.x Traceback (most recent call "
                  "last):"], "p1")
    feed.deliver(['ERROR nova.x   File "a.py", line 1, in f'], "p2")
    feed.deliver(['ERROR nova.x   File "b.py", line 2, in g'], "p3")
    assert feed.hold.forced_flushes == 0 and feed.hold.waiting_positions == 3
    feed.deliver(['ERROR nova.x   File "c.py", line 3, in h'], "p4")
    # Delivery 4 is a window (3) past the one the traceback began in: it goes as it
    # is, with every position so far; nothing is held any more.
    assert feed.hold.forced_flushes == 1
    assert feed.tickets[-1] == ("p4", ["p1", "p2", "p3"])
    tb = feed.routed[-1]
    assert tb.payload.count("\n") == 4 and not feed.dec.holding
    feed.deliver(["INFO nova.x [-] after"], "p5")
    assert feed.tickets[-1] == (None, None)


async def test_the_timer_reports_a_quiet_stream_and_take_idle_flushes_it():
    feed = Feed()
    feed.dec.hold_timeout = 0.05
    feed.deliver(["ERROR nova.x [-] failed"], "p1")
    await asyncio.wait_for(feed.idle.wait(), 10)
    [quiet] = feed.hold.take_idle()
    assert quiet.payload == "[-] failed\n" and not feed.dec.holding
    assert feed.hold.released() == ["p1"]
    feed.hold.note_flush()
    assert feed.hold.take_idle() is None
