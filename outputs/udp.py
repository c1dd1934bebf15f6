"""UdpOutput: one datagram per encoded message (docs/compatibility.md, "Outputs").

With `use_framing = true` each datagram is one Heka frame, for a UdpInput with
`splitter = "HekaFramingSplitter"` and `decoder = "ProtobufDecoder"` (Heka-to-Heka
over UDP); otherwise the encoder's bytes as they are (a syslog or statsd line). A
message whose datagram would be over `max_message_size` is dropped and counted
(`dropped`), never cut. UDP is at most once: a batch is acknowledged once its
datagrams are handed to the kernel, and a receiver that is down loses them (the
kernel's "connection refused" reports are counted as errors and logged).

Keys (Heka's): address (required: "host:port", or a socket path with net =
"unixgram"), net ("udp" | "udp4" | "udp6" | "unixgram"), local_address ("host:port"
to send from), max_message_size (65507 bytes, the largest UDP payload over IPv4),
encoder (required), use_framing (false). hekapy's: signer (a `[X.signer]` table with
name, hmac_key, version, hmac_hash, as for TcpOutput; implies framing).

    [statsd_out]
    type = "UdpOutput"
    message_matcher = "Type == 'heka.statmetric'"
    address = "127.0.0.1:8125"
    encoder = "PayloadEncoder"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.framing import check_output_signer
from hekapy.collector.engine.plugin import Option, OptionError, Output, register
from hekapy.collector.engine.protobuf import frame
from hekapy.collector.engine.retry import Backoff
from hekapy.collector.net.tcp import net_family, split_host_port

MAX_DATAGRAM = 65507


class _Sender(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpOutput) -> None:
        self.owner = owner
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def error_received(self, exc: Exception) -> None:
        self.owner._error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()


@register
class UdpOutput(Output):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "address": Option("str", None, required=True),
        "net": Option("str", "udp", choices=("udp", "udp4", "udp6", "unixgram")),
        "local_address": Option("str", ""),
        "max_message_size": Option("int", MAX_DATAGRAM, doc="bytes per datagram"),
        "signer": Option("table", {}, check=check_output_signer,
                         doc="hekapy: name, hmac_key, version, hmac_hash"),
        "retry_delay": Option("duration", "250ms"),
        "retry_max_delay": Option("duration", "30s"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if not cfg.encoder:
            raise OptionError("UdpOutput needs an encoder", key="encoder")
        if cfg.net == "unixgram":
            self.host, self.port = cfg.address, 0
        else:
            self.host, self.port = split_host_port(cfg.address, default_host="localhost")
        if not 1 <= cfg.max_message_size <= MAX_DATAGRAM:
            raise OptionError(f"must be between 1 and {MAX_DATAGRAM}", key="max_message_size")
        self.local_addr = (split_host_port(cfg.local_address, "local_address")
                           if cfg.local_address else None)
        if cfg.signer and cfg.use_framing is False:
            raise OptionError("signing needs use_framing = true", key="signer")
        self.where = self.host if cfg.net == "unixgram" else f"{self.host}:{self.port}"
        self.oversize = 0  # messages dropped for max_message_size
        self._ctx: OutputContext | None = None

    def _error(self, exc: Exception) -> None:
        if self._ctx is not None:
            self._ctx.stats.errors += 1
            self._ctx.limited_log(logging.WARNING, "sending to %s: %s: %s", self.where,
                                  type(exc).__name__, exc)

    async def _open(self, ctx: OutputContext) -> tuple[asyncio.DatagramTransport, _Sender]:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.cfg.retry_delay, self.cfg.retry_max_delay,
                          self.cfg.retry_delay)
        while True:
            try:
                if self.cfg.net == "unixgram":
                    transport, proto = await loop.create_datagram_endpoint(
                        lambda: _Sender(self), remote_addr=self.host, family=socket.AF_UNIX)
                else:
                    transport, proto = await loop.create_datagram_endpoint(
                        lambda: _Sender(self), remote_addr=(self.host, self.port),
                        local_addr=self.local_addr, family=net_family(self.cfg.net))
                return transport, proto
            except OSError as e:
                if ctx.stopping.is_set():
                    raise
                delay = backoff.next_delay()
                ctx.limited_log(logging.WARNING, "cannot send to %s: %s: %s; retrying in "
                                "%.2f s", self.where, type(e).__name__, e, delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(ctx.stopping.wait(), delay)

    async def run(self, ctx: OutputContext) -> None:
        self._ctx = ctx
        cfg = self.cfg
        framing = bool(cfg.use_framing) or bool(cfg.signer)
        wrap = None
        if framing:
            s = cfg.signer
            signer = (s["name"], s["hmac_key"], s["version"]) if s else None
            hmac_hash = s["hmac_hash"] if s else "md5"
            limit = ctx.hekad.max_message_size

            def wrap(data: bytes) -> bytes:
                return frame(data, signer, hmac_hash=hmac_hash, max_message_size=limit)
        try:
            transport, proto = await self._open(ctx)
        except OSError as e:
            ctx.log.warning("stopping before %s was reachable: %s", self.where, e)
            return
        limit = cfg.max_message_size
        try:
            while (batch := await ctx.next_batch()) is not None:
                sent = 0
                for data in ctx.encode_messages(batch.messages, wrap):
                    if len(data) > limit:
                        self.oversize += 1
                        ctx.stats.dropped += 1
                        ctx.limited_log(logging.WARNING, "dropped a message of %d bytes: "
                                        "over max_message_size (%d)", len(data), limit)
                        continue
                    if not proto.writable.is_set():
                        await proto.writable.wait()
                    if transport.is_closing():
                        raise ConnectionError(f"the socket to {self.where} closed")
                    transport.sendto(data)
                    sent += 1
                ctx.stats.messages_out += sent
                batch.done()
                # Let the rest of the process run between batches (a local receiver
                # reads its socket before the kernel's buffer overflows).
                await asyncio.sleep(0)
        finally:
            transport.close()
