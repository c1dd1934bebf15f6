"""ElasticSearchOutput: log documents to Elasticsearch or OpenSearch through `_bulk`,
several requests in flight, nothing lost, nothing acknowledged early.

Heka keys: server (a URL, or a list of URLs tried in turn; default
"http://localhost:9200"), flush_interval (1000 ms), flush_count (10), username,
password, connect_timeout and http_timeout (ms, 0 = none), http_disable_keepalives,
tls (table, collector/net/tls.py), encoder (required: ESJsonEncoder or
ESLogstashV0Encoder), use_buffering.
hekapy keys: flush_bytes (request body size that triggers a flush, 5 MiB),
max_in_flight (bulk requests at once, 4), compression ("none" | "gzip"), api_key,
retry_delay / retry_max_delay (backoff between attempts, "100ms" / "30s"),
dead_letter_file (default <base_dir>/dead_letter/<name>.ndjson).

Delivery (docs/compatibility.md, "ElasticSearchOutput"): a request that gets no answer,
a 429 or a 5xx is sent again, forever, with exponential backoff and jitter, moving to
the next server. A 200 is read item by item: 429/5xx items are sent again alone, a 409
on `create` counts as stored, other 4xx items go to the dead-letter file with the
server's reason. A 413 (request too large) or a whole-request 400 splits the request in
halves until the culprit is alone. A batch is acknowledged to its inputs only when every
one of its documents is stored or dead-lettered. Unlike Heka, nothing is dropped on a
non-200.

    [elasticsearch_output]
    type = "ElasticSearchOutput"
    message_matcher = "Type == 'log' || Type == 'notification' || Type == 'audit'"
    encoder = "elasticsearch_encoder"
    server = ["http://es-1:9200", "http://es-2:9200"]
    flush_interval = 5000
    flush_count = 1000
    max_in_flight = 4
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.plugin import Option, OptionError, register
from hekapy.collector.engine.redact import redact_url
from hekapy.collector.engine.retry import Backoff
from hekapy.collector.net.tls import client_ssl_context, tls_settings
from hekapy.outputs.batching import BatchingOutput, describe
from hekapy.outputs.elasticsearch.bulk import BulkResponseError, parse_bulk_response
from hekapy.outputs.elasticsearch.client import EsClient, TransportError
from hekapy.outputs.elasticsearch.deadletter import DeadLetterFile


def _servers(value: Any) -> list[str]:
    servers = [value] if isinstance(value, str) else list(value)
    if not servers:
        raise OptionError("needs at least one server URL")
    for s in servers:
        if not isinstance(s, str) or not s.startswith(("http://", "https://")):
            raise OptionError(f"{redact_url(str(s))!r} is not an http:// or https:// URL "
                              "(Heka's udp:// bulk protocol is not supported)")
    return servers


@register
class ElasticSearchOutput(BatchingOutput):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "server": Option("any", "http://localhost:9200", check=_servers,
                         doc="URL or list of URLs"),
        "username": Option("str", ""),
        "password": Option("str", ""),
        "api_key": Option("str", "", doc="Elasticsearch API key (id:key base64)"),
        "connect_timeout": Option("duration", 0, unit=1e-3, doc="ms; 0 = none"),
        "http_disable_keepalives": Option("bool", False),
        "dead_letter_file": Option("str", ""),
    }
    # Heka's defaults, and hekapy's for its own keys.
    defaults: ClassVar[dict[str, Any]] = {
        "use_buffering": True, "flush_count": 10, "flush_bytes": 5 << 20,
        "max_in_flight": 4, "retry_delay": "100ms", "http_timeout": 0}
    what = "documents"

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if not cfg.encoder:
            raise OptionError("ElasticSearchOutput needs an encoder (ESJsonEncoder)",
                              key="encoder")
        self.tls = tls_settings(cfg.tls) if cfg.tls else None
        self.log = logging.getLogger(f"hekapy.output.{name}")

    def _client(self) -> EsClient:
        cfg = self.cfg
        return EsClient(
            cfg.server, username=cfg.username, password=cfg.password, api_key=cfg.api_key,
            ssl_context=client_ssl_context(self.tls) if self.tls else None,
            connect_timeout=cfg.connect_timeout, http_timeout=cfg.http_timeout,
            keepalive=not cfg.http_disable_keepalives,
            gzip_level=1 if cfg.compression == "gzip" else 0,
            max_connections=cfg.max_in_flight * 2)

    async def open(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        self.client = self._client()
        path = cfg.dead_letter_file or os.path.join(
            ctx.pipeline.hekad.base_dir, "dead_letter", f"{self.name}.ndjson")
        self.dead_letter = DeadLetterFile(path, self.name)

    async def close_output(self) -> None:
        await self.client.close()

    async def send(self, ctx: OutputContext, items: list[bytes]) -> None:
        await self._send(ctx, items)

    async def _send(self, ctx: OutputContext, items: list[bytes]) -> None:
        """Until every item is stored or dead-lettered."""
        backoff = self.backoff()
        client = self.client
        work = [items]
        while work:
            part = work.pop()
            try:
                reply = await client.bulk(b"".join(part))
            except TransportError as e:  # no answer: probe for its return while waiting
                await self._retry_later(ctx, backoff, part, work, str(e),
                                        probe=client.reachable)
                continue
            status = reply.status
            if status == 200:
                try:
                    outcome = parse_bulk_response(reply.body, len(part))
                except BulkResponseError as e:
                    await self._retry_later(ctx, backoff, part, work, f"{reply.server}: {e}")
                    continue
                ctx.stats.messages_out += outcome.stored
                if outcome.rejected:
                    await self._reject(ctx, [(part[i], s, err) for i, s, err in
                                             outcome.rejected])
                if outcome.retry:
                    again = [part[i] for i in outcome.retry]
                    await self._retry_later(ctx, backoff, again, work,
                                            f"{len(again)} items refused for now (429/5xx)")
                else:
                    backoff.reset()
            elif status in (400, 413) and len(part) > 1:
                # Find the item the server chokes on: halves, then quarters, …
                half = len(part) // 2
                work += [part[half:], part[:half]]
            elif status in (400, 413):
                await self._reject(ctx, [(part[0], status, describe(reply.body))])
            else:
                # 401/403 (credentials), 404, 429, 5xx …: never drop, keep trying.
                level = logging.ERROR if status in (401, 403) else logging.WARNING
                await self._retry_later(ctx, backoff, part, work,
                                        f"{reply.server} answered {status}: "
                                        f"{describe(reply.body)!r:.300}", level)

    async def _retry_later(self, ctx: OutputContext, backoff: Backoff, part: list[bytes],
                           work: list[list[bytes]], why: str,
                           level: int = logging.WARNING, probe: Any = None) -> None:
        await self.retry_later(ctx, backoff, len(part), why, level, probe=probe)
        self.client.fail_over()
        work.append(part)

    async def _reject(self, ctx: OutputContext, records: list[tuple[bytes, int, Any]]) -> None:
        await self.write_dead_letters(ctx, self.dead_letter, records)
        ctx.stats.dead_lettered += len(records)
        ctx.limited_log(logging.ERROR, "%d documents rejected by Elasticsearch (first: %s "
                        "%.300s); written to %s", len(records), records[0][1],
                        records[0][2], self.dead_letter.path)
