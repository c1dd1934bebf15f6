"""Multi-line records in continuous flow, under backpressure.

An oslo.log traceback whose lines straddle two deliveries must reach the outputs as one
message, whatever the outputs' pace: a slow or out-of-order output must not make the
input send its first part early. And the journal must never move past a record that no
output acknowledged yet, also when several streams' held messages interleave.
"""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from hekapy.collector.app.status import Snapshot, render_metrics
from hekapy.collector.engine.acks import AckTracker
from hekapy.collector.engine.contexts import InputContext, OutputContext
from hekapy.collector.engine.message import new_record_message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import Input, Option, Output, register
from hekapy.decoders.openstack_log import OpenStackLogDecoder
from tests.helpers.plugins import CollectOutput, config_from, make_plugin
from tests.helpers.wait import settle, wait_for

T0 = "2015-12-15 10:00:00.123 1234 "
TOKEN = re.compile(r"b\d+\.\d+")


class Corpus:
    """Deliveries of oslo.log lines from `streams`, in turns (`add`, or `n` at once).
    Every line carries a token `b<delivery>.<line>`. Almost every delivery ends inside
    a traceback whose other lines begin that stream's next delivery (some tracebacks
    span three of its deliveries)."""

    def __init__(self, streams: list[str], seed: int = 1, n: int = 0) -> None:
        self.streams = streams
        self.rng = random.Random(seed)
        self.batches: list[tuple[str, list[str]]] = []
        self.tokens: list[set[str]] = []  # per delivery, index 0 = delivery 1
        self.groups: list[frozenset[str]] = []  # the tokens of each expected message
        self.open_tb: dict[str, list[str]] = {}
        self.went_on: set[str] = set()
        self.went_on_at: set[int] = set()  # deliveries with only a traceback's middle
        for i in range(n):
            self.add(last=i >= n - len(streams))

    def add(self, last: bool = False) -> None:
        """One more delivery, for the next stream in turn; `last`: its final one (no
        traceback left open)."""
        rng = self.rng
        i = len(self.batches)
        stream = self.streams[i % len(self.streams)]
        lines: list[str] = []
        toks: set[str] = set()

        def line(text: str) -> str:
            tok = f"b{i + 1}.{len(lines)}"
            toks.add(tok)
            lines.append(f"{T0}{text} {tok}\n")
            return tok

        tb = self.open_tb.get(stream)
        if tb is not None:
            for _ in range(rng.randint(1, 3)):
                tb.append(line('ERROR nova.x   File "f.py", line 7, in g'))
            if not last and stream not in self.went_on and rng.random() < 0.25:
                self.went_on.add(stream)  # the traceback goes on in the next one
                self.went_on_at.add(i + 1)
                self.raw(stream, lines, toks)
                return
            self.went_on.discard(stream)
            tb.append(line("ERROR nova.x ValueError: boom"))
            self.groups.append(frozenset(self.open_tb.pop(stream)))
        for _ in range(rng.randint(1, 3)):  # (ends a traceback: another line)
            self.groups.append(frozenset([line("INFO nova.y [-] ok")]))
        if not last:
            tb = [line("ERROR nova.x Traceback (most recent call last):")]
            for _ in range(rng.randint(0, 2)):
                tb.append(line('ERROR nova.x   File "f.py", line 3, in f'))
            self.open_tb[stream] = tb
        self.raw(stream, lines, toks)

    def raw(self, stream: str, lines: list[str], toks: set[str] | None = None) -> None:
        self.batches.append((stream, lines))
        self.tokens.append(toks or set())

    def check_messages(self, payloads: list[str]) -> None:
        """Every expected message arrived once, whole: no traceback cut in two."""
        assert not self.open_tb
        got = sorted(sorted(TOKEN.findall(p)) for p in payloads)
        want = sorted(sorted(g) for g in self.groups)
        split = [g for g in got if g not in want]
        assert not split, f"{len(split)} messages are parts of others, e.g. {split[:3]}"
        assert got == want


@register
class FeedInput(Input):
    """Delivers `FeedInput.corpus` with positions 1, 2, …; `check` (if set) gets every
    acknowledged position; `between(i)` (if set) is awaited after delivery i."""

    corpus: Corpus | None = None
    check = None
    between = None
    last: FeedInput | None = None

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.acked: list[int] = []
        self.delivered = 0
        self.deferred_max = 0
        FeedInput.last = self

    def _on_ack(self, position: int) -> None:
        self.acked.append(position)
        if FeedInput.check is not None:
            FeedInput.check(position)

    async def run(self, ctx: InputContext) -> None:
        ctx.on_ack(self._on_ack)
        corpus = FeedInput.corpus
        assert corpus is not None
        i = 0
        while i < len(corpus.batches):  # (`between` may add more)
            stream, lines = corpus.batches[i]
            i += 1
            await ctx.deliver_records([x.encode() for x in lines], i, logger=stream)
            self.delivered = i
            waiting = ctx.hold.waiting_positions if ctx.hold is not None else 0
            self.deferred_max = max(self.deferred_max, waiting)
            if FeedInput.between is not None:
                await FeedInput.between(i)


