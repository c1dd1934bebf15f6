"""Reaching a running collector's status server from a command (`hekapy tap`, `hekapy top`).

The commands find the server from the config's [hekad] keys, the same file the collector
runs, so an operator names one file and never types the address or the password:

    [hekad]
    status_address = "127.0.0.1:4352"
    status_username = "ops"          # optional basic auth (both or neither)
    status_password = "%ENV[HEKAPY_STATUS_PASSWORD]"
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import aiohttp
import orjson

from hekapy.collector.engine.config import Config, split_host_port


class StatusClientError(Exception):
    """The status server is off, unreachable or refused us."""


def basic_auth_header(username: str, password: str) -> bytes:
    """The Authorization header value a client sends for these credentials."""
    return b"Basic " + base64.b64encode(f"{username}:{password}".encode())


def status_endpoint(config: Config) -> tuple[str, dict[str, str]]:
    """(base URL, request headers: basic auth if set) of the status server `config`
    runs."""
    h = config.hekad
    if not h.status_address:
        raise StatusClientError("the status server is off in this config "
                                "([hekad] status_address = \"\")")
    host, port = split_host_port(h.status_address)
    # A wildcard bind is reached on loopback: the command runs on the collector's host.
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    headers = ({"Authorization": basic_auth_header(h.status_username,
                                                   h.status_password).decode()}
               if h.status_username else {})
    return f"http://{host}:{port}", headers


async def fetch_stats(session: aiohttp.ClientSession, base: str) -> dict:
    """One /stats snapshot."""
    try:
        async with session.get(base + "/stats") as r:
            if r.status != 200:
                raise StatusClientError(f"{base}/stats: {r.status} {(await r.text()).strip()}")
            return orjson.loads(await r.read())
    except aiohttp.ClientError as e:
        raise StatusClientError(f"cannot reach the status server at {base}: {e}") from None


def run_client(coro: Any) -> int:
    """Run a client coroutine; Ctrl-C exits quietly with 130."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(coro)
    return 130
