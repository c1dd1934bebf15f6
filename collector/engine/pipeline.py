"""Builds the running pipeline from a Config and runs it.

    input ─records─▶ splitter ─▶ decoder ─messages─▶ router ─▶ filter ─▶ router
                                                       └────▶ output ─▶ server
               ◀───────── acks (tickets) back to the input's checkpoint ─────┘

Each input, filter and output runs in its own asyncio task. Inputs split and decode
inline (one thread; a separate decode task would only add a hand-off) and route batches
themselves. Filters and outputs read their own bounded queue.

Stopping (SIGTERM/SIGINT): inputs stop reading; filter queues close and drain; then
output queues close and drain; outputs flush and acknowledge; inputs write their final
checkpoint. What was not acknowledged within `shutdown_timeout` is re-read next start.
Decoders and encoders that define `init(ctx)` / `shutdown(ctx)` (the sandbox ones, for
preserve_data) get them with their input's or output's context: `init` once the
pipeline is built, `shutdown` once their input drained (decoders) or their output
finished (encoders).

Signed messages (spec/heka.md §2.4): a HekaFramingSplitter returns a verified frame as
a `SignedRecord`; `records_to_messages` and `decode` put its signer on the messages,
and routes with `message_signer` take only that signer's (collector/engine/router.py). Inputs
whose splitter cannot verify anything skip all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.acks import AckTracker
from hekapy.collector.engine.buffering import OutputBuffer
from hekapy.collector.engine.config import Config
from hekapy.collector.engine.framing import SignedRecord, may_tag_signers
from hekapy.collector.engine.matcher import compile_matcher
from hekapy.collector.engine.message import (
    BOOL,
    DOUBLE,
    INTEGER,
    STRING,
    Field,
    Message,
    new_record_message,
)
from hekapy.collector.engine.message_clock import TickSchedule
from hekapy.collector.engine.plugin import (
    DecodeError,
    Decoder,
    Encoder,
    Filter,
    Input,
    Output,
    PluginSpec,
    Splitter,
)
from hekapy.collector.engine.queue import Batch, BatchQueue
from hekapy.collector.engine.retry import Backoff
from hekapy.collector.engine.router import Route, Router
from hekapy.collector.engine.stats import PluginStats, RateLimitedLog

log = logging.getLogger("hekapy")


class PipelineFailed(Exception):
    """A plugin that may not exit has failed for good; hekapy stops."""


class PluginContext:
    """What every running plugin can reach."""

    def __init__(self, pipeline: Pipeline, spec: PluginSpec) -> None:
        self.pipeline = pipeline
        self.name = spec.name
        self.spec = spec
        self.hekad: SimpleNamespace = pipeline.hekad
        self.hostname: str = pipeline.hekad.hostname
        self.stats = PluginStats()
        self.log = logging.getLogger(f"hekapy.{spec.name}")
        self.limited_log = RateLimitedLog(self.log)
        self.stopping = pipeline.stopping
        # Replay: time-driven filters tick on message time (collector/engine/message_clock.py).
        self.message_time: bool = pipeline.message_time


class FilterContext(PluginContext):
    """A filter's context: `inject()` sends new messages back through the router."""

    def __init__(self, pipeline: Pipeline, spec: PluginSpec, predicate: Any) -> None:
        super().__init__(pipeline, spec)
        self._predicate = predicate
        self._injected: list[Message] = []
        # Message time (replay): the filter's ticks follow Timestamps; its `late` count.
        self.schedule: TickSchedule | None = None
        # LMA added its deployment tags to the metrics its filters made, too.
        self._tags = deployment_tag_fields(pipeline.hekad.deployment_tags)
        self._tag_names = frozenset(f.name for f in self._tags)

    def inject(self, msg: Message) -> bool:
        """Queue `msg` for routing after the current call returns. A message that matches
        the filter's own matcher is refused (Heka's rule against self-loops)."""
        if self._predicate(msg):
            self.stats.errors += 1
            self.limited_log(logging.ERROR, "refused an injected message that matches this "
                             "filter's own message_matcher (Type %r)", msg.type)
            return False
        if msg.signer:
            # A filter's message is its own, never the signer's: re-injecting a signed
            # message must not reach routes with message_signer as if it were signed.
            # A copy, since other consumers still hold the original.
            msg = msg.copy()
        if self._tags:
            add_tags([msg], self._tags, self._tag_names)
        self._injected.append(msg)
        self.stats.injected += 1
        return True

    def take_injected(self) -> list[Message]:
        out, self._injected = self._injected, []
        return out


def deployment_tag_fields(tags: dict[str, Any]) -> list[Field]:
    """[hekad] deployment_tags as typed fields (strings, integers, doubles)."""
    out = []
    for name, value in tags.items():
        kind = STRING if isinstance(value, str) else INTEGER if isinstance(value, int) else DOUBLE
        out.append(Field(name, [value], kind))
    return out