@register
class ShuffleAckOutput(Output):
    """Takes up to `pending` batches and acknowledges them in a random order (as an
    output with several requests in flight may); notes every acknowledged token
    before it acknowledges."""

    options = {"pending": Option("int", 6), "seed": Option("int", 7)}
    last: ShuffleAckOutput | None = None

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.payloads: list[str] = []
        self.acked_tokens: set[str] = set()
        ShuffleAckOutput.last = self

    def _ack(self, batch) -> None:
        for m in batch.messages:
            self.acked_tokens.update(TOKEN.findall(m.payload))
        batch.done()

    async def run(self, ctx: OutputContext) -> None:
        rng = random.Random(self.cfg.seed)
        pending = []
        while True:
            b = ctx.next_batch_nowait()
            if b is None:
                if pending:  # nothing new: acknowledge something, let the input go on
                    self._ack(pending.pop(rng.randrange(len(pending))))
                    await asyncio.sleep(0)
                    continue
                b = await ctx.next_batch()
                if b is None:
                    break
            self.payloads.extend(m.payload for m in b.messages)
            pending.append(b)
            if len(pending) >= self.cfg.pending:
                self._ack(pending.pop(rng.randrange(len(pending))))
        for b in pending:
            self._ack(b)


@register
class SlowOutput(Output):
    """A slow server: each batch takes `delay_ms` to store, then is acknowledged."""

    options = {"delay_ms": Option("int", 20)}
    last: SlowOutput | None = None

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.payloads: list[str] = []
        SlowOutput.last = self

    async def run(self, ctx: OutputContext) -> None:
        while (b := await ctx.next_batch()) is not None:
            await asyncio.sleep(self.cfg.delay_ms / 1000)  # the server's work, not a wait
            self.payloads.extend(m.payload for m in b.messages)
            b.done()


def _config(output: str, hekad: str = "", hold: str = "1h") -> str:
    return f"""
        [hekad]
        {hekad}
        [src]
        type = "FeedInput"
        decoder = "dec"
        [dec]
        type = "OpenStackLogDecoder"
        tz = "UTC"
        hold_timeout = "{hold}"
        [sink]
        type = "{output}"
        message_matcher = "TRUE"
    """


@pytest.fixture(autouse=True)
def _reset_feed():
    yield
    FeedInput.corpus = FeedInput.check = FeedInput.between = None


def _checker(corpus: Corpus, out) -> tuple[list[str], object]:
    """An on_ack check: when position i is acknowledged, every record of deliveries
    1..i is in a batch the output acknowledged."""
    errors: list[str] = []
    state = {"upto": 0}

    def check(position: int) -> None:
        acked = out().acked_tokens
        for i in range(state["upto"] + 1, position + 1):
            missing = corpus.tokens[i - 1] - acked
            if missing:
                errors.append(f"position {position} acknowledged before "
                              f"{sorted(missing)[:3]} of delivery {i}")
        state["upto"] = max(state["upto"], position)

    return errors, check


@pytest.mark.parametrize("streams", [["nova_api"], ["nova_api", "nova_compute"],
                                     ["nova_api", "nova_compute", "nova_conductor"]])
async def test_tracebacks_straddling_deliveries_stay_whole_with_out_of_order_acks(
        tmp_path, streams):
    # A small window (poolsize 8) that the output keeps full, acknowledging out of
    # order: every delivery ends inside a traceback. Holding used to keep every ticket
    # since the decoder began holding, and to flush the held message once those
    # filled half the window: the traceback's first part went alone.
    corpus = Corpus(streams, n=300)
    FeedInput.corpus = corpus
    errors, FeedInput.check = _checker(corpus, lambda: ShuffleAckOutput.last)
    p = Pipeline(config_from(tmp_path, _config("ShuffleAckOutput", "poolsize = 8")))
    await p.start()
    src = FeedInput.last
    await wait_for(lambda: src.delivered == len(corpus.batches), "every delivery", timeout=120)
    await p.stop()
    out = ShuffleAckOutput.last
    corpus.check_messages(out.payloads)
    assert errors == []
    assert src.acked[-1] == len(corpus.batches)
    ctx = p.inputs[0][1]
    assert ctx.forced_flushes == 0
    # Only the positions from the oldest held record on wait: a traceback spans at
    # most two turns of the streams.
    assert src.deferred_max <= 2 * len(streams)


