"""TCP (and Unix socket) connection code that TcpInput, UdpInput, TcpOutput and UdpOutput
share: Go's address forms, keep-alive, half-close, peer names, and the accounting of
what one stream's splitter threw away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.plugin import OptionError, Splitter

READ_SIZE = 256 << 10
NETS = ("tcp", "tcp4", "tcp6", "unix")
NET_ERRORS = (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError)


def split_host_port(address: str, key: str = "address", default_host: str = "0.0.0.0"
                    ) -> tuple[str, int]:
    """"host:port", "[::1]:port" or ":port" (Go's form; an empty host means every
    interface when listening)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise OptionError(f"expected host:port, got {address!r}", key=key)
    host = host.strip("[]")
    return host or default_host, int(port)


def net_family(net: str) -> int:
    """The address family Go's `net` names ask for (0: any)."""
    return {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6, "udp4": socket.AF_INET,
            "udp6": socket.AF_INET6}.get(net, 0)


def set_keep_alive(transport: asyncio.BaseTransport, period: int) -> None:
    """TCP keep-alive probes after `period` idle seconds (Heka's keep_alive_period)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, period))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, min(period, 75)))


def half_close(transport: asyncio.WriteTransport) -> None:
    """Send a FIN but keep reading. A TLS transport cannot write an EOF of its own, so
    the socket underneath is shut down for writing (the peer's TLS layer sees the end
    of the stream; this side still reads and decrypts what comes in)."""
    try:
        if transport.can_write_eof():
            transport.write_eof()
            return
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        # A duplicate descriptor: the event loop's socket object may refuse shutdown().
        dup = socket.socket(fileno=os.dup(sock.fileno()))
        try:
            dup.shutdown(socket.SHUT_WR)
        finally:
            dup.close()
    except (OSError, RuntimeError, AttributeError):
        pass  # already closed: nothing to announce


def peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = peer[0]
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer or "")


class SplitterLosses:
    """What an input's splitters threw away, over all its streams: frames failing
    authentication, frames or records over the size limit, garbage bytes between
    frames. `report` adds what one stream's splitter threw away since its last look to
    these counters and to the input's `dropped`, and logs it (rate limited)."""

    def __init__(self) -> None:
        self.bad_hmac = 0
        self.oversize = 0
        self.garbage_bytes = 0

    def report(self, ctx: InputContext, sp: Splitter, seen: list[int], peer: str) -> None:
        """`seen` is the stream's own [bad_hmac, oversize, skipped, dropped] so far."""
        st = getattr(sp, "stats", None)  # a HekaFramingSplitter's FrameStats
        if st is not None:
            bad, over, skipped = st.bad_hmac, st.oversize, st.skipped_bytes
            if bad != seen[0]:
                self.bad_hmac += bad - seen[0]
                ctx.limited_log(logging.WARNING, "dropped %d frame(s) from %s: unknown "
                                "signer or bad HMAC", bad - seen[0], peer)
            if over != seen[1]:
                self.oversize += over - seen[1]
                ctx.limited_log(logging.WARNING, "skipped %d frame(s) from %s over "
                                "max_message_size (%d bytes)", over - seen[1], peer,
                                ctx.hekad.max_message_size)
            if skipped != seen[2]:
                self.garbage_bytes += skipped - seen[2]
                ctx.limited_log(logging.WARNING, "skipped %d byte(s) from %s that are not "
                                "Heka frames", skipped - seen[2], peer)
            seen[0], seen[1], seen[2] = bad, over, skipped
        dropped = getattr(sp, "dropped", 0) + getattr(sp, "truncated", 0)
        if dropped != seen[3]:
            ctx.stats.dropped += dropped - seen[3]
            if st is None:
                self.oversize += dropped - seen[3]
                ctx.limited_log(logging.WARNING, "%d record(s) from %s over the record "
                                "size limit", dropped - seen[3], peer)
            seen[3] = dropped


def framing_splitter(ctx: InputContext, signers: dict[str, str]) -> Splitter:
    """A new splitter for one stream, with the input's legacy signer keys added."""
    sp = ctx.new_splitter()
    if signers:
        if not sp.add_signers(signers):
            ctx.limited_log(logging.WARNING, "signer keys need a HekaFramingSplitter; "
                            "%s ignores them", type(sp).__name__)
    return sp