def build_plugin(config: Config, name: str, category: str, _depth: int = 0,
                 built: list[Any] | None = None) -> Any:
    """A new instance of the plugin named `name` in `config`, linked to the plugins it
    refers to. `built` collects every instance made (the plugin and those it refers to,
    a MultiDecoder's sub-decoders), so that each gets its start and stop calls."""
    if _depth > 8:
        raise ValueError(f"plugin references nest too deep at {name!r} (a cycle?)")
    spec = config.resolve(name, category)
    if spec is None:
        raise ValueError(f"no {category.lower()} named {name!r}")
    plugin = spec.build()
    plugin.link(lambda n, c: build_plugin(config, n, c, _depth + 1, built))
    if built is not None:
        built.append(plugin)
    return plugin


def start_stage(plugin: Any, ctx: PluginContext) -> None:
    """A decoder's or encoder's start call: `init(ctx)` if it has one, with the context
    of the input or output it serves (a SandboxDecoder restores its preserved data).
    Called once the pipeline is built, before anything runs."""
    init = getattr(plugin, "init", None)
    if init is not None:
        init(ctx)


def stop_stage(plugin: Any, ctx: PluginContext) -> None:
    """A decoder's or encoder's stop call: `shutdown(ctx)` if it has one (a
    SandboxDecoder/SandboxEncoder saves its preserved data). A failure is logged: one
    plugin's stop must not keep the others from theirs."""
    shutdown = getattr(plugin, "shutdown", None)
    if shutdown is None:
        return
    try:
        shutdown(ctx)
    except Exception as e:
        ctx.log.error("%s: shutdown failed: %s: %s", getattr(plugin, "name", "?"),
                      type(e).__name__, e)


def _has_stages(plugin: Any) -> bool:
    """Whether a decoder or encoder wants start/stop calls (most have neither)."""
    return hasattr(plugin, "init") or hasattr(plugin, "shutdown")


def tag_signers(messages: list[Message], records: list[bytes]) -> None:
    """Each message gets the verified signer of the record it was made of."""
    for m, r in zip(messages, records, strict=True):
        if type(r) is SignedRecord:
            m.signer = r.signer


def max_record_size(hekad: Any) -> int:
    """The longest record a splitter delivers: a message plus Heka's framing."""
    return hekad.max_message_size + 3 + 255


def add_tags(messages: list[Message], tags: list[Field], names: frozenset[str]) -> None:
    """The deployment tags, on every message that does not carry them already (the
    Field objects are shared: fields are never changed in place)."""
    for m in messages:
        fields = m.fields
        if not fields or names.isdisjoint([f.name for f in fields]):
            fields.extend(tags)
        else:
            have = {f.name for f in fields}
            fields.extend(t for t in tags if t.name not in have)


