"""Builds the running pipeline from a Config and runs it.

    input ─records─▶ splitter ─▶ decoder ─messages─▶ router ─▶ filter ─▶ router
                                                       └────▶ output ─▶ server
               ◀───────── acks (tickets) back to the input's checkpoint ─────┘

Each input, filter and output runs in its own asyncio task, with its context
(collector/engine/contexts.py). Inputs split and decode inline (one thread; a separate
decode task would only add a hand-off) and route batches themselves. Filters and
outputs read their own bounded queue.

Stopping (SIGTERM/SIGINT): inputs stop reading; filter queues close and drain; then
output queues close and drain; outputs flush and acknowledge; inputs write their final
checkpoint. What was not acknowledged within `shutdown_timeout` is re-read next start.
Decoders and encoders that define `init(ctx)` / `shutdown(ctx)` (the sandbox ones, for
preserve_data) get them with their input's or output's context: `init` once the
pipeline is built, `shutdown` once their input drained (decoders) or their output
finished (encoders).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

from hekapy.collector.engine.buffering import OutputBuffer
from hekapy.collector.engine.config import Config
from hekapy.collector.engine.contexts import (
    FilterContext,
    InputContext,
    OutputContext,
    PluginContext,
)
from hekapy.collector.engine.matcher import compile_matcher
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.message_clock import TickSchedule
from hekapy.collector.engine.plugin import Decoder, Encoder, Filter, Input, Output, PluginSpec
from hekapy.collector.engine.queue import Batch, BatchQueue
from hekapy.collector.engine.retry import Backoff
from hekapy.collector.engine.router import Route, Router

log = logging.getLogger("hekapy")


class PipelineFailed(Exception):
    """A plugin that may not exit has failed for good; hekapy stops."""


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
        for spec in cfg.by_category("Filter"):
            self._add_filter(spec)
        for spec in cfg.by_category("Output"):
            self._add_output(spec)
        for spec in cfg.by_category("Input"):
            self._add_input(spec)
        # Start calls once every plugin is built (a build error raises before any
        # plugin restored anything), before anything runs.
        for stage, sctx in [*self.decoders, *self.encoders]:
            start_stage(stage, sctx)

    # (A plugin's category comes from its type name's suffix: the casts say so.)
    def _add_filter(self, spec: PluginSpec) -> None:
        h = self.hekad
        pred = compile_matcher(spec.cfg.message_matcher)
        plugin = cast(Filter, spec.build())
        ctx = FilterContext(self, spec, pred)
        q = BatchQueue(h.plugin_chansize, h.max_queue_bytes)
        self.router.add(Route(spec.name, pred, q, ctx.stats, spec.cfg.message_signer))
        self.filters.append((plugin, ctx, q))

    def _add_output(self, spec: PluginSpec) -> None:
        cfg = self.config
        h = self.hekad
        pred = compile_matcher(spec.cfg.message_matcher)
        enc_spec = cfg.resolve(spec.cfg.encoder, "Encoder") if spec.cfg.encoder else None
        encoder = cast(Encoder, enc_spec.build()) if enc_spec else None
        plugin = cast(Output, spec.build())
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

    def _add_input(self, spec: PluginSpec) -> None:
        cfg = self.config
        splitter = cfg.resolve(spec.cfg.splitter, "Splitter") if spec.cfg.splitter else None
        decoder = None
        built: list[Any] = []
        if spec.cfg.decoder:
            decoder = self.build_plugin(spec.cfg.decoder, "Decoder", built)
        plugin = cast(Input, spec.build())
        ctx = InputContext(self, spec, splitter, decoder)
        self.inputs.append((plugin, ctx))
        self.decoders.extend((d, ctx) for d in built if _has_stages(d))

    def build_plugin(self, name: str, category: str, built: list[Any] | None = None
                     ) -> Any:
        """A new instance of the plugin named `name`, linked to the plugins it refers to
        (`built` collects them all, see the module-level build_plugin)."""
        return build_plugin(self.config, name, category, built=built)

    # running ---------------------------------------------------------------------------
    async def start(self) -> None:
        for output, octx in self.outputs:
            self._spawn(octx, self._run_output(output, octx))
            buf = self.buffers.get(octx.name)
            if buf is not None:
                for coro, suffix in ((buf.feed(), ".buffer-in"), (buf.drain(), ".buffer-out")):
                    task = asyncio.create_task(coro, name=octx.name + suffix)
                    self._tasks["Buffer"].append(task)
        for filt, fctx, q in self.filters:
            self._spawn(fctx, self._run_filter(filt, fctx, q))
            if filt.cfg.ticker_interval > 0 and not self.message_time:
                self._spawn(fctx, self._run_ticker(filt, fctx), suffix=".ticker")
        for inp, ictx in self.inputs:
            self._spawn(ictx, self._run_input(inp, ictx))

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
        started = time.perf_counter_ns()  # Heka's ProcessMessageAvgDuration, per batch
        try:
            plugin.process(messages, ctx)
        except Exception as e:  # a filter bug is logged, the batch counts as consumed
            ctx.stats.errors += 1
            ctx.limited_log(logging.ERROR, "process failed: %s: %s", type(e).__name__, e)
        stats = ctx.stats
        stats.process_ns += time.perf_counter_ns() - started
        stats.process_samples += len(messages)

    @staticmethod
    def _tick(plugin: Filter, ctx: FilterContext, now_ns: int) -> None:
        started = time.perf_counter_ns()
        try:
            plugin.timer_event(now_ns, ctx)
        except Exception as e:
            ctx.stats.errors += 1
            ctx.limited_log(logging.ERROR, "timer_event failed: %s: %s",
                            type(e).__name__, e)
        stats = ctx.stats
        stats.timer_ns += time.perf_counter_ns() - started
        stats.timer_samples += 1

    async def _route_injected(self, ctx: FilterContext, msgs: list[Message], loops: int
                              ) -> None:
        ctx.stats.messages_out += len(msgs)
        await self.route_made(msgs, loops, skip=ctx.name)

    async def route_made(self, msgs: list[Message], loops: int, skip: str | None = None
                         ) -> None:
        """Route messages a plugin made (a filter's injections, an output's reports) as
        one batch of loop count `loops`, to every matching consumer but `skip`."""
        nbytes = sum(len(m.payload) for m in msgs) + 256 * len(msgs)
        await self.router.route(Batch(msgs, None, nbytes, loops), skip=skip)

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
        for inp, ictx in self.inputs:
            try:
                await inp.close(ictx)
            except Exception as e:
                ictx.log.error("close failed: %s: %s", type(e).__name__, e)

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
        out = [(fctx.name, "input", q) for _, fctx, q in self.filters]
        for _, octx in self.outputs:
            buf = self.buffers.get(octx.name)
            if buf is not None:
                out.append((octx.name, "buffer-in", buf.route_queue))
            out.append((octx.name, "input", octx.queue))
        return out

    def stats(self) -> dict[str, dict[str, int]]:
        out = {}
        for _, ictx in self.inputs:
            out[ictx.name] = {**ictx.stats.as_dict(), "in_flight": ictx.tracker.in_flight}
        for _, fctx, q in self.filters:
            out[fctx.name] = {**fctx.stats.as_dict(), "queued": q.nmessages}
        for _, octx in self.outputs:
            out[octx.name] = {**octx.stats.as_dict(), "queued": octx.queue.nmessages}
        return out
