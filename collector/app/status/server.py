"""The aiohttp app over one pipeline: basic auth, the endpoints, and the tap stream.

`GET /tap?match=EXPR&plugin=NAME&buffer=N` attaches a `TapViewer` (collector/engine/tap.py)
and streams its queue as NDJSON until the viewer leaves or the collector stops:

    {"tap": {"match": "...", "plugin": "...", "buffer": 1000}}     first line: attached
    {"message": {...Heka JSON, as JsonEncoder writes it...}}      one per message
    {"dropped": 12, "unexamined": 3400}                           totals, when they grow
    {"end": "the collector is stopping"}                          last line
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from hekapy.collector.app.status.metrics import render_metrics
from hekapy.collector.app.status.snapshot import Snapshot
from hekapy.collector.engine.config import Config, split_host_port
from hekapy.collector.engine.heka_report import render_all_report
from hekapy.collector.engine.matcher import MatcherSyntaxError, compile_matcher
from hekapy.collector.engine.redact import Redactor
from hekapy.collector.engine.stats import RateLimitedLog
from hekapy.collector.engine.tap import DEFAULT_BUFFER, MAX_BUFFER, TapRegistry, TapViewer

if TYPE_CHECKING:
    from hekapy.collector.engine.pipeline import Pipeline

log = logging.getLogger("hekapy.status")

TAP_CHUNK = 500  # messages serialized per write


def _credentials(request: web.Request) -> bytes:
    """The user:password of a Basic Authorization header (b"" if none or malformed)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