@pytest.mark.parametrize("limit", ["window", "queue"])
async def test_slow_output_does_not_make_the_hold_timeout_cut_tracebacks(tmp_path, limit):
    # The output takes 20 ms per batch, the hold timeout is 10 ms: the input spends
    # far longer than the timeout waiting for room (in the window, or in the output's
    # queue), and the continuation of the held traceback is in its next, unread
    # delivery. Waiting for room is not idleness: nothing may be flushed meanwhile.
    corpus = Corpus(["nova_api"], seed=3, n=30)
    FeedInput.corpus = corpus
    hekad = "poolsize = 2" if limit == "window" else "plugin_chansize = 1"
    p = Pipeline(config_from(tmp_path, _config("SlowOutput", hekad, hold="10ms")))
    await p.start()
    src = FeedInput.last
    await wait_for(lambda: src.delivered == len(corpus.batches), "every delivery", timeout=120)
    await p.stop()
    corpus.check_messages(SlowOutput.last.payloads)
    assert src.acked[-1] == len(corpus.batches)


async def test_a_quiet_stream_is_flushed_without_cutting_a_busy_one(tmp_path):
    # nova_api writes one line and falls quiet; nova_compute writes on and on, every
    # delivery ending inside a traceback. After hold_timeout the quiet stream's line
    # is sent, while the busy one's tracebacks stay whole.
    corpus = Corpus(["nova_compute"], seed=5)
    corpus.raw("nova_api", [f"{T0}INFO nova.y [-] the only line\n"])
    corpus.add()
    FeedInput.corpus = corpus
    arrived_at: list[int] = []
    ended: list[int] = []

    async def between(i: int) -> None:
        if i < len(corpus.batches) or ended:
            return
        out = CollectOutput.instances["sink"]
        if not arrived_at and any(m.payload == "[-] the only line\n" for m in out.messages):
            arrived_at.append(i)
        # Lines keep coming until 20 deliveries after that (or far too many).
        if (arrived_at and i >= arrived_at[0] + 20) or i > 200_000:
            ended.append(i)
        corpus.add(last=bool(ended))
        await asyncio.sleep(0)  # the busy stream's reader gives the loop a turn

    FeedInput.between = between
    p = Pipeline(config_from(tmp_path, _config(
        "CollectOutput", "poolsize = 1000000", hold="300ms")))
    await p.start()
    src = FeedInput.last
    await wait_for(lambda: src.delivered == len(corpus.batches), "every delivery", timeout=300)
    await p.stop()
    out = CollectOutput.instances["sink"]
    payloads = [m.payload for m in out.messages]
    assert arrived_at, "the quiet stream's line waited for the busy stream to end"
    payloads.remove("[-] the only line\n")
    corpus.check_messages(payloads)
    assert p.inputs[0][1].forced_flushes == 0


async def test_a_traceback_written_slowly_stays_whole(tmp_path):
    # One traceback, a line every 10 ms for 0.3 s: the record is far older than the
    # hold timeout (50 ms), but its stream is never quiet that long.
    lines = [f"{T0}ERROR nova.x Traceback (most recent call last): b1.0\n"]
    lines += [f'{T0}ERROR nova.x   File "f.py", line {i}, in g b{i}.0\n'
              for i in range(2, 31)]
    lines.append(f"{T0}INFO nova.y [-] after b31.0\n")
    corpus = Corpus(["nova_api"])
    for x in lines:
        corpus.raw("nova_api", [x], set(TOKEN.findall(x)))
    corpus.groups = [frozenset(f"b{i}.0" for i in range(1, 31)), frozenset(["b31.0"])]
    FeedInput.corpus = corpus

    async def between(i: int) -> None:
        await asyncio.sleep(0.01)  # the writer's pace

    FeedInput.between = between
    p = Pipeline(config_from(tmp_path, _config("CollectOutput", hold="50ms")))
    await p.start()
    src = FeedInput.last
    await wait_for(lambda: src.delivered == len(corpus.batches), "every delivery", timeout=120)
    await p.stop()
    corpus.check_messages([m.payload for m in CollectOutput.instances["sink"].messages])