class InputContext(PluginContext):
    """An input's context: splitters, decoding, routing, acknowledgements."""

    def __init__(self, pipeline: Pipeline, spec: PluginSpec,
                 splitter_spec: PluginSpec | None, decoder: Decoder | None) -> None:
        super().__init__(pipeline, spec)
        self._splitter_spec = splitter_spec
        self.decoder = decoder
        if decoder is not None:
            decoder.max_message_size = pipeline.hekad.max_message_size
        cfg = spec.cfg
        self.send_decode_failures: bool = cfg.send_decode_failures
        self.log_decode_failures: bool = cfg.log_decode_failures
        self.use_message_bytes = bool(splitter_spec and splitter_spec.cfg.use_message_bytes)
        # Records may come from HMAC-verified frames: messages get their signer. False
        # for every other input, which then never looks at a record for it.
        self.tags_signers = may_tag_signers(splitter_spec, cfg)
        self.tracker = AckTracker(None, pipeline.hekad.poolsize,
                                  pipeline.hekad.max_inflight_bytes)
        self.tags = deployment_tag_fields(pipeline.hekad.deployment_tags)
        self._tag_names = frozenset(f.name for f in self.tags)
        # Multi-line decoders (see `_route`). Deliveries are numbered; `_deferred` keeps
        # (number, position) of those that are not safe to checkpoint while a held
        # message has records from them or from before; `_marks` keeps (number, active
        # time at its end) of the deliveries a held message may have its latest line
        # from, for the hold timeout. `_hold_since`: the first delivery after which the
        # decoder held something, for a decoder that cannot say (`oldest_held_batch`).
        self._batch_no = 0
        self._deferred: deque[tuple[int, Any]] = deque()
        self._marks: deque[tuple[int, float]] = deque()
        self._hold_since: int | None = None
        # Decoded messages not yet routed (an input that decodes, then delivers): their
        # positions must not be released by a flush that runs in between.
        self._undelivered = False
        # Seconds spent routing (waiting for room, under backpressure) and since when,
        # if now: hold timeouts count only time in which the input could read on.
        self._paused = 0.0
        self._paused_since: float | None = None
        self._hold_timer: asyncio.TimerHandle | None = None
        self._deliver_lock = asyncio.Lock()
        # Held messages sent before their stream showed them complete because they
        # spanned more deliveries than the input's window (poolsize) holds.
        self.forced_flushes = 0

    def on_ack(self, callback: Any) -> None:
        """`callback(position)` runs whenever every batch up to `position` is done."""
        self.tracker.on_progress = callback

    def new_splitter(self) -> Splitter:
        """A fresh splitter for one stream (it holds that stream's incomplete record)."""
        spec = self._splitter_spec
        if spec is None:
            spec = self.pipeline.config.resolve("NullSplitter", "Splitter")
        sp = spec.build()
        assert isinstance(sp, Splitter)
        sp.max_record_size = max_record_size(self.hekad)
        return sp

    def records_to_messages(self, records: list[bytes], type: str = "", logger: str = "",
                            hostname: str | None = None) -> list[Message]:
        """Fresh messages whose Payload is each record (invalid UTF-8 replaced by U+FFFD;
        the bytes stay in `raw` when the splitter uses message bytes)."""
        host = self.hostname if hostname is None else hostname
        now = time.time_ns()
        if self.use_message_bytes:
            msgs = [new_record_message(now, type, logger, host, "", r) for r in records]
        else:
            msgs = [new_record_message(now, type, logger, host,
                                       r.decode("utf-8", "replace")) for r in records]
        if self.tags_signers:
            tag_signers(msgs, records)
        return msgs

    def decode(self, messages: list[Message]) -> list[Message]:
        """Run the input's decoder over `messages`; failures are counted, logged (rate
        limited) and, with send_decode_failures, forwarded marked decode_failure=true."""
        dec = self.decoder
        if dec is None:
            return messages
        # These records travel in the next delivery: a multi-line decoder dates what it
        # holds back by it.
        dec.batch = self._batch_no + 1
        self._undelivered = True
        # A decoder makes new messages: with signed records, they keep the signer.
        decode_one = self._decode_keeping_signer if self.tags_signers else dec.decode
        out: list[Message] = []
        append = out.append
        for m in messages:
            try:
                r = decode_one(m)
            except DecodeError as e:
                if self._decode_failed(m, str(e)):
                    append(m)
                continue
            except Exception as e:  # a decoder bug must not kill the input
                if self._decode_failed(m, f"{type(e).__name__}: {e}"):
                    append(m)
                continue
            if r is None:
                continue
            if isinstance(r, Message):
                append(r)
            else:
                out.extend(r)
        if self.tags:
            self.add_tags(out)
        return out

    def _decode_keeping_signer(self, msg: Message) -> Message | list[Message] | None:
        r = self.decoder.decode(msg)  # type: ignore[union-attr]
        signer = msg.signer
        if signer and r is not None:
            if isinstance(r, Message):
                r.signer = signer
            else:
                for x in r:
                    x.signer = signer
        return r

    def add_tags(self, messages: list[Message]) -> None:
        add_tags(messages, self.tags, self._tag_names)

    def _decode_failed(self, msg: Message, reason: str) -> bool:
        """Count and log a failure; True when the message is forwarded anyway."""
        self.stats.decode_failures += 1
        if self.log_decode_failures:
            self.limited_log(logging.WARNING, "decode failure (%s): %s: %.200r",
                             self.decoder.name if self.decoder else "", reason, msg.payload)
        if self.send_decode_failures:
            msg.fields.append(Field("decode_failure", [True], BOOL))
            return True
        return False

    async def deliver(self, messages: list[Message], position: Any = None,
                      nbytes: int = 0) -> None:
        """Decode `messages` and route them as one batch ending at `position`. Waits while
        the input has too much unacknowledged (the backpressure an input feels)."""
        # One delivery at a time: a timed flush of held messages must not overtake a
        # batch that is decoded but still waiting for room (messages stay in order).
        async with self._deliver_lock:
            await self._route(self.decode(messages), position, nbytes)

    async def deliver_decoded(self, decoded: list[Message], position: Any = None,
                              nbytes: int = 0, watermark: int | None = None) -> None:
        """Route messages the input already ran through `decode` (an input that must
        know which of its records failed, to settle them with their source). Replay
        passes the message-time `watermark` (collector/engine/message_clock.py)."""
        async with self._deliver_lock:
            await self._route(decoded, position, nbytes, watermark)

    async def _route(self, decoded: list[Message], position: Any, nbytes: int,
                     watermark: int | None = None) -> None:
        """Route one delivery. With a multi-line decoder holding messages back, the
        position of a delivery stays out of the checkpoint (`_deferred`) until every
        record up to it was delivered: the first ticket routed once no held message has
        records from that delivery or before carries the position (`Ticket.earlier`),
        so the watermark reports it only when every batch up to that ticket, the ones
        that carried the held records included, is done. Held records thus never keep
        a ticket open: the window never fills with them, and in steady flow only the
        last delivery's position waits."""
        dec = self.decoder
        n = self._batch_no = self._batch_no + 1
        self._undelivered = False
        earlier = None
        if dec is not None and (dec.holding or self._deferred or self._marks):
            oldest = self._oldest_held(dec, n)
            if oldest is not None and n - oldest >= self.tracker.max_batches:
                decoded.extend(self._flush_spanning(dec, n))
                oldest = self._oldest_held(dec, n)
            earlier = self._safe_positions(oldest)
            if oldest is not None and position is not None:
                self._deferred.append((n, position))
                position = None
        self.stats.messages_out += len(decoded)
        self.stats.bytes_out += nbytes
        await self._send(Batch(decoded, None, nbytes, 0, watermark), position, earlier)
        if dec is not None:
            self._after_delivery(dec, n)

    async def _send(self, batch: Batch, position: Any, earlier: list[Any] | None) -> None:
        """A ticket for `batch` (waiting for room in the window), then route it. The
        time spent here does not count towards hold timeouts: the continuation of a
        held message may be just behind, unread because the input is waiting."""
        self._paused_since = t0 = time.monotonic()
        try:
            batch.ticket = await self.tracker.ticket(position, batch.nbytes, earlier)
            await self.pipeline.router.route(batch)
        finally:
            self._paused += time.monotonic() - t0
            self._paused_since = None

    def _active_time(self) -> float:
        """Monotonic seconds minus the time spent in `_send`."""
        now = time.monotonic()
        paused = self._paused
        if self._paused_since is not None:
            paused += now - self._paused_since
        return now - paused

    def _oldest_held(self, dec: Decoder, n: int) -> int | None:
        """The delivery the oldest held-back record came in (None: nothing held), as
        of delivery `n`."""
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
        """The deferred positions of deliveries before `oldest` (all when None): held
        messages have no record up to them, which all travel in this batch or before."""
        deferred = self._deferred
        if not deferred or (oldest is not None and deferred[0][0] >= oldest):
            return None
        out = []
        while deferred and (oldest is None or deferred[0][0] < oldest):
            out.append(deferred.popleft()[1])
        return out

    def _flush_spanning(self, dec: Decoder, n: int) -> list[Message]:
        """The safety net for a huge multi-line record: held messages that began a
        window's worth of deliveries ago are sent as they are (their positions, and
        every later one, would otherwise wait without bound)."""
        flushed = dec.flush_stale(started_before=n - self.tracker.max_batches + 1)
        if flushed:
            self.forced_flushes += len(flushed)
            self.limited_log(logging.WARNING, "sent %d multi-line message(s) before "
                             "their end: they spanned more than %d deliveries (poolsize)",
                             len(flushed), self.tracker.max_batches)
            if self.tags:
                self.add_tags(flushed)
        return flushed

    def _after_delivery(self, dec: Decoder, n: int | None) -> None:
        """Date delivery `n` (None: a flush) for the hold timeout, forget the dates no
        held message needs, and keep a timer while the decoder holds something."""
        if not dec.holding:
            self._marks.clear()
            self._hold_since = None
            if self._hold_timer is not None:
                self._hold_timer.cancel()
                self._hold_timer = None
            return
        marks = self._marks
        if n is not None:
            marks.append((n, self._active_time()))
        oldest = self._oldest_held(dec, self._batch_no)
        while marks and oldest is not None and marks[0][0] < oldest:
            marks.popleft()
        if self._hold_timer is None and marks:
            self._arm(dec)

    def _arm(self, dec: Decoder) -> None:
        """The hold timer, for when the oldest dated delivery turns hold_timeout old."""
        delay = dec.hold_timeout - (self._active_time() - self._marks[0][1])
        self._hold_timer = asyncio.get_running_loop().call_later(
            max(delay, 0.001), self._hold_expired)

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

    def _hold_expired(self) -> None:
        self._hold_timer = None
        dec = self.decoder
        if dec is None or not dec.holding or not self._marks:
            return
        if self._paused_since is not None:
            return  # waiting for room is not idleness; the delivery re-arms when it ends
        if self._idle_cutoff(dec.hold_timeout) is None:
            self._arm(dec)
            return
        task = asyncio.get_running_loop().create_task(self._flush_idle())
        self.pipeline.background.add(task)
        task.add_done_callback(self.pipeline.background.discard)

    async def _flush_idle(self) -> None:
        """Deliver the held messages of streams quiet for hold_timeout. Decided again
        once no delivery runs: one that just ended may have continued them."""
        async with self._deliver_lock:
            dec = self.decoder
            if dec is None or not dec.holding:
                return
            cutoff = self._idle_cutoff(dec.hold_timeout)
            if cutoff is not None:
                flushed = dec.flush_stale(idle_before=cutoff + 1)
                # What is still held got a line after `cutoff`: older dates are no use
                # (a long traceback still growing would otherwise look idle at once).
                marks = self._marks
                while marks and marks[0][0] <= cutoff:
                    marks.popleft()
                await self._route_flushed(dec, flushed)
            self._after_delivery(dec, None)

    async def flush_decoder(self) -> None:
        """Deliver everything the decoder holds back (the input stopped)."""
        async with self._deliver_lock:
            dec = self.decoder
            if dec is None:
                return
            if dec.holding:
                await self._route_flushed(dec, dec.flush())
            self._after_delivery(dec, None)

    async def _route_flushed(self, dec: Decoder, flushed: list[Message]) -> None:
        """Route held messages the decoder gave up on, with the positions that became
        safe. The batch takes a ticket of its own: no ticket waits on held records, so
        room in the window always comes."""
        if self.tags:
            self.add_tags(flushed)
        earlier = None
        if not self._undelivered:  # else the coming delivery releases them
            earlier = self._safe_positions(self._oldest_held(dec, self._batch_no))
        if not flushed and not earlier:
            return
        self.stats.messages_out += len(flushed)
        await self._send(Batch(flushed, None, 0), None, earlier)

    async def deliver_records(self, records: list[bytes], position: Any = None, *,
                              type: str = "", logger: str = "", hostname: str | None = None,
                              nbytes: int | None = None) -> None:
        """Records from a splitter → messages → decoder → router."""
        if nbytes is None:
            nbytes = sum(map(len, records))
        self.stats.messages_in += len(records)
        await self.deliver(self.records_to_messages(records, type, logger, hostname),
                           position, nbytes)


