"""TcpOutput: Heka stream frames to a TcpInput of hekapy or hekad (docs/compatibility.md,
"Heka stream framing"), by default the ProtobufEncoder's bytes inside unsigned frames,
over plain TCP, TLS or a unix socket, through the output's disk buffer (`use_buffering` defaults to
true, as in Heka: buffering defaults max_file_size 128 MiB, cursor_update_count 50,
full_action "shutdown").

Delivery. Each batch is written as one chunk. It is acknowledged (to the disk buffer,
or to its input without buffering) only once its bytes left this process *and* the
receiving host's TCP acknowledged them (the kernel's count of unacknowledged bytes,
SIOCOUTQ, has moved past the batch), on a connection that has not failed. A batch
not yet acknowledged when the connection breaks is written again, in order, on the
next connection; connecting is retried with exponential backoff and jitter
(`retry_delay` .. `retry_max_delay`), forever, and a stop abandons the wait (what is
unacknowledged stays in the disk buffer for the next start).

What that guarantees: at-least-once across reconnects and receiver restarts.
Duplicates are possible (a batch the receiver got just before the connection broke is
sent again; Uuids are kept, so an Elasticsearch downstream stores it once). Heka's
protocol has no application acknowledgement, so a receiver killed with SIGKILL loses
what it had read but not yet handed on, as with hekad. A hekapy TcpInput that stops
cleanly half-closes first: this output then stops writing, waits until what it wrote
is acknowledged, closes, and reconnects; the receiver reads everything up to that
close. Over TLS the byte count of the encrypted stream is not known, so batches are
acknowledged when everything written has been acknowledged by the peer (the send
queues are empty), and a peer's close re-sends what was not acknowledged yet. Where
SIOCOUTQ is not available (not Linux), a batch counts as delivered once the kernel
took it.

Signing (hekapy; hekad's outputs never sign, heka-flood/heka-inject do): a
`[X.signer]` table with `name`, `hmac_key`, `version` (0) and `hmac_hash` ("md5" |
"sha1") signs every frame's body, as Heka's signers do; the receiving
HekaFramingSplitter needs `[<splitter>.signer.<name>_<version>] hmac_key`.

Keys (Heka's): address ("localhost:9125"), local_address (source "host" or
"host:port"), use_tls (false), tls (table, collector/net/tls.py; server_name defaults to
the address's host), keep_alive (false), keep_alive_period (7200 s), reconnect_after
(0 = never: reconnect after that many messages, to spread load behind a balancer),
encoder ("ProtobufEncoder"), use_framing (true with the ProtobufEncoder),
use_buffering (true), buffering. hekapy's: net ("tcp" | "tcp4" | "tcp6" | "unix"; with
"unix", address is a socket path), signer, connect_timeout ("10s"), retry_delay
("250ms"), retry_max_delay ("30s").

    [aggregator_tcp]
    type = "TcpOutput"
    message_matcher = "Type == 'metric' || Type == 'logfile'"
    address = "aggregator.mgmt:5565"
    [aggregator_tcp.signer]
    name = "collector"
    version = 1
    hmac_key = "an example key: use a long random one"
    [aggregator_tcp.buffering]
    max_buffer_size = 1073741824
    full_action = "block"
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
from collections import deque
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.framing import check_output_signer, default_use_framing
from hekapy.collector.engine.plugin import Option, OptionError, Output, register
from hekapy.collector.engine.protobuf import frame
from hekapy.collector.engine.queue import Batch
from hekapy.collector.engine.retry import Backoff
from hekapy.collector.net.tcp import (
    NET_ERRORS,
    net_family,
    set_keep_alive,
    split_host_port,
)
from hekapy.collector.net.tls import client_ssl_context, tls_settings
from hekapy.outputs.batching import Abandoned

# How often the kernel's unacknowledged byte count is looked at while batches wait.
CONFIRM_POLL = 0.005
# How long a clean handover (the peer's FIN, reconnect_after) waits for the peer's
# acknowledgement of what was written before closing anyway.
SETTLE_TIMEOUT = 5.0
WRITE_BUFFER_HIGH = 1 << 20
def _unacked_in_kernel(fd: int) -> int | None:
    """Bytes the peer has not acknowledged yet (SIOCOUTQ); None if unknown."""
    if fd < 0:
        return None
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError):
        return None


class _Pending:
    """A batch written (or to be written) and not acknowledged yet."""

    __slots__ = ("batch", "count", "data", "end")

    def __init__(self, batch: Batch, data: bytes, count: int) -> None:
        self.batch = batch
        self.data = data
        self.count = count
        self.end = 0  # stream offset just past it on the current connection


class _Connection:
    """One connection: what was written, what the peer acknowledged, how it ended."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tls: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.tls = tls
        sock = writer.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        self.written = 0
        self.messages = 0
        self.confirmed = 0
        self.goodbye = False  # the peer closed its side: finish and reconnect
        self.error = ""
        self.ended = asyncio.Event()  # goodbye or error
        self._clean_polls = 0
        self._last_written = -1
        with contextlib.suppress(AttributeError, ValueError):
            self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        """The peer never sends anything: EOF is its goodbye, an error ends it."""
        try:
            while await self.reader.read(4096):
                pass
            self._end("the receiver closed the connection", goodbye=True)
        except NET_ERRORS as e:
            self._end(f"{type(e).__name__}: {e}")

    def _end(self, why: str, goodbye: bool = False) -> None:
        if not self.ended.is_set():
            self.goodbye = goodbye
            self.error = why
            self.ended.set()

    @property
    def usable(self) -> bool:
        return not self.ended.is_set() and not self.transport.is_closing()

    async def write(self, data: bytes) -> int:
        """Write `data`; its end offset on this stream. A failure ends the connection
        (the caller looks at `usable`), it never raises."""
        if not self.usable:
            return self.written
        self.writer.write(data)
        self.written += len(data)
        end = self.written
        try:
            await self.writer.drain()
        except NET_ERRORS as e:
            self._end(f"{type(e).__name__}: {e}")
        return end

    def acknowledged(self) -> int:
        """The stream offset up to which the peer acknowledged what was written (still
        valid after the peer's FIN: the socket stays open for writing)."""
        if self.transport.is_closing():
            return self.confirmed
        buffered = self.transport.get_write_buffer_size()
        unacked = _unacked_in_kernel(self.fd)
        if unacked is None:  # no SIOCOUTQ here: in the kernel's hands counts
            upto = self.written - buffered
        elif not self.tls:
            upto = self.written - buffered - unacked
        else:
            # Encrypted bytes do not map to ours: all or nothing, when the queues stayed
            # empty over two looks with no write in between.
            if buffered == 0 and unacked == 0 and self._last_written == self.written:
                self._clean_polls += 1
            else:
                self._clean_polls = 0
            self._last_written = self.written
            upto = self.written if self._clean_polls >= 2 else self.confirmed
        self.confirmed = max(self.confirmed, upto)
        return self.confirmed

    async def close(self) -> None:
        self._watcher.cancel()
        if self.transport.is_closing():
            self.transport.abort()
            return
        with contextlib.suppress(*NET_ERRORS, RuntimeError):
            if self.transport.can_write_eof():
                self.transport.write_eof()
        self.transport.close()