async def test_a_traceback_longer_than_the_window_is_sent_in_parts(tmp_path):
    # The safety net: a record spanning more deliveries than the window (poolsize 4)
    # is sent as it is rather than holding every position back without bound. Every
    # line arrives once, and the input never stalls.
    first = f"{T0}ERROR nova.x Traceback (most recent call last): b1.0\n"
    body = [[f'{T0}ERROR nova.x   File "f.py", line {i}, in g b{i}.0\n']
            for i in range(2, 13)]
    corpus = Corpus(["nova_api"])
    for lines in [[first], *body, [f"{T0}INFO nova.y [-] after b13.0\n"]]:
        corpus.raw("nova_api", lines, set(TOKEN.findall(lines[0])))
    FeedInput.corpus = corpus
    p = Pipeline(config_from(tmp_path, _config("ShuffleAckOutput", "poolsize = 4")))
    errors, FeedInput.check = _checker(corpus, lambda: ShuffleAckOutput.last)
    await p.start()
    src = FeedInput.last
    await wait_for(lambda: src.delivered == len(corpus.batches), "every delivery", timeout=120)
    await p.stop()
    tokens = [TOKEN.findall(x) for x in ShuffleAckOutput.last.payloads]
    assert sorted(t for ts in tokens for t in ts) == sorted(
        t for ts in corpus.tokens for t in ts)
    assert len(tokens) > 2  # the traceback went in parts
    forced = p.inputs[0][1].forced_flushes
    assert forced >= 1
    assert f'hekapy_input_forced_flushes_total{{plugin="src",type="FeedInput"}} {forced}' \
        in render_metrics(Snapshot(p).collect())
    assert errors == [] and src.acked[-1] == len(corpus.batches)


# --- the parts, one by one ----------------------------------------------------------------

def test_earlier_positions_are_reported_with_their_ticket_in_order():
    async def go():
        got: list[object] = []
        tr = AckTracker(got.append, max_batches=10)
        a = await tr.ticket(None)  # a position that is not safe yet
        b = await tr.ticket(None, earlier=["p1"])
        c = await tr.ticket("p3", earlier=["p2"])
        c.release()
        assert got == []
        b.release()
        assert got == []  # a, before them, is not done
        a.release()
        assert got == ["p1", "p2", "p3"]
        assert tr.acked_position == "p3" and tr.in_flight == 0

    asyncio.run(go())


def _line(dec, text: str, stream: str = "nova_api"):
    return dec.decode(new_record_message(1, "logfile", stream, "h", T0 + text + "\n"))


def test_openstack_decoder_dates_what_it_holds():
    dec = make_plugin(OpenStackLogDecoder, tz="UTC")
    assert dec.oldest_held_batch is None
    dec.batch = 1
    _line(dec, "ERROR nova.x Traceback (most recent call last):")
    _line(dec, "INFO nova.y [-] other", stream="nova_compute")
    dec.batch = 2
    _line(dec, 'ERROR nova.x   File "f.py", line 1, in f')  # continues it
    assert dec.oldest_held_batch == 1
    dec.batch = 3
    _line(dec, "INFO nova.y [-] fresh", stream="nova_compute")
    assert dec.oldest_held_batch == 1
    # Quiet since a delivery before 3: nova_api's traceback (its latest line came in
    # 2), not nova_compute's fresh line.
    [tb] = dec.flush_stale(idle_before=3)
    assert tb.payload.count("\n") == 2 and dec.oldest_held_batch == 3
    assert dec.flush_stale(idle_before=3) == []
    assert dec.flush_stale(started_before=3) == []
    [fresh] = dec.flush_stale(started_before=4)
    assert fresh.payload.startswith("[-] fresh") and not dec.holding


async def test_steady_flow_keeps_one_position_waiting(tmp_path):
    # Every delivery leaves its last line held: its own position waits, the one
    # before is released with it (both wait when the delivery only continued a
    # traceback). No ticket is kept open for the held records.
    corpus = Corpus(["nova_api"], seed=9, n=50)
    FeedInput.corpus = corpus
    p = Pipeline(config_from(tmp_path, _config("CollectOutput")))
    ctx = p.inputs[0][1]
    in_flight: list[int] = []

    async def between(i: int) -> None:
        await wait_for(lambda: ctx.tracker.in_flight == 0, "acknowledgements")
        in_flight.append(ctx.hold.waiting_positions)

    FeedInput.between = between
    await p.start()
    src = FeedInput.last
    await wait_for(lambda: len(in_flight) == len(corpus.batches), "every delivery", timeout=120)
    assert corpus.went_on_at
    assert in_flight == [2 if i in corpus.went_on_at else 1
                         for i in range(1, len(corpus.batches) + 1)]
    assert src.acked == list(range(1, len(corpus.batches)))  # the last one waits
    await settle()
    await p.stop()
    assert src.acked[-1] == len(corpus.batches)