class OutputContext(PluginContext):
    """An output's context: its queue, its encoder, restart-safe batch hand-out."""

    def __init__(self, pipeline: Pipeline, spec: PluginSpec, queue: BatchQueue,
                 encoder: Encoder | None) -> None:
        super().__init__(pipeline, spec)
        self.queue = queue
        self.encoder = encoder
        # Batches handed out but not yet acknowledged: re-queued if the output crashes
        # and restarts, so a crash never loses them.
        self._outstanding: list[Batch] = []
        self._sweep_at = 64

    def encode_messages(self, messages: list[Message],
                        wrap: Callable[[bytes], bytes] | None = None) -> list[bytes]:
        """The encoder's bytes for each message (`wrap`ped, e.g. framed); a message the
        encoder (or `wrap`) fails on is counted, logged and skipped, never stalls."""
        encode = self.encoder.encode  # type: ignore[union-attr]
        key = self.spec.cfg.encoder
        out: list[bytes] = []
        for m in messages:
            try:
                pre = m.pre_encoded
                data = pre.get(key) if pre is not None else None
                if data is None:
                    data = encode(m)
                if data and wrap is not None:
                    data = wrap(data)
            except Exception as e:  # an encoder bug must not stall the output
                self.stats.errors += 1
                self.limited_log(logging.ERROR, "encoding failed: %s: %s",
                                 type(e).__name__, e)
                continue
            if data:
                out.append(data)
        return out

    async def next_batch(self) -> Batch | None:
        """The next batch to send, or None once the pipeline is stopping and the queue is
        drained (flush what you hold, acknowledge it, and return from run())."""
        b = await self.queue.get()
        if b is not None:
            self._track(b)
        return b

    def _track(self, b: Batch) -> None:
        """Remember `b` until it is acknowledged. Acknowledged batches leave the list at
        once (they would keep their messages alive): they are done mostly in order, so
        they are found at its head; a full sweep catches the others."""
        out = self._outstanding
        i = 0
        while i < len(out) and out[i].ticket is None:
            i += 1
        if i:
            del out[:i]
        if len(out) > self._sweep_at:
            out[:] = [x for x in out if x.ticket is not None]
            # Sweep again only once the list has doubled: with many batches in flight
            # (max_in_flight requests of small batches) a sweep per batch was quadratic.
            self._sweep_at = max(64, 2 * len(out))
        out.append(b)

    async def collect(self, max_count: int, interval: float, max_bytes: int = 0,
                      require_both: bool = False) -> list[Batch] | None:
        """Batches for one flush: returns once they hold `max_count` messages (or
        `max_bytes` bytes, if set) or `interval` seconds after the first one arrived;
        with `require_both`, only when the count is reached *and* the interval passed
        (Heka's flush_operator = "AND"). None once stopping and drained.

        The shared batching loop of every output: each owns its flush policy by the
        arguments it passes, not by a loop of its own."""
        first = await self.next_batch()
        if first is None:
            return None
        got = [first]
        count = len(first)
        nbytes = first.nbytes
        deadline = time.monotonic() + interval if interval > 0 else None
        q = self.queue
        while True:
            count_ok = count >= max_count or bool(max_bytes and nbytes >= max_bytes)
            if deadline is None:
                time_ok = require_both  # interval 0: the time condition is switched off
            else:
                time_ok = time.monotonic() >= deadline
            if (count_ok and time_ok) or (not require_both and (count_ok or time_ok)):
                return got
            if q.closed and not len(q):
                return got  # stopping: flush what we have now
            b = self.next_batch_nowait()
            if b is not None:
                got.append(b)
                count += len(b)
                nbytes += b.nbytes
                continue
            if deadline is None:
                await q.wait_nonempty()
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(q.wait_nonempty(),
                                           max(0.0, deadline - time.monotonic()))

    def next_batch_nowait(self) -> Batch | None:
        b = self.queue.get_nowait()
        if b is not None:
            self._track(b)
        return b

    def unacknowledged(self) -> list[Batch]:
        return [b for b in self._outstanding if b.ticket is not None]

    def requeue_unacknowledged(self) -> int:
        """After a crash: put unacknowledged batches back at the head of the queue."""
        pending = self.unacknowledged()
        self._outstanding = []
        self.queue.put_front(pending)
        return len(pending)