class StatusServer:
    """The aiohttp app over one pipeline. `start()` binds (or logs why it cannot);
    `stop()` ends every tap stream and closes the socket."""

    def __init__(self, pipeline: Pipeline, config: Config) -> None:
        h = pipeline.hekad
        self.pipeline = pipeline
        self.address: str = h.status_address
        self.redactor = Redactor(config)
        self.tap = TapRegistry(pipeline.router)
        self.snapshot = Snapshot(pipeline, self.tap)
        self._auth = (f"{h.status_username}:{h.status_password}".encode()
                      if h.status_username else None)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._limited_log = RateLimitedLog(log)
        self.bound: tuple[str, int] | None = None
        self.listening = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/", self._index)
        r.add_get("/metrics", self._metrics)
        r.add_get("/health", self._health)
        r.add_get("/stats", self._stats)
        r.add_get("/heka.all-report", self._all_report)
        r.add_get("/heka/all-report.json", self._all_report)
        r.add_get("/data/heka_report.json", self._all_report)  # where Heka's dashboard had it
        r.add_get("/tap", self._tap)
        return app

    async def start(self) -> bool:
        """Bind and serve; False (logged) when the address cannot be bound."""
        if not self.address:
            return False
        host, port = split_host_port(self.address)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            log.error("status server: cannot listen on %s (%s); running without it",
                      self.address, e.strerror or e)
            await self._runner.cleanup()
            self._runner = None
            return False
        # The bound address, not the configured one: port 0 picks a free port.
        addresses = self._runner.addresses
        name = addresses[0] if addresses else (host, port)
        self.bound = (name[0], name[1])
        shown = f"[{name[0]}]" if ":" in name[0] else name[0]  # an IPv6 address
        log.info("status server on http://%s:%d (/metrics, /health, /heka.all-report, "
                 "/stats, /tap)%s", shown, name[1],
                 "; basic auth required" if self._auth else "")
        self.listening.set()
        return True

    async def stop(self) -> None:
        self._closing.set()
        for v in list(self.tap.viewers):
            v.wake.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- plumbing ----------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._auth is not None:
            if not hmac.compare_digest(_credentials(request), self._auth):
                self._limited_log(logging.WARNING, "status server: refused %s %s from %s: "
                                  "authentication failed", request.method, request.path,
                                  request.remote)
                return web.Response(status=401, text="unauthorized\n",
                                    headers={"WWW-Authenticate": 'Basic realm="hekapy"'})
        return await handler(request)

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        body = orjson.dumps(self.redactor.mask_obj(obj), option=orjson.OPT_INDENT_2) + b"\n"
        return web.Response(body=body, status=status, content_type="application/json")

    # --- endpoints ---------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="hekapy status server\n/metrics  Prometheus text\n"
                            "/health   ok | degraded | failing\n"
                            "/heka.all-report  Heka's all-report JSON\n"
                            "/stats    JSON snapshot (hekapy top)\n"
                            "/tap?match=EXPR&plugin=NAME&buffer=N  live NDJSON messages\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        text = render_metrics(self._snapshot())
        return web.Response(text=text, content_type="text/plain",
                            headers={"X-Content-Type": "version=0.0.4"}, charset="utf-8")

    async def _health(self, request: web.Request) -> web.Response:
        h = self.snapshot.health()
        return self._json(h, 503 if h["status"] == "failing" else 200)

    def _snapshot(self) -> dict[str, Any]:
        """The pipeline's state with every string masked (names, paths, reasons)."""
        return self.redactor.mask_obj(self.snapshot.collect())

    async def _stats(self, request: web.Request) -> web.Response:
        return self._json(self._snapshot())

    async def _all_report(self, request: web.Request) -> web.Response:
        return self._json(render_all_report(self._snapshot()))

    async def _tap(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        match = q.get("match", "TRUE") or "TRUE"
        try:
            pred = compile_matcher(match)
        except MatcherSyntaxError as e:
            return web.Response(status=400, text=self.redactor.mask(f"match: {e}\n"))
        try:
            capacity = min(MAX_BUFFER, max(1, int(q.get("buffer", DEFAULT_BUFFER))))
        except ValueError:
            return web.Response(status=400, text="buffer: expected a number\n")
        plugin = q.get("plugin", "")
        route = None
        if plugin:
            route = next((r for r in self.pipeline.router.routes if r.name == plugin), None)
            if route is None:
                names = ", ".join(r.name for r in self.pipeline.router.routes) or "none"
                return web.Response(status=404, text=f"plugin: no running filter or output "
                                    f"named {plugin!r}; taps are on the queues of: {names}\n")
        if self._closing.is_set() or self.pipeline.stopping.is_set():
            return web.Response(status=503, text="stopping\n")
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "Cache-Control": "no-store"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        viewer = TapViewer(pred, route, capacity)
        self.tap.attach(viewer)
        log.info("tap viewer attached from %s (match %r%s)", request.remote,
                 self.redactor.mask(match), f", plugin {plugin!r}" if plugin else "")
        mask = self.redactor.mask_obj
        end = "the collector is stopping"
        try:
            await resp.write(orjson.dumps(mask({"tap": {"match": match, "plugin": plugin,
                                                        "buffer": capacity}})) + b"\n")
            reported = (0, 0)
            while True:
                if not viewer.queue:
                    if self._closing.is_set() or self.pipeline.stopping.is_set():
                        break
                    viewer.wake.clear()
                    try:
                        await asyncio.wait_for(viewer.wake.wait(), 1.0)
                    except TimeoutError:
                        pass
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        end = ""
                        break
                parts = []
                drops = (viewer.dropped, viewer.unexamined)
                if drops != reported:
                    parts.append(orjson.dumps({"dropped": drops[0],
                                               "unexamined": drops[1]}) + b"\n")
                    reported = drops
                msgs = viewer.take(TAP_CHUNK)
                for m in msgs:
                    parts.append(orjson.dumps({"message": mask(m.as_dict())}) + b"\n")
                if parts:
                    await resp.write(b"".join(parts))
            if end:
                await resp.write(orjson.dumps({"end": end}) + b"\n")
                await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the viewer went away
        finally:
            self.tap.detach(viewer)
            log.info("tap viewer from %s detached (%d messages shown, %d dropped, %d not "
                     "examined)", request.remote, viewer.delivered, viewer.dropped,
                     viewer.unexamined)
        return resp
