"""HTTP side of the Elasticsearch output: one aiohttp session, several servers with
failover, basic or API-key auth, TLS, optional gzip bodies.

A request that fails at the transport level, or that a server answers with 429 or 5xx,
moves the next attempt to the next server in the list: a node that is down or
overloaded is skipped until the others fail too.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from hekapy.collector.engine.redact import redact_url
from hekapy.outputs.batching import server_answers


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, timeout, TLS failure."""


@dataclass
class BulkReply:
    status: int
    body: bytes
    server: str


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without credentials, username, password) from http://user:pass@host."""
    parts = urlsplit(url)
    return redact_url(url), parts.username, parts.password


class EsClient:
    def __init__(self, servers: list[str], *, username: str = "", password: str = "",
                 api_key: str = "", ssl_context: ssl.SSLContext | None = None,
                 connect_timeout: float = 0, http_timeout: float = 0,
                 keepalive: bool = True, gzip_level: int = 0, max_connections: int = 8
                 ) -> None:
        self.servers: list[str] = []
        auth_from_url = None
        for s in servers:
            url, user, pw = split_credentials(s.rstrip("/"))
            self.servers.append(url)
            if user is not None and auth_from_url is None:
                auth_from_url = (user, pw or "")
        self.headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"ApiKey {api_key}"
        elif username or password:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        elif auth_from_url is not None:
            token = base64.b64encode(
                f"{auth_from_url[0]}:{auth_from_url[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        if gzip_level:
            self.headers["Content-Encoding"] = "gzip"
        self.gzip_level = gzip_level
        self.ssl_context = ssl_context
        self.timeout = aiohttp.ClientTimeout(total=http_timeout or None,
                                             sock_connect=connect_timeout or None)
        self.keepalive = keepalive
        self.max_connections = max_connections
        self._current = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def server(self) -> str:
        return self.servers[self._current]

    def fail_over(self) -> None:
        """The next attempt goes to the next server."""
        self._current = (self._current + 1) % len(self.servers)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            conn = aiohttp.TCPConnector(limit=self.max_connections,
                                        force_close=not self.keepalive,
                                        ssl=self.ssl_context if self.ssl_context else True)
            self._session = aiohttp.ClientSession(connector=conn, timeout=self.timeout,
                                                  headers=self.headers)
        return self._session

    async def bulk(self, body: bytes) -> BulkReply:
        """POST <server>/_bulk; TransportError when no answer came."""
        if self.gzip_level:
            body = await asyncio.to_thread(gzip.compress, body, self.gzip_level)
        server = self.server
        try:
            async with self._session_now().post(server + "/_bulk", data=body) as resp:
                return BulkReply(resp.status, await resp.read(), server)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise TransportError(f"{server}: {type(e).__name__}: {e}") from None

    async def request(self, method: str, path: str, json_body: object = None
                      ) -> tuple[int, bytes]:
        """Any other request (templates, version check) to the current server."""
        server = self.server
        headers = {"Content-Type": "application/json"}
        try:
            async with self._session_now().request(
                    method, server + path, json=json_body, headers=headers) as resp:
                return resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise TransportError(f"{server}: {type(e).__name__}: {e}") from None

    async def reachable(self) -> bool:
        """Whether the current server answers `GET /` at all: ends a backoff early once
        it is back."""
        return await server_answers(self._session_now(), self.server + "/")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