class Pipeline:
    """All runners of one configuration."""

    def __init__(self, config: Config, message_time: bool = False) -> None:
        """`message_time`: time-driven filters tick on the messages' Timestamps, driven
        by the batches' watermarks (replay), not on the wall clock."""
        if config.errors:
            raise ValueError("config has errors; call load_config(strict=True) first")
        self.config = config
        self.message_time = message_time
        self.hekad = config.hekad
        self.router = Router()
        self.stopping = asyncio.Event()
        self.failed: str | None = None
        # Short-lived tasks (decoder flushes) kept referenced until they finish.
        self.background: set[asyncio.Task] = set()
        self.inputs: list[tuple[Input, InputContext]] = []
        self.filters: list[tuple[Filter, FilterContext, BatchQueue]] = []
        self.outputs: list[tuple[Output, OutputContext]] = []
        # Decoders (with their sub-decoders) and encoders that have a start or a stop
        # call, with the context of the input or output they serve.
        self.decoders: list[tuple[Decoder, InputContext]] = []
        self.encoders: list[tuple[Encoder, OutputContext]] = []
        self._tasks: dict[str, list[asyncio.Task]] = {"Input": [], "Filter": [], "Output": [],
                                                      "Buffer": []}
        self.buffers: dict[str, OutputBuffer] = {}
        self._build()

    # construction --------------------------------------------------------------------
    def _build(self) -> None:
        cfg = self.config
        h = self.hekad
        for spec in cfg.by_category("Filter"):
            pred = compile_matcher(spec.cfg.message_matcher)
            plugin = spec.build()
            ctx = FilterContext(self, spec, pred)
            q = BatchQueue(h.plugin_chansize, h.max_queue_bytes)
            self.router.add(Route(spec.name, pred, q, ctx.stats, spec.cfg.message_signer))
            self.filters.append((plugin, ctx, q))
        for spec in cfg.by_category("Output"):
            pred = compile_matcher(spec.cfg.message_matcher)
            enc_spec = cfg.resolve(spec.cfg.encoder, "Encoder") if spec.cfg.encoder else None
            encoder = enc_spec.build() if enc_spec else None
            plugin = spec.build()
            q = BatchQueue(h.plugin_chansize, h.max_queue_bytes)
            ctx = OutputContext(self, spec, q, encoder)
            if spec.cfg.use_buffering:
                # The router fills a queue of its own; the output reads the disk buffer.
                route_q = BatchQueue(h.plugin_chansize, h.max_queue_bytes)
                self.buffers[spec.name] = OutputBuffer(self, ctx, route_q)
                q = route_q
            self.router.add(Route(spec.name, pred, q, ctx.stats, spec.cfg.message_signer))
            self.outputs.append((plugin, ctx))
            if encoder is not None and _has_stages(encoder):
                self.encoders.append((encoder, ctx))
        for spec in cfg.by_category("Input"):
            splitter = cfg.resolve(spec.cfg.splitter, "Splitter") if spec.cfg.splitter else None
            decoder = None
            built: list[Any] = []
            if spec.cfg.decoder:
                decoder = self.build_plugin(spec.cfg.decoder, "Decoder", built)
            plugin = spec.build()
            ctx = InputContext(self, spec, splitter, decoder)
            self.inputs.append((plugin, ctx))
            self.decoders.extend((d, ctx) for d in built if _has_stages(d))
        # Start calls once every plugin is built (a build error raises before any
        # plugin restored anything), before anything runs.
        for stage, sctx in [*self.decoders, *self.encoders]:
            start_stage(stage, sctx)

    def build_plugin(self, name: str, category: str, built: list[Any] | None = None
                     ) -> Any:
        """A new instance of the plugin named `name`, linked to the plugins it refers to
        (`built` collects them all, see the module-level build_plugin)."""
        return build_plugin(self.config, name, category, built=built)

    # running ---------------------------------------------------------------------------
    async def start(self) -> None:
        for plugin, ctx in self.outputs:
            self._spawn(ctx, self._run_output(plugin, ctx))
            buf = self.buffers.get(ctx.name)
            if buf is not None:
                for coro, suffix in ((buf.feed(), ".buffer-in"), (buf.drain(), ".buffer-out")):
                    task = asyncio.create_task(coro, name=ctx.name + suffix)
                    self._tasks["Buffer"].append(task)
        for plugin, ctx, q in self.filters:
            self._spawn(ctx, self._run_filter(plugin, ctx, q))
            if plugin.cfg.ticker_interval > 0 and not self.message_time:
                self._spawn(ctx, self._run_ticker(plugin, ctx), suffix=".ticker")
        for plugin, ctx in self.inputs:
            self._spawn(ctx, self._run_input(plugin, ctx))

    def _spawn(self, ctx: PluginContext, coro: Any, suffix: str = "") -> None:
        task = asyncio.create_task(coro, name=ctx.name + suffix)
        self._tasks[ctx.spec.category].append(task)

    async def _supervise(self, ctx: PluginContext, make_attempt: Any) -> bool:
        """Run `make_attempt()` until it returns, restarting it per `[X.retries]`.
        Returns False when the plugin gave up for good."""
        backoff = Backoff.from_config(ctx.spec.cfg.retries)
        while True:
            try:
                await make_attempt()
                return True
            except asyncio.CancelledError:
                raise
            except Exception as e:
                ctx.stats.errors += 1
                if backoff.exhausted or self.stopping.is_set():
                    ctx.log.error("%s failed: %s: %s; not restarting", ctx.name,
                                  type(e).__name__, e, exc_info=True)
                    self._plugin_gave_up(ctx)
                    return False
                delay = backoff.next_delay()
                ctx.stats.restarts += 1
                ctx.log.error("%s failed: %s: %s; restarting in %.2f s", ctx.name,
                              type(e).__name__, e, delay, exc_info=True)
                await asyncio.sleep(delay)

    def _plugin_gave_up(self, ctx: PluginContext) -> None:
        ctx.stats.gave_up = True  # /health: failing
        if not ctx.spec.cfg.can_exit:
            self.failed = f"plugin {ctx.name!r} failed and may not exit (can_exit = false)"
            self.stopping.set()

    async def _run_input(self, plugin: Input, ctx: InputContext) -> None:
        await self._supervise(ctx, lambda: plugin.run(ctx))
        await ctx.flush_decoder()

    async def _run_filter(self, plugin: Filter, ctx: FilterContext, q: BatchQueue) -> None:
        max_loops = self.hekad.max_message_loops
        # In message time, the filter's ticks come from the batches (replay).
        schedule = TickSchedule(plugin.cfg.ticker_interval) if (
            self.message_time and plugin.cfg.ticker_interval > 0) else None
        ctx.schedule = schedule
        plugin.init(ctx)
        while True:
            batch = await q.get()
            if batch is None:
                break
            try:
                if schedule is None:
                    self._process(plugin, ctx, batch.messages)
                else:
                    for messages, tick_ns in schedule.add(batch.messages, batch.watermark):
                        self._process(plugin, ctx, messages)
                        self._tick(plugin, ctx, tick_ns)
            finally:
                batch.done()
            injected = ctx.take_injected()
            if injected:
                if batch.loops + 1 > max_loops:
                    ctx.stats.dropped += len(injected)
                    ctx.limited_log(logging.ERROR, "dropped %d injected messages: "
                                    "max_message_loops (%d) exceeded", len(injected),
                                    max_loops)
                else:
                    await self._route_injected(ctx, injected, batch.loops + 1)
        if schedule is not None:
            for messages, tick_ns in schedule.drain():
                self._process(plugin, ctx, messages)
                self._tick(plugin, ctx, tick_ns)
        try:
            plugin.shutdown(ctx)
        except Exception as e:
            ctx.log.error("shutdown failed: %s: %s", type(e).__name__, e)
        injected = ctx.take_injected()
        if injected:
            await self._route_injected(ctx, injected, 1)

    @staticmethod
    def _process(plugin: Filter, ctx: FilterContext, messages: list[Message]) -> None:
        if not messages:
            return
        try:
            plugin.process(messages, ctx)
        except Exception as e:  # a filter bug is logged, the batch counts as consumed
            ctx.stats.errors += 1
            ctx.limited_log(logging.ERROR, "process failed: %s: %s", type(e).__name__, e)

    @staticmethod
    def _tick(plugin: Filter, ctx: FilterContext, now_ns: int) -> None:
        try:
            plugin.timer_event(now_ns, ctx)
        except Exception as e:
            ctx.stats.errors += 1
            ctx.limited_log(logging.ERROR, "timer_event failed: %s: %s",
                            type(e).__name__, e)

    async def _route_injected(self, ctx: FilterContext, msgs: list[Message], loops: int
                              ) -> None:
        ctx.stats.messages_out += len(msgs)
        nbytes = sum(len(m.payload) for m in msgs) + 256 * len(msgs)
        await self.router.route(Batch(msgs, None, nbytes, loops), skip=ctx.name)

    async def _run_ticker(self, plugin: Filter, ctx: FilterContext) -> None:
        interval = plugin.cfg.ticker_interval
        while not self.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), interval)
            if self.stopping.is_set():
                break
            self._tick(plugin, ctx, time.time_ns())
            injected = ctx.take_injected()
            if injected:
                await self._route_injected(ctx, injected, 1)

    async def _run_output(self, plugin: Output, ctx: OutputContext) -> None:
        async def attempt() -> None:
            n = ctx.requeue_unacknowledged()
            if n:
                ctx.log.warning("re-sending %d unacknowledged batches after a restart", n)
            await plugin.run(ctx)

        ok = await self._supervise(ctx, attempt)
        if not ok:
            # Nobody will acknowledge what is queued: say so, and unblock the router.
            ctx.queue.close()
            self.router.remove(ctx.name)
            lost = ctx.unacknowledged()
            while (b := ctx.queue.get_nowait()) is not None:
                lost.append(b)
            n = sum(len(b) for b in lost)
            if n:
                ctx.log.error("%s stopped for good with %d messages unacknowledged; they "
                              "stay unacknowledged at their inputs", ctx.name, n)

    # stopping --------------------------------------------------------------------------
    async def inputs_finished(self) -> None:
        """Until every input's run returned (they are exhausted, or stopping)."""
        await asyncio.gather(*self._tasks["Input"], return_exceptions=True)

    async def wait(self) -> None:
        """Until a stop is requested (signal or fatal plugin failure)."""
        await self.stopping.wait()

    async def stop(self) -> None:
        """Drain in order: inputs, filters, outputs; then the inputs' final checkpoint."""
        self.stopping.set()
        timeout = self.hekad.shutdown_timeout
        deadline = time.monotonic() + timeout
        await self._wait_tasks(self._tasks["Input"], deadline)
        # The inputs are drained (their decoders flushed): decoders stop now.
        for dec, dctx in self.decoders:
            stop_stage(dec, dctx)
        for _, _, q in self.filters:
            q.close()
        await self._wait_tasks(self._tasks["Filter"], deadline)
        for _, ctx in self.outputs:
            buf = self.buffers.get(ctx.name)
            if buf is None:
                ctx.queue.close()
            else:
                buf.route_queue.close()  # what is queued still goes to disk
        feeders = [t for t in self._tasks["Buffer"] if t.get_name().endswith(".buffer-in")]
        await self._wait_tasks(feeders, deadline)
        for buf in self.buffers.values():
            buf.stop_reading()  # the rest waits on disk; the output's queue then closes
        await self._wait_tasks(self._tasks["Output"], deadline)
        await self._wait_tasks(self._tasks["Buffer"], deadline)
        for buf in self.buffers.values():
            buf.close()
        # The outputs are done encoding: encoders stop now.
        for enc, ectx in self.encoders:
            stop_stage(enc, ectx)
        for plugin, ctx in self.inputs:
            try:
                await plugin.close(ctx)
            except Exception as e:
                ctx.log.error("close failed: %s: %s", type(e).__name__, e)

    async def _wait_tasks(self, group: list[asyncio.Task], deadline: float) -> None:
        if not group:
            return
        done, pending = await asyncio.wait(group, timeout=max(0.0, deadline - time.monotonic()))
        for t in pending:
            log.warning("%s did not stop within shutdown_timeout; cancelling it", t.get_name())
            t.cancel()
        if pending:
            await asyncio.wait(pending)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                log.error("%s ended with %s: %s", t.get_name(), type(exc).__name__, exc)

    def queues(self) -> list[tuple[str, str, BatchQueue]]:
        """(plugin name, role, queue) of every filter and output queue, for the status
        server: role "input" is the queue the plugin reads; a buffered output also has
        "buffer-in", the router's queue in front of its disk buffer."""
        out = [(c.name, "input", q) for _, c, q in self.filters]
        for _, c in self.outputs:
            buf = self.buffers.get(c.name)
            if buf is not None:
                out.append((c.name, "buffer-in", buf.route_queue))
            out.append((c.name, "input", c.queue))
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        out = {}
        for _, c in self.inputs:
            out[c.name] = {**c.stats.as_dict(), "in_flight": c.tracker.in_flight}
        for _, c, q in self.filters:
            out[c.name] = {**c.stats.as_dict(), "queued": q.nmessages}
        for _, c in self.outputs:
            out[c.name] = {**c.stats.as_dict(), "queued": c.queue.nmessages}
        return out
