"""What every batching network output shares (Elasticsearch, InfluxDB): collect a flush
from the queue, encode it, keep up to `max_in_flight` flushes on the wire, acknowledge
a flush's batches only when the output says its data is stored, and retry with backoff
without ever holding a stop.

An output subclasses BatchingOutput and implements `send(ctx, items)`, which returns
once every item is stored or handed to a dead-letter file, calling `retry_later` for
what must be sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import aiohttp

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.plugin import Option, OptionError, Output
from hekapy.collector.engine.queue import Batch
from hekapy.collector.engine.retry import Backoff

# While backing off from a server that did not answer, how often to ask whether it is
# back (BatchingOutput.retry_later's `probe`), and how long one asking may take.
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0


async def server_answers(session: aiohttp.ClientSession, url: str) -> bool:
    """Whether `url` gets any answer below 500 within PROBE_TIMEOUT (a `probe`)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
                               ) as resp:
            return resp.status < 500
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


class Abandoned(Exception):
    """A delivery given up because hekapy is stopping (nothing was acknowledged: the
    data is still in the disk buffer or at its input, and goes out on the next start)."""


class BatchingOutput(Output):
    """The shared keys below (each output sets its own defaults through `defaults`);
    subclasses implement `send`; `what` names the items in logs ("documents")."""

    options: ClassVar[dict[str, Option]] = {
        "flush_interval": Option("duration", 1000, unit=1e-3, doc="ms"),
        "flush_count": Option("int", 1000, doc="items that trigger a flush"),
        "flush_bytes": Option("int", 5 << 20, doc="bytes that trigger a flush"),
        "max_in_flight": Option("int", 2, doc="requests at once"),
        "compression": Option("str", "none", choices=("none", "gzip")),
        "http_timeout": Option("duration", 0, unit=1e-3, doc="ms; 0 = none"),
        "tls": Option("table", {}, doc="[X.tls]: CA, client certificate"),
        "retry_delay": Option("duration", "250ms", doc="first retry delay"),
        "retry_max_delay": Option("duration", "30s", doc="largest retry delay"),
    }
    what = "items"

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        for key in ("flush_count", "max_in_flight"):
            if getattr(cfg, key) < 1:
                raise OptionError("must be at least 1", key=key)

    async def open(self, ctx: OutputContext) -> None:
        """Before the first flush (clients, files)."""

    async def close_output(self) -> None:
        """After the last flush."""

    async def send(self, ctx: OutputContext, items: list[bytes]) -> None:
        raise NotImplementedError

    def backoff(self) -> Backoff:
        return Backoff(self.cfg.retry_delay, self.cfg.retry_max_delay, self.cfg.retry_delay)

    async def run(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        await self.open(ctx)
        slots = asyncio.Semaphore(cfg.max_in_flight)
        in_flight: set[asyncio.Task] = set()
        try:
            while True:
                batches = await ctx.collect(cfg.flush_count, cfg.flush_interval,
                                            cfg.flush_bytes)
                if batches is None:
                    break
                items = self.encode_batches(ctx, batches)
                await slots.acquire()
                task = asyncio.create_task(self._deliver(ctx, items, batches, slots))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                # A failed delivery task is a bug: surface it (the supervisor restarts
                # the output and re-sends what is unacknowledged).
                for t in [t for t in in_flight if t.done() and t.exception()]:
                    raise t.exception()  # type: ignore[misc]
            if in_flight:
                await asyncio.gather(*in_flight)
        finally:
            for t in in_flight:
                t.cancel()
            await self.close_output()

    def encode_batches(self, ctx: OutputContext, batches: list[Batch]) -> list[bytes]:
        """The encoder's bytes for every message; an encoder error skips one message."""
        items: list[bytes] = []
        for b in batches:
            items += ctx.encode_messages(b.messages)
        return items

    async def _deliver(self, ctx: OutputContext, items: list[bytes], batches: list[Batch],
                       slots: asyncio.Semaphore) -> None:
        try:
            if items:
                await self.send(ctx, items)
            for b in batches:
                b.done()
        except Abandoned as e:
            ctx.limited_log(logging.WARNING, "stopping with %d %s not stored (%s); they "
                            "are sent again on the next start", len(items), self.what, e)
        finally:
            slots.release()

    async def retry_later(self, ctx: OutputContext, backoff: Backoff, count: int, why: str,
                          level: int = logging.WARNING, delay: float | None = None,
                          probe: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Wait before sending `count` items again (`delay`: the server's Retry-After);
        Abandoned when stopping.

        `probe` (for a server that did not answer at all): while a long backoff runs,
        ask every PROBE_INTERVAL whether the server answers again, and retry as soon as
        it does. After an outage the backlog then starts draining within about a second
        of the server's return, not up to `retry_max_delay` later. A server that answers
        but refuses (429, 5xx) is left alone for its whole backoff."""
        if ctx.stopping.is_set():
            raise Abandoned(why)
        wait = backoff.next_delay()
        if delay is not None:
            wait = max(wait, delay)
        ctx.stats.retried += count
        ctx.limited_log(level, "%d %s not stored (%s); retrying in %.2f s", count, self.what,
                        why, wait)
        if probe is None or wait <= PROBE_INTERVAL:
            await asyncio.sleep(wait)
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(PROBE_INTERVAL, left))
            if end - loop.time() > 0 and await probe():
                ctx.log.info("%s answers again: retrying now", self.name)
                return


    async def write_dead_letters(self, ctx: OutputContext, dead_letter: Any,
                                 records: list[tuple[bytes, int, Any]]) -> None:
        """Append what a server refused for good to the dead-letter file. Those items
        are acknowledged only once written: a file that cannot be written (disk full,
        read-only) is tried again with backoff, never given up on."""
        backoff = self.backoff()
        while True:
            try:
                await dead_letter.write(records)
                return
            except OSError as e:
                await self.retry_later(ctx, backoff, len(records), "cannot write the "
                                       f"dead-letter file {dead_letter.path}: {e}",
                                       logging.ERROR)


def describe(body: bytes, limit: int = 300) -> Any:
    """A server's error body, short, for logs."""
    import orjson
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:limit].decode("utf-8", "replace")
    return doc.get("error", doc) if isinstance(doc, dict) else doc
