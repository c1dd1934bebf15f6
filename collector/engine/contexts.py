"""What a running plugin reaches: one context per plugin, made by the pipeline.

- `PluginContext`: name, hekad settings, stats, logs, the stop event.
- `FilterContext`: `inject()` sends new messages back through the router.
- `InputContext`: fresh splitters, records to messages, the decoder, routing under the
  input's acknowledgement window (backpressure), and the hold window of a multi-line
  decoder (collector/engine/hold_window.py).
- `OutputContext`: the output's queue, its encoder, the shared batching loop
  (`collect`), batches handed out but not yet acknowledged, re-queued when the
  output restarts, and `inject()` for the messages an output makes (Heka's
  DashboardOutput: its reports).

Signed messages: a HekaFramingSplitter with `signer` keys returns each verified frame as
a `SignedRecord`; `records_to_messages` and `decode` put its signer on the messages,
and routes with `message_signer` take only that signer's (collector/engine/router.py).
Heka's HMAC signing: https://hekad.readthedocs.io/en/v0.10.0/config/splitters/heka_framing.html
Inputs whose splitter cannot verify anything skip all of it.

The [hekad] deployment tags go on every message an input makes and every message a
filter injects (`add_tags`; LMA tagged its filters' metrics too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from hekapy.collector.engine.acks import AckTracker
from hekapy.collector.engine.framing import SignedRecord, may_tag_signers
from hekapy.collector.engine.hold_window import HoldWindow
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
from hekapy.collector.engine.plugin import DecodeError, Decoder, Encoder, PluginSpec, Splitter
from hekapy.collector.engine.queue import Batch, BatchQueue
from hekapy.collector.engine.stats import PluginStats, RateLimitedLog

if TYPE_CHECKING:
    from hekapy.collector.engine.pipeline import Pipeline


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


def tag_signers(messages: list[Message], records: list[bytes]) -> None:
    """Each message gets the verified signer of the record it was made of."""
    for m, r in zip(messages, records, strict=True):
        if isinstance(r, SignedRecord):
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
        self._deliver_lock = asyncio.Lock()
        # A decoder may hold messages back (multi-line): its window keeps their
        # deliveries' positions out of the checkpoint (collector/engine/hold_window.py).
        self.hold: HoldWindow | None = None
        if decoder is not None:
            self.hold = HoldWindow(decoder, self.tracker.max_batches, self.limited_log,
                                   self._start_idle_flush)

    @property
    def forced_flushes(self) -> int:
        """Held messages sent before their end: they spanned more deliveries than the
        input's window (poolsize) holds."""
        return self.hold.forced_flushes if self.hold is not None else 0

    def on_ack(self, callback: Any) -> None:
        """`callback(position)` runs whenever every batch up to `position` is done."""
        self.tracker.on_progress = callback

    def new_splitter(self) -> Splitter:
        """A fresh splitter for one stream (it holds that stream's incomplete record)."""
        spec = self._splitter_spec
        if spec is None:
            spec = self.pipeline.config.resolve("NullSplitter", "Splitter")
            assert spec is not None  # built in, always there
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
        limited) and, with send_decode_failures, forwarded marked decode_failure=true.
        Every message leaves with the deployment tags, also those of an input without a
        decoder (HaproxyStatsInput's metrics: LMA tagged only what a decoder or filter
        made, so its dashboards could not filter those by environment)."""
        hold = self.hold
        if hold is None:  # no decoder
            if self.tags:
                self.add_tags(messages)
            return messages
        dec = hold.decoder
        # These records travel in the next delivery: a multi-line decoder dates what it
        # holds back by it.
        dec.batch = hold.upcoming()
        # A decoder makes new messages: with signed records, they keep the signer.
        decode_one = self._decode_keeping_signer if self.tags_signers else dec.decode
        out: list[Message] = []
        append = out.append
        # Heka's ProcessMessageAvgDuration: timed per batch, two clock reads for all.
        started = time.perf_counter_ns()
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
        stats = self.stats
        stats.process_ns += time.perf_counter_ns() - started
        stats.process_samples += len(messages)
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
        """Route one delivery. While the decoder holds messages back, the delivery's
        position may be deferred to a later ticket (HoldWindow.settle)."""
        hold = self.hold
        earlier = None
        if hold is not None:
            n = hold.open()
            forced, position, earlier = hold.settle(n, position)
            if forced:
                if self.tags:
                    self.add_tags(forced)
                decoded.extend(forced)
        self.stats.messages_out += len(decoded)
        self.stats.bytes_out += nbytes
        await self._send(Batch(decoded, None, nbytes, 0, watermark), position, earlier)
        if hold is not None:
            hold.note_delivery(n)

    async def _send(self, batch: Batch, position: Any, earlier: list[Any] | None) -> None:
        """A ticket for `batch` (waiting for room in the window), then route it. The
        wait does not count towards hold timeouts: the continuation of a held message
        may be just behind, unread because the input is waiting."""
        hold = self.hold
        if hold is not None:
            hold.pause()
        try:
            batch.ticket = await self.tracker.ticket(position, batch.nbytes, earlier)
            await self.pipeline.router.route(batch)
        finally:
            if hold is not None:
                hold.resume()

    def _start_idle_flush(self) -> None:
        """The hold timer found a quiet stream: flush it in a task of its own (the
        timer runs outside any delivery)."""
        task = asyncio.get_running_loop().create_task(self._flush_idle())
        self.pipeline.background.add(task)
        task.add_done_callback(self.pipeline.background.discard)

    async def _flush_idle(self) -> None:
        """Deliver the held messages of streams quiet for hold_timeout. Decided again
        once no delivery runs: one that just ended may have continued them."""
        async with self._deliver_lock:
            hold = self.hold
            if hold is None or not hold.decoder.holding:
                return
            flushed = hold.take_idle()
            if flushed is not None:
                await self._route_flushed(hold, flushed)
            hold.note_flush()

    async def flush_decoder(self) -> None:
        """Deliver everything the decoder holds back (the input stopped)."""
        async with self._deliver_lock:
            hold = self.hold
            if hold is None:
                return
            if hold.decoder.holding:
                await self._route_flushed(hold, hold.decoder.flush())
            hold.note_flush()

    async def _route_flushed(self, hold: HoldWindow, flushed: list[Message]) -> None:
        """Route held messages the decoder gave up on, with the positions that became
        safe. The batch takes a ticket of its own: no ticket waits on held records, so
        room in the window always comes."""
        if self.tags:
            self.add_tags(flushed)
        earlier = hold.released()
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

    async def inject(self, messages: list[Message], loops: int = 0) -> int:
        """Route messages this output made (Heka's DashboardOutput injects its reports)
        to every matching filter and output, this one included, by the path a filter's
        injections take. `loops`: the loop count of the batch they were made from (0
        for a timer); past [hekad] max_message_loops they are dropped and counted
        (Heka's loop protection). Returns how many were routed.

        Await it from a task of its own, never from the one reading this output's
        queue: routing waits for room in every matching queue, this one's included."""
        if not messages:
            return 0
        limit = self.hekad.max_message_loops
        if loops + 1 > limit:
            self.stats.dropped += len(messages)
            self.limited_log(logging.ERROR, "dropped %d injected messages: "
                             "max_message_loops (%d) exceeded", len(messages), limit)
            return 0
        self.stats.injected += len(messages)
        await self.pipeline.route_made(messages, loops + 1)
        return len(messages)

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
