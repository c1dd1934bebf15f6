"""HttpOutput against a small aiohttp server in the test: one request per message,
503 retried until a 200, a 400 dead-lettered, basic auth and headers without the
password in logs or files, a server that starts late, several messages per request,
GET without a body, https with a private CA, no secret in `hekapy check`."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.collectors import HEKAPY
from tests.helpers.plugins import config_from
from tests.helpers.wait import wait_for
from tests.services import free_port, make_certificates

SECRET = "s3cr3t-hunter2"


class Server:
    """Records every request; answers from `script` (a list of statuses consumed one
    per request, then 200), 400 for a body containing "reject"."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[dict] = []
        self.stored: list[bytes] = []
        self.changed = asyncio.Event()
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.path_qs,
                              "headers": dict(request.headers), "body": body})
        self.changed.set()
        if self.script:
            status = self.script.pop(0)
            return web.Response(status=status, text=f"scripted {status}")
        if b"reject" in body:
            return web.json_response({"error": "bad document"}, status=400)
        self.stored.append(body)
        return web.Response(status=201, text="ok")

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port,
                          ssl_context=ssl_context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait(self, predicate, what: str, timeout: float = 30) -> None:
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


def config(tmp_path: Path, port: int, lines: list[str], output: str) -> str:
    path = tmp_path / "in.log"
    path.write_text("".join(f"{line}\n" for line in lines))
    return f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [logs]
        type = "LogstreamerInput"
        log_directory = "{tmp_path}"
        file_match = 'in\\.log'
        [PayloadEncoder]
        append_newlines = false
        [http_out]
        type = "HttpOutput"
        message_matcher = "Type == 'logfile'"
        address = "http://127.0.0.1:{port}/ingest?src=hekapy"
        encoder = "PayloadEncoder"
        retry_delay = "10ms"
        retry_max_delay = "50ms"
        dead_letter_file = "{tmp_path / 'dead.ndjson'}"
        {output}
    """


async def run_until(tmp_path: Path, text: str, done, what: str) -> Pipeline:
    p = Pipeline(config_from(tmp_path, text))
    await p.start()
    try:
        await wait_for(done, what, timeout=120)
        logs = p.inputs[0][0]
        await wait_for(lambda: p.inputs[0][1].tracker.in_flight == 0, "acks", timeout=120)
        assert logs is not None
    finally:
        await p.stop()
    return p


async def test_503_is_retried_400_is_dead_lettered(tmp_path, caplog):
    server = Server(script=[503, 503])
    await server.start()
    lines = ["first", "second", "please reject me", "fourth"]
    try:
        p = await run_until(tmp_path, config(tmp_path, server.port, lines, f"""
            username = "hekapy"
            password = "{SECRET}"
            [http_out.headers]
            Content-Type = "text/plain"
            X-Tags = ["a", "b"]
        """), lambda: len(server.stored) == 3, "three stored messages")
    finally:
        await server.stop()
    assert [b.decode() for b in server.stored] == ["first\n", "second\n", "fourth\n"]
    # One request per message: 2 x 503 and the retry for "first", then one each.
    assert [r["body"] for r in server.requests] == [
        b"first\n", b"first\n", b"first\n", b"second\n", b"please reject me\n", b"fourth\n"]
    r = server.requests[0]
    assert r["method"] == "POST" and r["path"] == "/ingest?src=hekapy"
    assert r["headers"]["Authorization"] == "Basic " + base64.b64encode(
        f"hekapy:{SECRET}".encode()).decode()
    assert r["headers"]["Content-Type"] == "text/plain"
    assert r["headers"]["X-Tags"] == "a, b"
    stats = p.outputs[0][1].stats
    assert (stats.messages_out, stats.dead_lettered, stats.retried) == (3, 1, 2)
    dead = [orjson.loads(line) for line in (tmp_path / "dead.ndjson").read_bytes().splitlines()]
    assert len(dead) == 1
    d = dead[0]
    assert d["status"] == 400 and d["error"] == "bad document"
    assert d["source"] == "please reject me\n" and d["output"] == "http_out"
    assert d["action"] == {"method": "POST",
                           "url": f"http://127.0.0.1:{server.port}/ingest?src=hekapy"}
    assert "answered 503" in caplog.text and "refused" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in (tmp_path / "dead.ndjson").read_text()


async def test_a_server_that_starts_late_and_credentials_in_the_url(tmp_path, caplog):
    """Connection refused is retried with backoff until the server listens; the
    password in the URL is sent as basic auth and never logged."""
    server = Server()
    text = config(tmp_path, server.port, ["one", "two"], "")
    text = text.replace("http://127.0.0.1", f"http://ops:{SECRET}@127.0.0.1")
    p = Pipeline(config_from(tmp_path, text))
    await p.start()
    try:
        await wait_for(lambda: p.outputs[0][1].stats.retried >= 2, "refused attempts", timeout=120)
        await server.start()
        await server.wait(lambda: len(server.stored) == 2, "both messages")
    finally:
        await p.stop()
        await server.stop()
    assert server.stored == [b"one\n", b"two\n"]
    assert server.requests[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(
        f"ops:{SECRET}".encode()).decode()
    assert "Connect" in caplog.text  # the refusal was logged ...
    assert SECRET not in caplog.text  # ... without the password


async def test_several_messages_per_request_and_gzip(tmp_path):
    server = Server()
    await server.start()
    lines = [f"doc {i}" for i in range(7)]
    try:
        await run_until(tmp_path, config(tmp_path, server.port, lines, """
            max_per_request = 3
            compression = "gzip"
        """), lambda: len(server.stored) == 3, "three requests")
    finally:
        await server.stop()
    assert [r["headers"]["Content-Encoding"] for r in server.requests] == ["gzip"] * 3
    assert b"".join(server.stored).decode() == "".join(f"{line}\n" for line in lines)
    assert [len(b.splitlines()) for b in server.stored] == [3, 3, 1]


async def test_get_sends_no_body(tmp_path):
    server = Server()
    await server.start()
    try:
        await run_until(tmp_path, config(tmp_path, server.port, ["ping", "pong"], """
            method = "get"
        """), lambda: len(server.requests) == 2, "two requests")
    finally:
        await server.stop()
    assert [(r["method"], r["body"]) for r in server.requests] == [("GET", b""), ("GET", b"")]


async def test_https_with_a_private_ca(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    server = Server()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certs["server_cert"]), str(certs["server_key"]))
    await server.start(ctx)
    text = config(tmp_path, server.port, ["secure"], f"""
        [http_out.tls]
        root_cafile = "{certs['ca']}"
    """).replace("http://127.0.0.1", "https://localhost")
    try:
        await run_until(tmp_path, text, lambda: len(server.stored) == 1, "one request")
    finally:
        await server.stop()
    assert server.stored == [b"secure\n"]


@pytest.mark.services
def test_no_secret_in_check_output(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text(config(tmp_path, 9, ["x"], f'password = "{SECRET}"\nusername = "u"')
                    .replace("http://", f"http://ops:{SECRET}-url@"))
    r = subprocess.run([*HEKAPY, "check", "-c",
                        str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "http_out (HttpOutput)" in r.stdout
    assert SECRET not in r.stdout + r.stderr
