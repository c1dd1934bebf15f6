"""`use_buffering` for an output: the router's batches go to a DiskBuffer
(collector/engine/buffer.py) and the output reads them back from it.

    router ─▶ route queue ─▶ feed() ─▶ disk ─▶ drain() ─▶ output queue ─▶ output

A batch is acknowledged to its inputs once it is on disk (written and fsynced): the
input's journal may move on, and an outage of the server fills the disk buffer, not
memory. The output acknowledges what it read back to the buffer, whose checkpoint
moves in order (an AckTracker, as for inputs). On stop, what is queued is written to
disk, the output finishes what it holds, and the rest waits on disk for the next start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hekapy.collector.engine.acks import AckTracker
from hekapy.collector.engine.buffer import BufferFull, DiskBuffer, buffer_dir
from hekapy.collector.engine.queue import Batch, BatchQueue
from hekapy.collector.engine.serialize import pack_messages, unpack_message

if TYPE_CHECKING:
    from hekapy.collector.engine.contexts import OutputContext
    from hekapy.collector.engine.pipeline import Pipeline

_READ_RECORDS = 1000
_READ_BYTES = 4 << 20


class OutputBuffer:
    def __init__(self, pipeline: Pipeline, ctx: OutputContext, route_queue: BatchQueue
                 ) -> None:
        cfg = ctx.spec.cfg.buffering
        hekad = pipeline.hekad
        self.pipeline = pipeline
        self.ctx = ctx
        self.route_queue = route_queue
        self.disk = DiskBuffer(buffer_dir(hekad.base_dir, ctx.name), cfg.max_file_size,
                               cfg.max_buffer_size, cfg.full_action, cfg.cursor_update_count)
        self.tracker = AckTracker(self.disk.ack, hekad.plugin_chansize * 2,
                                  hekad.max_queue_bytes)
        self._stop = asyncio.Event()
        if self.disk.size_bytes:
            ctx.log.info("%s: %d bytes left in the disk buffer from the last run",
                         ctx.name, self.disk.size_bytes)

    async def feed(self) -> None:
        """Route queue → disk; each batch is acknowledged once it is durable."""
        ctx = self.ctx
        while (batch := await self.route_queue.get()) is not None:
            try:
                stored = await self.disk.append(pack_messages(batch.messages))
            except BufferFull as e:
                ctx.log.error("%s (full_action = shutdown): stopping hekapy", e)
                self.pipeline.failed = str(e)
                self.pipeline.stopping.set()
                return  # the batch stays unacknowledged: its input replays it
            if not stored:
                ctx.stats.dropped += len(batch)
                ctx.limited_log(logging.WARNING, "disk buffer full: dropped %d messages "
                                "(full_action = drop)", len(batch))
            batch.done()

    async def drain(self) -> None:
        """Disk → the output's queue, until the buffer stops handing out records."""
        ctx = self.ctx
        try:
            while items := await self.disk.read(_READ_RECORDS, _READ_BYTES):
                msgs = []
                for _, record in items:
                    try:
                        msgs.append(unpack_message(record))
                    except Exception as e:  # a checksummed record that is no message
                        ctx.stats.errors += 1
                        ctx.limited_log(logging.ERROR, "unreadable buffered record "
                                        "skipped: %s: %s", type(e).__name__, e)
                nbytes = sum(len(r) for _, r in items)
                # The window may stay full for good when stopping (the output gives up
                # on a server that is down): wait for room or for the stop.
                get_ticket = asyncio.ensure_future(self.tracker.ticket(items[-1][0], nbytes))
                stop = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait((get_ticket, stop), return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if not get_ticket.done():
                    get_ticket.cancel()
                    break  # these records stay on disk, unacknowledged
                await ctx.queue.put(Batch(msgs, get_ticket.result(), nbytes))
        finally:
            ctx.queue.close()

    def stop_reading(self) -> None:
        self._stop.set()
        self.disk.stop_reading()

    def close(self) -> None:
        """After the output stopped: save the checkpoint of what it acknowledged."""
        self.disk.close()
