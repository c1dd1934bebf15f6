"""HttpListenInput: an HTTP server whose request bodies become messages
(docs/compatibility.md, "Inputs"), e.g. collectd's write_http JSON for the CollectdDecoder, as LMA's
metric_collector listened on 127.0.0.1:8325.

Each request body goes through the splitter (NullSplitter: the body is one record) and
the decoder. Messages: Type `heka.httpdata.request`, Severity 6, EnvVersion "1", Pid and
Hostname of hekapy, Payload = the record, STRING fields Protocol, UserAgent,
ContentType, Path, Host, RemoteAddr, one per listed `request_headers` header and one
per query parameter (all its values).

The response is sent once the messages are in the pipeline's bounded queues: while the
pipeline is full, requests wait (the sender feels the backpressure, collectd keeps its
own queue) rather than being accepted and lost. 200 when delivered, 401 for failed
authentication, 413 for a body over `max_body_size` or a record over
max_message_size, 503 while hekapy stops.

Keys: address ("127.0.0.1:8325"), headers (response headers: table of name → string or
list), request_headers ([]), auth_type ("", "Basic" or "API"), username, password,
api_key (compared with the X-API-KEY header), use_tls, tls (cert_file, key_file,
client_auth, client_cafile), max_body_size (8 MiB).

    [collectd_httplisten]
    type = "HttpListenInput"
    address = "127.0.0.1:8325"
    decoder = "collectd_decoder"
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
from typing import Any, ClassVar

from aiohttp import web

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import Input, Option, OptionError, register
from hekapy.collector.net.tls import server_ssl_context, tls_settings


def split_address(address: str) -> tuple[str, int]:
    """"host:port", "[::1]:port" or ":port" (all interfaces, as Go reads it)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise OptionError(f"expected host:port, got {address!r}", key="address")
    host = host.strip("[]")
    return host or "0.0.0.0", int(port)


def _response_headers(table: dict) -> dict[str, str]:
    out = {}
    for name, value in table.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise OptionError(f"header {name!r}: expected a string or strings", key="headers")
        out[name] = ", ".join(values)
    return out


@register
class HttpListenInput(Input):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "address": Option("str", "127.0.0.1:8325"),
        "headers": Option("table", {}, doc="response headers"),
        "request_headers": Option("strlist", [], doc="request headers copied to fields"),
        "auth_type": Option("str", "", choices=("", "Basic", "API")),
        "username": Option("str", ""),
        "password": Option("str", ""),
        "api_key": Option("str", ""),
        "use_tls": Option("bool", False),
        "tls": Option("table", {}),
        "max_body_size": Option("int", 8 << 20, doc="bytes"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.host, self.port = split_address(cfg.address)
        self.response_headers = _response_headers(cfg.headers)
        if cfg.auth_type == "Basic" and not (cfg.username and cfg.password):
            raise OptionError("auth_type = \"Basic\" needs username and password",
                              key="username")
        if cfg.auth_type == "API" and not cfg.api_key:
            raise OptionError("auth_type = \"API\" needs api_key", key="api_key")
        self.tls = tls_settings(cfg.tls) if cfg.use_tls else None
        if self.tls is not None and not self.tls.cert_file:
            raise OptionError("use_tls needs tls.cert_file and tls.key_file",
                              key="tls.cert_file")
        expected = f"{cfg.username}:{cfg.password}".encode()
        self._basic = b"Basic " + base64.b64encode(expected)
        self.bound_port: int | None = None  # the port actually bound (address ":0")
        self.listening = asyncio.Event()  # set once the socket accepts connections

    def authorized(self, request: web.Request) -> bool:
        kind = self.cfg.auth_type
        if kind == "Basic":
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            try:
                scheme, _, token = given.partition(b" ")
                if scheme.lower() != b"basic":
                    return False
                given = b"Basic " + base64.b64encode(base64.b64decode(token, validate=True))
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(given, self._basic)
        if kind == "API":
            given = request.headers.get("X-API-KEY", "").encode("utf-8", "replace")
            return hmac.compare_digest(given, self.cfg.api_key.encode())
        return True

    def request_fields(self, request: web.Request) -> list[Field]:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
        fields = [Field("Protocol", [f"HTTP/{request.version.major}.{request.version.minor}"],
                        STRING),
                  Field("UserAgent", [request.headers.get("User-Agent", "")], STRING),
                  Field("ContentType", [request.headers.get("Content-Type", "")], STRING),
                  Field("Path", [request.path], STRING),
                  Field("Host", [request.host], STRING),
                  Field("RemoteAddr", [remote], STRING)]
        for name in self.cfg.request_headers:
            if name in request.headers:
                fields.append(Field(name, request.headers.getall(name), STRING))
        for key in request.query.keys():
            if not any(f.name == key for f in fields):
                fields.append(Field(key, request.query.getall(key), STRING))
        return fields

    async def handle(self, request: web.Request, ctx: InputContext) -> web.StreamResponse:
        headers = self.response_headers
        if ctx.stopping.is_set():
            return web.Response(status=503, text="stopping\n", headers=headers)
        if not self.authorized(request):
            ctx.stats.errors += 1
            ctx.limited_log(logging.WARNING, "refused a request from %s: %s authentication "
                            "failed", request.remote, self.cfg.auth_type)
            extra = ({"WWW-Authenticate": 'Basic realm="hekapy"'}
                     if self.cfg.auth_type == "Basic" else {})
            return web.Response(status=401, text="unauthorized\n",
                                headers={**headers, **extra})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            ctx.stats.errors += 1
            ctx.limited_log(logging.WARNING, "refused a body over max_body_size (%d bytes) "
                            "from %s", self.cfg.max_body_size, request.remote)
            return web.Response(status=413, text="body too large\n", headers=headers)
        splitter = ctx.new_splitter()
        records = splitter.split(body) + splitter.flush()
        dropped = getattr(splitter, "dropped", 0)
        if dropped:
            ctx.stats.errors += dropped
            ctx.limited_log(logging.WARNING, "dropped %d record(s) over max_message_size "
                            "from %s", dropped, request.remote)
            if not records:
                return web.Response(status=413, text="record too large\n", headers=headers)
        if records:
            fields = self.request_fields(request)
            pid = os.getpid()
            messages = []
            for r in records:
                m = Message(type="heka.httpdata.request", severity=6, env_version="1",
                            pid=pid, hostname=ctx.hostname,
                            payload=r.decode("utf-8", "replace"), fields=list(fields))
                if ctx.use_message_bytes:
                    m.raw = r
                messages.append(m)
            ctx.stats.messages_in += len(messages)
            await ctx.deliver(messages, nbytes=len(body))
        return web.Response(status=200, headers=headers)

    async def run(self, ctx: InputContext) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, ctx)

        app = web.Application(client_max_size=self.cfg.max_body_size)
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            ssl_context = server_ssl_context(self.tls) if self.tls is not None else None
            site = web.TCPSite(runner, self.host, self.port, ssl_context=ssl_context,
                               reuse_address=True)
            await site.start()
            self.bound_port = runner.addresses[0][1] if runner.addresses else self.port
            ctx.log.info("listening on %s:%d%s", self.host, self.bound_port,
                         " (TLS)" if ssl_context else "")
            self.listening.set()
            await ctx.stopping.wait()
        finally:
            # Stops accepting, lets requests in progress finish (their messages are
            # delivered before the pipeline drains), then closes.
            await runner.cleanup()
