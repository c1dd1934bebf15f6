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
from typing import Any

from hekapy.collector.pipeline import OutputContext
from hekapy.collector.plugin import Output
from hekapy.collector.queue import Batch
from hekapy.collector.retry import Backoff


class Abandoned(Exception):
    """A delivery given up because hekapy is stopping (nothing was acknowledged: the
    data is still in the disk buffer or at its input, and goes out on the next start)."""


class BatchingOutput(Output):
    """Subclasses set `cfg.flush_count`, `cfg.flush_interval`, `cfg.flush_bytes`,
    `cfg.max_in_flight`, `cfg.retry_delay`, `cfg.retry_max_delay` through their options
    and implement `send`; `what` names the items in logs ("documents", "points")."""

    what = "items"

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
        encode = ctx.encoder.encode  # type: ignore[union-attr]
        items: list[bytes] = []
        for b in batches:
            for m in b.messages:
                try:
                    data = encode(m)
                except Exception as e:  # an encoder bug must not stall the output
                    ctx.stats.errors += 1
                    ctx.limited_log(logging.ERROR, "encoding failed: %s: %s",
                                    type(e).__name__, e)
                    continue
                if data:
                    items.append(data)
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
                          level: int = logging.WARNING, delay: float | None = None) -> None:
        """Wait before sending `count` items again (`delay`: the server's Retry-After);
        Abandoned when stopping."""
        if ctx.stopping.is_set():
            raise Abandoned(why)
        wait = backoff.next_delay()
        if delay is not None:
            wait = max(wait, delay)
        ctx.stats.retried += count
        ctx.limited_log(level, "%d %s not stored (%s); retrying in %.2f s", count, self.what,
                        why, wait)
        await asyncio.sleep(wait)


def describe(body: bytes, limit: int = 300) -> Any:
    """A server's error body, short, for logs."""
    import orjson
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:limit].decode("utf-8", "replace")
    return doc.get("error", doc) if isinstance(doc, dict) else doc
