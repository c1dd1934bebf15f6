"""UdpInput: datagrams → records → messages (docs/compatibility.md, "Inputs").

Each datagram is read on its own: with the default NullSplitter one datagram is one
record; with a HekaFramingSplitter (and a ProtobufDecoder) each datagram carries one
or more whole Heka frames, as a UdpOutput with `use_framing = true` sends them. A
frame cut off at the end of a datagram is dropped (a datagram never continues in the
next one). Frames with a bad HMAC or over max_message_size are dropped and counted
as on a TcpInput (`losses` on the plugin, `dropped` in the input's stats).

UDP has no backpressure: datagrams that arrive while the pipeline is full wait in a
queue of at most `max_queued` datagrams; past it they are dropped and counted
(`dropped`), rather than lost silently in the kernel. Delivery is at most once.

Keys (Heka's): address (required: "host:port", or a socket path with net =
"unixgram"), net ("udp" | "udp4" | "udp6" | "unixgram"), set_hostname (false: true
sets Hostname to the sender's address), splitter (NullSplitter), decoder, signer
(legacy `[X.signer.<name>_<version>]` tables with hmac_key, for a
HekaFramingSplitter). hekapy's: max_queued (10000 datagrams).
Raw messages: Type and Logger = the input's name.

    [udp_in]
    type = "UdpInput"
    address = "127.0.0.1:5565"
    splitter = "HekaFramingSplitter"
    decoder = "ProtobufDecoder"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections import deque
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.framing import check_signers
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Input, Option, OptionError, Splitter, register
from hekapy.collector.net.tcp import (
    SplitterLosses,
    framing_splitter,
    net_family,
    split_host_port,
)

# Datagrams handed to the pipeline as one batch, at most.
BATCH_DATAGRAMS = 2000
# Datagrams read at one wake-up of the event loop, at most.
READ_BURST = 1000
MAX_DATAGRAM = 65535


@register
class UdpInput(Input):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "address": Option("str", None, required=True),
        "net": Option("str", "udp", choices=("udp", "udp4", "udp6", "unixgram")),
        "set_hostname": Option("bool", False),
        "signer": Option("table", {}, check=check_signers,
                         doc="legacy [X.signer.<name>_<version>] tables with hmac_key"),
        "max_queued": Option("int", 10000, doc="datagrams waiting for the pipeline"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if cfg.net == "unixgram":
            if not cfg.address:
                raise OptionError("net = \"unixgram\" needs a socket path", key="address")
            self.host, self.port = cfg.address, 0
        else:
            self.host, self.port = split_host_port(cfg.address)
        if cfg.max_queued < 1:
            raise OptionError("must be at least 1", key="max_queued")
        self.signers: dict[str, str] = dict(cfg.signer or {})
        self.bound_port: int | None = None
        self.listening = asyncio.Event()
        self.losses = SplitterLosses()
        self.datagrams = 0
        self.overflowed = 0  # datagrams dropped because the queue was full
        self._queue: deque[tuple[bytes, Any]] = deque()
        self._arrived = asyncio.Event()
        self._ctx: InputContext | None = None

    def _received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        if len(self._queue) >= self.cfg.max_queued:
            self.overflowed += 1
            if self._ctx is not None:
                self._ctx.stats.dropped += 1
                self._ctx.limited_log(logging.WARNING, "dropped a datagram: %d are waiting "
                                      "for the pipeline (max_queued)", len(self._queue))
            return
        self._queue.append((data, addr))
        self._arrived.set()

    def _error(self, exc: Exception) -> None:
        if self._ctx is not None:
            self._ctx.stats.errors += 1
            self._ctx.limited_log(logging.WARNING, "receive error: %s: %s",
                                  type(exc).__name__, exc)

    @staticmethod
    def _peer(addr: Any) -> str:
        if isinstance(addr, tuple) and len(addr) >= 2:
            host = addr[0]
            return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
        return str(addr or "")

    def _open(self) -> socket.socket:
        """A bound non-blocking socket. Read with add_reader, every datagram waiting at
        each wake-up (asyncio's datagram transport reads one per loop iteration, and a
        burst would overflow the kernel's buffer meanwhile)."""
        if self.cfg.net == "unixgram":
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(self.host).st_mode):
                    os.unlink(self.host)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            addr: Any = self.host
        else:
            infos = socket.getaddrinfo(self.host, self.port, net_family(self.cfg.net),
                                       socket.SOCK_DGRAM, 0, socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
        if self.cfg.net != "unixgram":
            self.bound_port = sock.getsockname()[1]
        return sock

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(READ_BURST):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._error(e)
                return
            self._received(data, addr)

    async def _deliver_queued(self, ctx: InputContext, sp: Splitter, seen: list[int]
                              ) -> None:
        name = self.name
        messages: list[Message] = []
        nbytes = 0
        queue = self._queue
        for _ in range(min(len(queue), BATCH_DATAGRAMS)):
            data, addr = queue.popleft()
            nbytes += len(data)
            peer = self._peer(addr) or self.host
            records = sp.split(data) + sp.flush()
            sp.reset()
            self.losses.report(ctx, sp, seen, peer)
            if records:
                messages += ctx.records_to_messages(
                    records, type=name, logger=name,
                    hostname=peer if self.cfg.set_hostname else None)
        if messages:
            ctx.stats.messages_in += len(messages)
            await ctx.deliver(messages, nbytes=nbytes)

    async def run(self, ctx: InputContext) -> None:
        self._ctx = ctx
        sp = framing_splitter(ctx, self.signers)
        seen = [0, 0, 0, 0]
        sock = self._open()
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._readable, sock)
        where = self.host if self.cfg.net == "unixgram" else f"{self.host}:{self.bound_port}"
        ctx.log.info("listening on %s (%s)", where, self.cfg.net)
        self.listening.set()
        stop = asyncio.ensure_future(ctx.stopping.wait())
        try:
            while not stop.done():
                if self._queue:
                    await self._deliver_queued(ctx, sp, seen)
                    continue
                self._arrived.clear()
                arrived = asyncio.ensure_future(self._arrived.wait())
                await asyncio.wait((arrived, stop), return_when=asyncio.FIRST_COMPLETED)
                arrived.cancel()
            loop.remove_reader(sock.fileno())
            sock.close()
            while self._queue:  # what arrived before the socket closed
                await self._deliver_queued(ctx, sp, seen)
        finally:
            stop.cancel()
            if sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
                sock.close()
            self.listening.clear()
            if self.cfg.net == "unixgram":
                with contextlib.suppress(OSError):
                    os.unlink(self.host)