@register
class TcpOutput(Output):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "address": Option("str", "localhost:9125"),
        "local_address": Option("str", ""),
        "net": Option("str", "tcp", choices=("tcp", "tcp4", "tcp6", "unix")),
        "use_tls": Option("bool", False),
        "tls": Option("table", {}),
        "keep_alive": Option("bool", False),
        "keep_alive_period": Option("int", 7200, doc="seconds"),
        "reconnect_after": Option("int", 0, doc="messages per connection; 0 = no limit"),
        "signer": Option("table", {}, check=check_output_signer,
                         doc="hekapy: name, hmac_key, version, hmac_hash"),
        "connect_timeout": Option("duration", "10s"),
        "retry_delay": Option("duration", "250ms"),
        "retry_max_delay": Option("duration", "30s"),
    }
    defaults: ClassVar[dict[str, Any]] = {"encoder": "ProtobufEncoder", "use_buffering": True}
    buffering_defaults: ClassVar[dict[str, Any]] = {
        "max_file_size": 128 << 20, "cursor_update_count": 50, "full_action": "shutdown"}

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if cfg.net == "unix":
            self.host, self.port = cfg.address, 0
        else:
            self.host, self.port = split_host_port(cfg.address, default_host="localhost")
        self.local_addr: tuple[str, int] | None = None
        if cfg.local_address:
            if ":" in cfg.local_address:
                self.local_addr = split_host_port(cfg.local_address, "local_address")
            else:
                self.local_addr = (cfg.local_address, 0)
        self.tls = tls_settings(cfg.tls) if cfg.use_tls else None
        if cfg.reconnect_after < 0:
            raise OptionError("must be 0 (never) or more", key="reconnect_after")
        self.signer: tuple[str, str, int] | None = None
        self.hmac_hash = "md5"
        if cfg.signer:
            if cfg.use_framing is False:
                raise OptionError("signing needs use_framing = true", key="signer")
            s = cfg.signer
            self.signer = (s["name"], s["hmac_key"], s["version"])
            self.hmac_hash = s["hmac_hash"]
        self.where = self.host if cfg.net == "unix" else f"{self.host}:{self.port}"
        self.connects = 0  # successful connections (tests, logs)
        self.connect_failures = 0
        self.connected = asyncio.Event()  # set while a connection is up

    # --- connecting -------------------------------------------------------------------
    async def _open(self) -> _Connection:
        cfg = self.cfg
        ssl_context = client_ssl_context(self.tls) if self.tls is not None else None
        kwargs: dict[str, Any] = {"limit": 1 << 16}
        if ssl_context is not None:
            kwargs["ssl"] = ssl_context
            kwargs["server_hostname"] = self.tls.server_name or (  # type: ignore[union-attr]
                "localhost" if cfg.net == "unix" else self.host)
        if cfg.net == "unix":
            coro = asyncio.open_unix_connection(self.host, **kwargs)
        else:
            coro = asyncio.open_connection(self.host, self.port, family=net_family(cfg.net),
                                           local_addr=self.local_addr, **kwargs)
        timeout = cfg.connect_timeout or None
        reader, writer = await asyncio.wait_for(coro, timeout)
        if cfg.keep_alive:
            set_keep_alive(writer.transport, cfg.keep_alive_period)
        return _Connection(reader, writer, ssl_context is not None)

    async def _connect(self, ctx: OutputContext, old: _Connection | None,
                       pending: deque[_Pending], backoff: Backoff) -> _Connection:
        """A new connection with what is unacknowledged written on it again. Abandoned
        when hekapy stops before one is up."""
        if old is not None:
            self.connected.clear()
            if old.goodbye or old.usable:
                # A clean handover: let the peer acknowledge what it has, then close.
                await self._settle(ctx, old, pending)
            await old.close()
            if pending:
                n = sum(p.count for p in pending)
                ctx.stats.retried += n
                ctx.limited_log(logging.WARNING, "connection to %s ended (%s); writing %d "
                                "unacknowledged messages again", self.where,
                                old.error or "reconnecting", n)
        while True:
            if ctx.stopping.is_set():
                raise Abandoned(f"{self.where} not reachable while stopping")
            try:
                conn = await self._open()
            except (TimeoutError, *NET_ERRORS) as e:
                self.connect_failures += 1
                delay = backoff.next_delay()
                ctx.limited_log(logging.WARNING, "cannot connect to %s: %s: %s; retrying "
                                "in %.2f s", self.where, type(e).__name__, e, delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(ctx.stopping.wait(), delay)
                continue
            self.connects += 1
            ctx.log.info("connected to %s%s", self.where, " (TLS)" if conn.tls else "")
            for p in pending:
                p.end = await conn.write(p.data)
                conn.messages += p.count
            if conn.usable:
                self.connected.set()
                return conn
            await conn.close()
            delay = backoff.next_delay()
            ctx.limited_log(logging.WARNING, "connection to %s failed at once (%s); "
                            "retrying in %.2f s", self.where, conn.error, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), delay)

    async def _settle(self, ctx: OutputContext, conn: _Connection,
                      pending: deque[_Pending], timeout: float = SETTLE_TIMEOUT) -> None:
        """Until the peer acknowledged everything written, the connection broke, or
        `timeout` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending and loop.time() < deadline:
            if not self._confirm(ctx, conn, pending):
                return
            if pending:
                await asyncio.sleep(CONFIRM_POLL)

    # --- acknowledging ----------------------------------------------------------------
    def _confirm(self, ctx: OutputContext, conn: _Connection | None,
                 pending: deque[_Pending]) -> bool:
        """Acknowledge the batches the peer has; False when the connection is gone
        (its unacknowledged batches wait for the next one)."""
        if conn is None or conn.transport.is_closing() or (conn.error and not conn.goodbye):
            return False
        upto = conn.acknowledged()
        done = 0
        while pending and pending[0].end <= upto:
            p = pending.popleft()
            done += p.count
            p.batch.done()
        if done:
            ctx.stats.messages_out += done
        return True

    async def _confirmer(self, ctx: OutputContext, pending: deque[_Pending],
                         wake: asyncio.Event) -> None:
        """While batches wait, look at the kernel's count every few milliseconds."""
        while True:
            await wake.wait()
            self._confirm(ctx, self._conn, pending)
            if pending:
                await asyncio.sleep(CONFIRM_POLL)
            else:
                wake.clear()

    # --- the loop ---------------------------------------------------------------------
    def _wrap(self, ctx: OutputContext) -> Any:
        framing = self.cfg.use_framing
        if framing is None:
            framing = default_use_framing(ctx.encoder)
        if not framing and self.signer is None:
            return None
        limit = ctx.hekad.max_message_size
        signer, hmac_hash = self.signer, self.hmac_hash
        return lambda data: frame(data, signer, hmac_hash=hmac_hash, max_message_size=limit)

    async def _next(self, ctx: OutputContext, conn: _Connection | None) -> Batch | None:
        """The next batch; None when the queue is closed and empty, or when the
        connection ended while waiting (the caller reconnects)."""
        q = ctx.queue
        while True:
            b = ctx.next_batch_nowait()
            if b is not None or (q.closed and not len(q)):
                return b
            if conn is None or not conn.usable:
                await q.wait_nonempty()
                continue
            waiter = asyncio.ensure_future(q.wait_nonempty())
            ended = asyncio.ensure_future(conn.ended.wait())
            await asyncio.wait((waiter, ended), return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            ended.cancel()
            if not conn.usable:
                return None

    async def run(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        wrap = self._wrap(ctx)
        backoff = Backoff(cfg.retry_delay, cfg.retry_max_delay, cfg.retry_delay)
        pending: deque[_Pending] = deque()
        wake = asyncio.Event()
        self._conn: _Connection | None = None
        confirmer = asyncio.ensure_future(self._confirmer(ctx, pending, wake))
        try:
            while True:
                conn = self._conn
                batch = await self._next(ctx, conn)
                if batch is None:
                    if ctx.queue.closed and not len(ctx.queue):
                        break
                    # The connection ended while idle: write what waits on a new one,
                    # or just close it (a stopping receiver waits for our FIN).
                    if pending:
                        self._conn = await self._connect(ctx, conn, pending, backoff)
                    elif conn is not None:
                        self.connected.clear()
                        await conn.close()
                        self._conn = None
                    continue
                data = b"".join(ctx.encode_messages(batch.messages, wrap))
                if not data:  # nothing encodable (counted as errors by encode_messages)
                    batch.done()
                    continue
                if (conn is None or not conn.usable
                        or (cfg.reconnect_after and conn.messages >= cfg.reconnect_after)):
                    conn = self._conn = await self._connect(ctx, conn, pending, backoff)
                p = _Pending(batch, data, len(batch))
                pending.append(p)
                p.end = await conn.write(data)
                conn.messages += p.count
                if conn.usable:
                    backoff.reset()
                self._confirm(ctx, conn, pending)
                wake.set()
            # Stopping: wait for the peer to acknowledge what was written.
            conn = self._conn
            if pending and conn is not None:
                await self._settle(ctx, conn, pending, timeout=float("inf"))
            if pending:
                ctx.log.warning("stopping with %d messages not acknowledged by %s; they are "
                                "sent again on the next start",
                                sum(p.count for p in pending), self.where)
        except Abandoned as e:
            # Empty the queue without acknowledging anything (it all stays in the disk
            # buffer, or unacknowledged at its input), so the stages before stop now.
            left = sum(p.count for p in pending)
            while (b := await ctx.next_batch()) is not None:
                left += len(b)
            ctx.log.warning("stopping with %d messages not delivered (%s); they are sent "
                            "again on the next start", left, e)
        finally:
            confirmer.cancel()
            self.connected.clear()
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
