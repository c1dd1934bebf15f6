"""TcpInput: Heka's stream listener (docs/compatibility.md, "Heka stream framing",
"Inputs"). By default each connection
carries Heka stream frames (HekaFramingSplitter) of protobuf messages (ProtobufDecoder),
as a TcpOutput of hekad or hekapy sends them.

Each connection gets its own splitter (it keeps that stream's incomplete frame).
Garbage between frames is skipped (the splitter resynchronises on the next 0x1E), a
frame over `[hekad] max_message_size` is skipped, a signed frame whose HMAC does not
check out (unknown signer, wrong key, wrong digest) is dropped: each is counted
(`losses.bad_hmac`, `.oversize`, `.garbage_bytes` on the plugin; dropped records in
the input's `dropped` counter) and logged, rate limited. Signer keys are Heka's: subsections
`[<splitter>.signer.<name>_<version>]` with `hmac_key` on a HekaFramingSplitter
section, or, as Heka 0.9 wrote them, `[<input>.signer.<name>_<version>]` on the input.

Backpressure: a connection is not read while its records wait for room in the
pipeline, so a slow output fills the sender's TCP window instead of memory.

Stopping: hekapy stops accepting, half-closes every connection (a FIN towards the
sender) and keeps reading each one until the sender closes its side, for at most
`drain_timeout`. A hekapy TcpOutput takes the FIN as "finish and reconnect later": it
stops writing, and everything it wrote before its own FIN is read and delivered here.
A sender that ignores the FIN (hekad) is cut off after `drain_timeout`.

Keys (Heka's): address (required: "host:port", ":port", or a socket path with
net = "unix"), net ("tcp" | "tcp4" | "tcp6" | "unix"), use_tls (false), tls (table,
collector/net/tls.py: cert_file, key_file, client_auth, client_cafile, ...), keep_alive
(false), keep_alive_period (7200 s), splitter ("HekaFramingSplitter"), decoder
("ProtobufDecoder"), signer (legacy, see above). hekapy's: max_connections (0 = no
limit; connections over it are closed at once and counted), drain_timeout ("2s").
Raw mode (another splitter/decoder): Type and Logger = the input's name, Hostname = the
peer's "ip:port".

    [tcp_in]
    type = "TcpInput"
    address = "0.0.0.0:5565"
    splitter = "signed_framing"

    [signed_framing]
    type = "HekaFramingSplitter"
    [signed_framing.signer.collector_1]
    hmac_key = "an example key: use a long random one"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.framing import check_signers
from hekapy.collector.engine.plugin import Input, Option, OptionError, register
from hekapy.collector.net.tcp import (
    NET_ERRORS,
    NETS,
    READ_SIZE,
    SplitterLosses,
    framing_splitter,
    half_close,
    net_family,
    peer_name,
    set_keep_alive,
    split_host_port,
)
from hekapy.collector.net.tls import server_ssl_context, tls_settings


@register
class TcpInput(Input):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "address": Option("str", None, required=True),
        "net": Option("str", "tcp", choices=NETS),
        "use_tls": Option("bool", False),
        "tls": Option("table", {}),
        "keep_alive": Option("bool", False),
        "keep_alive_period": Option("int", 7200, doc="seconds"),
        "signer": Option("table", {}, check=check_signers,
                         doc="legacy [X.signer.<name>_<version>] tables with hmac_key"),
        "max_connections": Option("int", 0, doc="0 = no limit"),
        "drain_timeout": Option("duration", "2s",
                                doc="how long a stop waits for senders to close"),
    }
    defaults: ClassVar[dict[str, Any]] = {"splitter": "HekaFramingSplitter",
                                          "decoder": "ProtobufDecoder"}

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if cfg.net == "unix":
            if not cfg.address:
                raise OptionError("net = \"unix\" needs a socket path", key="address")
            self.host, self.port = cfg.address, 0
        else:
            self.host, self.port = split_host_port(cfg.address)
        self.tls = tls_settings(cfg.tls) if cfg.use_tls else None
        if self.tls is not None and not self.tls.cert_file:
            raise OptionError("use_tls needs tls.cert_file and tls.key_file",
                              key="tls.cert_file")
        if cfg.max_connections < 0:
            raise OptionError("must be 0 (no limit) or more", key="max_connections")
        self.signers: dict[str, str] = dict(cfg.signer or {})
        self.bound_port: int | None = None  # the port actually bound (address ":0")
        self.listening = asyncio.Event()  # set once the socket accepts connections
        # Counters over every connection (also in the input's stats: dropped, errors).
        self.connections = 0
        self.refused = 0
        self.losses = SplitterLosses()
        self._open: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._closing = False

    # --- one connection ---------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     ctx: InputContext) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = peer_name(writer) or self.host
        limit = self.cfg.max_connections
        if self._closing or (limit and len(self._open) >= limit):
            if not self._closing:
                self.refused += 1
                ctx.stats.errors += 1
                ctx.limited_log(logging.WARNING, "refused a connection from %s: "
                                "max_connections (%d) reached", peer, limit)
            writer.transport.abort()
            return
        self._open[task] = writer
        self.connections += 1
        if self.cfg.keep_alive:
            set_keep_alive(writer.transport, self.cfg.keep_alive_period)
        sp = framing_splitter(ctx, self.signers)
        seen = [0, 0, 0, 0]
        name = self.name
        ctx.log.debug("connection from %s", peer)
        try:
            while True:
                try:
                    data = await reader.read(READ_SIZE)
                except NET_ERRORS as e:
                    ctx.log.debug("connection from %s ended: %s: %s", peer,
                                  type(e).__name__, e)
                    break
                if not data:
                    break
                records = sp.split(data)
                self.losses.report(ctx, sp, seen, peer)
                if records:
                    # Not reading while this waits: the backpressure reaches the sender.
                    await ctx.deliver_records(records, type=name, logger=name,
                                              hostname=peer, nbytes=len(data))
            records = sp.flush()
            if records:
                await ctx.deliver_records(records, type=name, logger=name, hostname=peer)
        finally:
            self._open.pop(task, None)
            writer.transport.abort()  # everything was read: nothing is reset unread

    # --- the listener -----------------------------------------------------------------
    async def _listen(self, ctx: InputContext) -> asyncio.AbstractServer:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                             ) -> None:
            await self._serve(reader, writer, ctx)

        ssl_context = server_ssl_context(self.tls) if self.tls is not None else None
        if self.cfg.net == "unix":
            path = self.host
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.unlink(path)  # left by a previous run
            server = await asyncio.start_unix_server(on_connect, path, ssl=ssl_context,
                                                     limit=READ_SIZE)
            where = path
        else:
            server = await asyncio.start_server(
                on_connect, self.host, self.port, ssl=ssl_context, limit=READ_SIZE,
                family=net_family(self.cfg.net), reuse_address=True)
            self.bound_port = server.sockets[0].getsockname()[1]
            where = f"{self.host}:{self.bound_port}"
        ctx.log.info("listening on %s%s", where, " (TLS)" if ssl_context else "")
        return server

    async def run(self, ctx: InputContext) -> None:
        self._closing = False
        server = await self._listen(ctx)
        self.listening.set()
        try:
            await ctx.stopping.wait()
            self._closing = True
            server.close()
            # Tell every sender to finish; read what they sent before they close.
            for writer in list(self._open.values()):
                half_close(writer.transport)
            tasks = list(self._open)
            if tasks:
                _done, late = await asyncio.wait(tasks, timeout=self.cfg.drain_timeout)
                for task in late:
                    late_writer = self._open.get(task)
                    if late_writer is not None:
                        ctx.log.warning("%s did not close within drain_timeout; cutting "
                                        "it off", peer_name(late_writer))
                        late_writer.transport.abort()  # its read ends, what it read is delivered
                if late:
                    await asyncio.wait(late)
        finally:
            self._closing = True
            server.close()
            for task, writer in list(self._open.items()):
                writer.transport.abort()
                task.cancel()
            self.listening.clear()
            if self.cfg.net == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(self.host)
