"""InfluxdbOutput: metric messages to InfluxDB as line protocol (no encoder section: the
points are LMA's, outputs/influxdb/line_protocol.py).

Keys: url ("http://127.0.0.1:8086"); InfluxDB 1.x: database ("lma"),
retention_policy, username, password; InfluxDB 2.x (used when `token` is set): org,
bucket, token; precision ("ms"); tag_fields (LMA's common tags); flush_interval
(1000 ms), flush_count (400 points), flush_bytes (1 MiB), max_in_flight (2),
compression ("none" | "gzip"), http_timeout (5000 ms), tls (table), retry_delay,
retry_max_delay. use_buffering is on by default and drops when full (LMA's metric
pipeline did the same: metrics must never stall).

Delivery: 204 is stored. 429, 5xx and no answer are retried with backoff (at least
the server's Retry-After). 404 (no such database), 401, 403 are retried too, logged as
errors: a configuration problem must not lose points. A 400 `partial write` means InfluxDB
stored the valid lines and refused the rest for good (unable to parse, field type
conflict with stored data, beyond retention): those are counted as dropped and logged
once per request, never retried (a retry would only write the stored ones again). A 400
refusing the whole request (points of one request conflicting with each other) or a 413
splits the request in halves until the culprit is alone.

    [influxdb]
    type = "InfluxdbOutput"
    message_matcher = "Type =~ /metric$/"
    url = "http://127.0.0.1:8086"
    database = "lma"
    precision = "ms"
    flush_interval = 1000
    flush_count = 400
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import re
from types import SimpleNamespace
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiohttp

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.plugin import Option, OptionError, register
from hekapy.collector.engine.queue import Batch
from hekapy.collector.engine.redact import redact_url
from hekapy.collector.net.tls import client_ssl_context, tls_settings
from hekapy.outputs.batching import BatchingOutput, describe, server_answers
from hekapy.outputs.influxdb.line_protocol import (
    DEFAULT_TAG_FIELDS,
    PointEncoder,
)

_DROPPED_RE = re.compile(rb"dropped=(\d+)")


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise OptionError(f"{redact_url(str(value))!r} is not an http:// or https:// URL")
    return value.rstrip("/")


@register
class InfluxdbOutput(BatchingOutput):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "url": Option("str", "http://127.0.0.1:8086", check=_url),
        "database": Option("str", "lma"),
        "retention_policy": Option("str", ""),
        "username": Option("str", ""),
        "password": Option("str", ""),
        "org": Option("str", ""),
        "bucket": Option("str", ""),
        "token": Option("str", "", doc="InfluxDB 2.x API token: selects /api/v2/write"),
        "precision": Option("str", "ms", choices=("ns", "us", "ms", "s")),
        "tag_fields": Option("strlist", list(DEFAULT_TAG_FIELDS),
                             doc="fields that become tags whenever present"),
    }
    # LMA's settings (docs/compatibility.md, "InfluxDB line protocol").
    defaults: ClassVar[dict[str, Any]] = {
        "use_buffering": True, "flush_count": 400, "flush_bytes": 1 << 20,
        "max_in_flight": 2, "http_timeout": 5000}
    buffering_defaults: ClassVar[dict[str, Any]] = {
        "full_action": "drop", "max_buffer_size": 1536 << 20, "max_file_size": 128 << 20}
    what = "points"

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if cfg.token and not (cfg.org and cfg.bucket):
            raise OptionError("InfluxDB 2.x (token) needs org and bucket", key="token")
        self.tls = tls_settings(cfg.tls) if cfg.tls else None
        if cfg.token:
            query = {"org": cfg.org, "bucket": cfg.bucket, "precision": cfg.precision}
            self.write_url = f"{cfg.url}/api/v2/write?{urlencode(query)}"
            self.headers = {"Authorization": f"Token {cfg.token}"}
        else:
            query = {"db": cfg.database, "precision": cfg.precision}
            if cfg.retention_policy:
                query["rp"] = cfg.retention_policy
            self.write_url = f"{cfg.url}/write?{urlencode(query)}"
            self.headers = {}
            if cfg.username or cfg.password:
                token = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
                self.headers["Authorization"] = f"Basic {token}"
        self.headers["Content-Type"] = "text/plain; charset=utf-8"
        if cfg.compression == "gzip":
            self.headers["Content-Encoding"] = "gzip"
        self.points = PointEncoder(cfg.tag_fields, cfg.precision)
        self.log = logging.getLogger(f"hekapy.output.{name}")

    async def open(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        conn = aiohttp.TCPConnector(
            limit=cfg.max_in_flight * 2,
            ssl=client_ssl_context(self.tls) if self.tls else True)
        self.session = aiohttp.ClientSession(
            connector=conn, headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=cfg.http_timeout or None))

    async def close_output(self) -> None:
        await self.session.close()

    def encode_batches(self, ctx: OutputContext, batches: list[Batch]) -> list[bytes]:
        items: list[bytes] = []
        encode = self.points.encode
        for b in batches:
            for m, error in encode(b.messages, items):
                if error is not None:  # a malformed metric must not stall the output
                    ctx.stats.errors += 1
                    ctx.limited_log(logging.ERROR, "cannot encode a metric: %s: %s",
                                    type(error).__name__, error)
                else:
                    ctx.stats.dropped += 1
                    ctx.limited_log(logging.WARNING, "metric skipped: no usable "
                                    "Fields[name] (empty or starting with '#') or no "
                                    "value (Type %r)", m.type)
        return items

    async def reachable(self) -> bool:
        """Whether InfluxDB answers `/ping` again (1.x and 2.x both serve it)."""
        return await server_answers(self.session, f"{self.cfg.url}/ping")

    async def send(self, ctx: OutputContext, items: list[bytes]) -> None:
        backoff = self.backoff()
        work = [items]
        while work:
            part = work.pop()
            body = b"".join(part)
            if self.cfg.compression == "gzip":
                body = await asyncio.to_thread(gzip.compress, body, 1)
            try:
                async with self.session.post(self.write_url, data=body) as resp:
                    status, reply = resp.status, await resp.read()
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError, OSError) as e:  # no answer
                await self.retry_later(ctx, backoff, len(part),
                                       f"{redact_url(self.cfg.url)}: {type(e).__name__}: {e}",
                                       probe=self.reachable)
                work.append(part)
                continue
            if status in (200, 204):
                ctx.stats.messages_out += len(part)
                backoff.reset()
            elif status in (400, 413) and len(part) > 1 and b"partial write" not in reply:
                # The whole request was refused (too large, or points of one request
                # conflicting with each other): halves, until the culprit is alone.
                half = len(part) // 2
                work += [part[half:], part[:half]]
            elif status == 400 or status == 413:
                m = _DROPPED_RE.search(reply)
                dropped = int(m.group(1)) if m else len(part)
                ctx.stats.dropped += dropped
                ctx.stats.messages_out += len(part) - min(dropped, len(part))
                ctx.limited_log(logging.ERROR, "InfluxDB refused %d of %d points for good: "
                                "%.300s", dropped, len(part), describe(reply))
            else:
                level = logging.ERROR if status in (401, 403, 404) else logging.WARNING
                await self.retry_later(ctx, backoff, len(part),
                                       f"InfluxDB answered {status}: {describe(reply)!r:.300}",
                                       level, retry_after)
                work.append(part)


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), 300.0) if value else None
    except ValueError:
        return None
