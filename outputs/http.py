"""HttpOutput: each encoded message is the body of one HTTP request
(docs/compatibility.md, "Outputs"), e.g. JSON to a webhook, a Logstash or Vector http
input, or any HTTP API.

Delivery: a request that gets no answer (connection refused or reset, timeout), or an
answer 408, 429 or 5xx, is sent again with exponential backoff and jitter
(`retry_delay` .. `retry_max_delay`, a Retry-After is honoured), forever: nothing is
dropped while the server is down, and a stop leaves what is not sent unacknowledged
(in the disk buffer with `use_buffering`, or at its input). Any other answer of 400
or more means the server refuses that message for good: it is counted
(`dead_lettered`) and written to the dead-letter file, one JSON line with the
request (method, address without credentials), the status, the server's reply and
the body, as ElasticSearchOutput does (outputs/elasticsearch/deadletter.py); an answer
under 400 means stored. A batch is acknowledged once each of its messages is stored
or dead-lettered. Credentials (username/password, or user:password@ in the address)
go in an Authorization header and never into logs, errors or the dead-letter file;
`headers` values are never logged.

Keys (Heka's): address (required: http:// or https:// URL), method ("POST"; GET, PUT
or POST; GET sends no body), headers (table: name → string or list of strings),
username, password (basic auth when given), http_timeout (0 ms = none), tls (table,
collector/net/tls.py, for https), encoder (required), use_framing (false). hekapy's:
max_per_request (1, as Heka: one request per message; more joins up to that many
encoded messages in one body, for newline-delimited encoders), max_in_flight (1:
requests at once, 1 keeps the order), flush_count / flush_interval / flush_bytes
(how batches are gathered), compression ("none" | "gzip"), retry_delay ("250ms"),
retry_max_delay ("30s"), dead_letter_file (<base_dir>/dead_letter/<name>.ndjson).

    [alerts_webhook]
    type = "HttpOutput"
    message_matcher = "Type == 'heka.sandbox.afd_metric'"
    address = "https://alerts.example.com/api/v1/events"
    method = "POST"
    encoder = "JsonEncoder"
    username = "hekapy"
    password = "%ENV[ALERTS_PASSWORD]"
    http_timeout = 5000
    [alerts_webhook.headers]
    Content-Type = "application/json"
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import os
import time
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any, ClassVar

import aiohttp
import orjson

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.framing import frame_record
from hekapy.collector.engine.plugin import Option, OptionError, register
from hekapy.collector.engine.queue import Batch
from hekapy.collector.net.tls import client_ssl_context, tls_settings
from hekapy.outputs.batching import BatchingOutput, describe
from hekapy.outputs.elasticsearch.client import split_credentials
from hekapy.outputs.elasticsearch.deadletter import DeadLetterFile

RETRY_STATUSES = frozenset({408, 429})


def _check_address(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise OptionError("expected an http:// or https:// URL")
    return value


def _headers(table: dict) -> dict[str, str]:
    out = {}
    for name, value in table.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise OptionError(f"header {name!r}: expected a string or strings")
        out[name] = ", ".join(values)
    return out


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped at 5 min."""
    if not value:
        return None
    try:
        return min(300.0, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        return min(300.0, max(0.0, parsedate_to_datetime(value).timestamp() - time.time()))
    except (TypeError, ValueError):
        return None


class HttpDeadLetterFile(DeadLetterFile):
    """The shared dead-letter file; "action" is the request, "source" the body (JSON
    when it is JSON, text when it is UTF-8, else {"base64": ...})."""

    def __init__(self, path: str | os.PathLike, output: str, method: str, url: str) -> None:
        super().__init__(path, output)
        self.request = {"method": method, "url": url}

    def _split(self, item: bytes) -> tuple[Any, Any]:  # type: ignore[override]
        try:
            source: Any = orjson.loads(item)
        except orjson.JSONDecodeError:
            try:
                source = item.decode("utf-8")
            except UnicodeDecodeError:
                source = {"base64": base64.b64encode(item).decode()}
        return self.request, source


class TransportFailed(Exception):
    """No HTTP answer."""


@register
class HttpOutput(BatchingOutput):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "address": Option("str", None, required=True, check=_check_address),
        "method": Option("str", "POST", check=str.upper,
                         choices=("GET", "PUT", "POST", "get", "put", "post")),
        "headers": Option("table", {}, check=_headers),
        "username": Option("str", ""),
        "password": Option("str", ""),
        "max_per_request": Option("int", 1, doc="encoded messages per request body"),
        "dead_letter_file": Option("str", ""),
    }
    defaults: ClassVar[dict[str, Any]] = {
        "flush_count": 1, "max_in_flight": 1, "http_timeout": 0}
    what = "messages"

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if not cfg.encoder:
            raise OptionError("HttpOutput needs an encoder", key="encoder")
        if cfg.max_per_request < 1:
            raise OptionError("must be at least 1", key="max_per_request")
        self.url, user, password = split_credentials(cfg.address)
        if cfg.username or cfg.password:
            user, password = cfg.username, cfg.password
        self.tls = tls_settings(cfg.tls) if cfg.tls else None
        self.request_headers = dict(cfg.headers)
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.request_headers["Authorization"] = f"Basic {token}"
        if cfg.compression == "gzip" and cfg.method != "GET":
            self.request_headers["Content-Encoding"] = "gzip"
        self._session: aiohttp.ClientSession | None = None

    async def open(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        ssl_context: Any = True
        if self.tls is not None and self.url.startswith("https://"):
            ssl_context = client_ssl_context(self.tls)
        timeout = aiohttp.ClientTimeout(total=cfg.http_timeout or None)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=cfg.max_in_flight, ssl=ssl_context),
            timeout=timeout, headers=self.request_headers)
        path = cfg.dead_letter_file or os.path.join(
            ctx.pipeline.hekad.base_dir, "dead_letter", f"{self.name}.ndjson")
        self.dead_letter = HttpDeadLetterFile(path, self.name, cfg.method, self.url)

    async def close_output(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def encode_batches(self, ctx: OutputContext, batches: list[Batch]) -> list[bytes]:
        wrap = None
        if self.cfg.use_framing:
            limit = ctx.hekad.max_message_size

            def wrap(data: bytes) -> bytes:
                return frame_record(data, limit)
        items: list[bytes] = []
        for b in batches:
            items += ctx.encode_messages(b.messages, wrap)
        return items

    async def _request(self, body: bytes) -> tuple[int, bytes, str | None]:
        assert self._session is not None
        data: bytes | None = body
        if self.cfg.method == "GET":
            data = None
        elif self.cfg.compression == "gzip":
            data = await asyncio.to_thread(gzip.compress, body, 1)
        try:
            async with self._session.request(self.cfg.method, self.url, data=data) as resp:
                return resp.status, await resp.read(), resp.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            # aiohttp's message names host and port, never the credentials (they are
            # not in self.url).
            raise TransportFailed(f"{self.url}: {type(e).__name__}: {e}") from None

    async def send(self, ctx: OutputContext, items: list[bytes]) -> None:
        """Until every item is stored or dead-lettered (Abandoned when stopping)."""
        backoff = self.backoff()
        per = self.cfg.max_per_request
        i = 0
        while i < len(items):
            chunk = items[i:i + per]
            try:
                status, reply, retry_after = await self._request(b"".join(chunk))
            except TransportFailed as e:
                await self.retry_later(ctx, backoff, len(chunk), str(e))
                continue
            if status < 400:
                ctx.stats.messages_out += len(chunk)
                backoff.reset()
                i += per
            elif status in RETRY_STATUSES or status >= 500:
                await self.retry_later(ctx, backoff, len(chunk),
                                       f"{self.url} answered {status}: "
                                       f"{describe(reply)!r:.300}",
                                       delay=_retry_after(retry_after))
            else:
                await self._reject(ctx, chunk, status, describe(reply))
                i += per

    async def _reject(self, ctx: OutputContext, chunk: list[bytes], status: int,
                      error: Any) -> None:
        await self.write_dead_letters(ctx, self.dead_letter,
                                      [(item, status, error) for item in chunk])
        ctx.stats.dead_lettered += len(chunk)
        hint = " (check username/password)" if status in (401, 403) else ""
        ctx.limited_log(logging.ERROR, "%d messages refused by %s with %d%s: %.300r; "
                        "written to %s", len(chunk), self.url, status, hint, error,
                        self.dead_letter.path)
