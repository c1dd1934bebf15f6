"""HaproxyStatsInput: HAProxy's `show info` and `show stat` turned into LMA's HAProxy
metrics (collectd's haproxy.py as LMA deployed it; docs/compatibility.md, "LMA metrics"), for the
controllers' HAProxy and for every tenant load balancer the Neutron LBaaS agent runs.

Every `ticker_interval` the `sockets` globs are expanded again, so a load balancer's
socket is read from the tick after the agent creates it and forgotten once it is gone
(`/var/lib/neutron/lbaas/<id>/sock` for LBaaS v1 pools, `.../lbaas/v2/<id>/haproxy_stats
.sock` for v2 load balancers; their id becomes the `pool_id` / `loadbalancer_id` tag).
A stats `url` (`http://host:port/stats;csv`, for `show stat` only) can be read instead.

Metrics (Type `metric`, Fields name/value/tag_fields, hostname tag, source=haproxy,
type=gauge): haproxy_connections, _ssl_connections, _pipes_used, _pipes_free,
_run_queue, _tasks, _uptime (show info); haproxy_frontend_* and haproxy_backend_*
counters per proxy (tags frontend / backend); haproxy_backend_status (UP 1, else 0);
haproxy_backend_server (tags backend, server, state; UP 1, DOWN 0; MAINT/NOLB left
out); haproxy_backend_server_check_failures and _check_downs (tags backend, server:
HAProxy's chkfail and chkdown counters; hekapy's own); haproxy_backend_servers and
_servers_percent per state; haproxy_check (1 when the socket answered). Counters stay
cumulative (Grafana takes the derivative). Columns are read by name from the CSV
header, so other HAProxy versions' extra or missing columns do no harm; empty values are 0.

Keys: sockets (globs), url, ticker_interval (10 s), proxy_ignore (LMA's: Stats, stats,
lma, nova-api-1), proxy_rename (table, LMA's mapping by default), timeout ("2s").

    [haproxy_stats]
    type = "HaproxyStatsInput"
    sockets = ["/var/lib/neutron/lbaas/*/sock",
               "/var/lib/neutron/lbaas/v2/*/haproxy_stats.sock",
               "/var/lib/haproxy/stats"]
    ticker_interval = 10
"""

from __future__ import annotations

import asyncio
import csv
import glob
import io
import logging
import re
import time
from typing import Any, ClassVar

import aiohttp

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import Input, Option, OptionError, register

LMA_IGNORE = ["Stats", "stats", "lma", "nova-api-1"]
LMA_RENAME = {
    "ceilometer": "ceilometer-api", "glance-registry": "glance-registry-api",
    "heat-api-cfn": "heat-cfn-api", "heat-api-cloudwatch": "heat-cloudwatch-api",
    "horizon": "horizon-web", "horizon-ssl": "horizon-https",
    "keystone-1": "keystone-public-api", "keystone-2": "keystone-admin-api",
    "murano": "murano-api", "mysqld": "mysqld-tcp", "neutron": "neutron-api",
    "nova-api-2": "nova-api", "nova-novncproxy": "nova-novncproxy-websocket",
    "sahara": "sahara-api", "swift": "swift-api",
}
INFO_METRICS = {"CurrConns": "haproxy_connections", "CurrSslConns": "haproxy_ssl_connections",
                "PipesUsed": "haproxy_pipes_used", "PipesFree": "haproxy_pipes_free",
                "Run_queue": "haproxy_run_queue", "Tasks": "haproxy_tasks",
                "Uptime_sec": "haproxy_uptime"}
_HTTP_COLUMNS = {"hrsp_1xx": "response_1xx", "hrsp_2xx": "response_2xx",
                 "hrsp_3xx": "response_3xx", "hrsp_4xx": "response_4xx",
                 "hrsp_5xx": "response_5xx", "hrsp_other": "response_other"}
FRONTEND_METRICS = {"bin": "bytes_in", "bout": "bytes_out", "dreq": "denied_requests",
                    "dresp": "denied_responses", "ereq": "error_requests",
                    "scur": "session_current", "stot": "session_total", **_HTTP_COLUMNS}
BACKEND_METRICS = {"bin": "bytes_in", "bout": "bytes_out", "dreq": "denied_requests",
                   "dresp": "denied_responses", "downtime": "downtime",
                   "econ": "error_connection", "eresp": "error_responses",
                   "qcur": "queue_current", "wredis": "redistributed", "wretr": "retries",
                   "scur": "session_current", "stot": "session_total", **_HTTP_COLUMNS}
_LBAAS_ID_RE = re.compile(r"/lbaas/(?:(v2)/)?([^/]+)/")


def _number(text: str) -> float | int:
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_info(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_stat(text: str) -> list[dict[str, str]]:
    """`show stat` CSV → rows by column name (the header starts with "# ")."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("#"):
        raise ValueError("no '# pxname,svname,…' header")
    header = lines[0].lstrip("# ").rstrip(",").split(",")
    rows = []
    for rec in csv.reader(io.StringIO("\n".join(lines[1:]))):
        rows.append(dict(zip(header, rec, strict=False)))
    return rows


def stats_points(info: dict[str, str] | None, rows: list[dict[str, str]],
                 ignore: set[str], rename: dict[str, str]
                 ) -> list[tuple[str, float | int, dict[str, str]]]:
    """(metric name, value, tags) as LMA's collectd plugin produced them."""
    points: list[tuple[str, float | int, dict[str, str]]] = []
    for key, name in INFO_METRICS.items():
        if info and key in info:
            points.append((name, _number(info[key]), {}))
    servers: dict[str, dict[str, int]] = {}
    for row in rows:
        px, sv = row.get("pxname", ""), row.get("svname", "")
        if not px or px in ignore:
            continue
        proxy = rename.get(px, px)
        if sv == "FRONTEND":
            for col, suffix in FRONTEND_METRICS.items():
                if col in row:
                    points.append((f"haproxy_frontend_{suffix}", _number(row[col]),
                                   {"frontend": proxy}))
        elif sv == "BACKEND":
            for col, suffix in BACKEND_METRICS.items():
                if col in row:
                    points.append((f"haproxy_backend_{suffix}", _number(row[col]),
                                   {"backend": proxy}))
            status = row.get("status", "").split(" ")[0]
            points.append(("haproxy_backend_status", 1 if status == "UP" else 0,
                           {"backend": proxy}))
        else:
            state = row.get("status", "").split(" ")[0]
            if state not in ("UP", "DOWN"):
                continue  # MAINT, NOLB, DRAIN, no check: as LMA, left out
            up = state == "UP"
            points.append(("haproxy_backend_server", 1 if up else 0,
                           {"backend": proxy, "state": state.lower(), "server": sv}))
            # hekapy's own: a member's failed health checks and its UP -> DOWN
            # transitions (LMA kept only the state), for the LBaaS dashboard.
            for col, name in (("chkfail", "check_failures"), ("chkdown", "check_downs")):
                if col in row:
                    points.append((f"haproxy_backend_server_{name}", _number(row[col]),
                                   {"backend": proxy, "server": sv}))
            counts = servers.setdefault(proxy, {"up": 0, "down": 0})
            counts["up" if up else "down"] += 1
    for proxy, counts in servers.items():
        total = counts["up"] + counts["down"]
        for state in ("down", "up"):
            points.append(("haproxy_backend_servers", counts[state],
                           {"backend": proxy, "state": state}))
            points.append(("haproxy_backend_servers_percent",
                           100.0 * counts[state] / total if total else 0.0,
                           {"backend": proxy, "state": state}))
    return points


async def socket_command(path: str, command: str, timeout: float) -> str:
    """One command on a stats socket (it answers and closes)."""
    async def talk() -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
    return (await asyncio.wait_for(talk(), timeout)).decode("utf-8", "replace")


@register
class HaproxyStatsInput(Input):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "sockets": Option("strlist", [], doc="stats socket paths or globs"),
        "url": Option("str", "", doc="stats CSV URL instead of sockets"),
        "proxy_ignore": Option("strlist", LMA_IGNORE),
        "proxy_rename": Option("table", LMA_RENAME),
        "timeout": Option("duration", "2s"),
    }
    defaults: ClassVar[dict[str, Any]] = {"ticker_interval": 10}

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if not cfg.sockets and not cfg.url:
            raise OptionError("give sockets (paths or globs) or a stats url", key="sockets")
        if cfg.ticker_interval <= 0:
            raise OptionError("must be more than 0", key="ticker_interval")
        self.ignore = set(cfg.proxy_ignore)
        self.failing: set[str] = set()
        self.log = logging.getLogger(f"hekapy.input.{name}")

    def sources(self) -> list[str]:
        paths: list[str] = []
        for pattern in self.cfg.sockets:
            found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            paths += [p for p in found if p not in paths]
        return paths

    async def read_socket(self, path: str) -> tuple[dict[str, str], list[dict[str, str]]]:
        info = parse_info(await socket_command(path, "show info", self.cfg.timeout))
        rows = parse_stat(await socket_command(path, "show stat", self.cfg.timeout))
        return info, rows

    async def read_url(self, session: aiohttp.ClientSession) -> list[dict[str, str]]:
        async with session.get(self.cfg.url) as r:
            r.raise_for_status()
            return parse_stat(await r.text())

    def messages(self, ctx: InputContext, points: list[tuple[str, Any, dict[str, str]]],
                 extra: dict[str, str], now: int) -> list[Message]:
        out = []
        host = ctx.hostname
        for name, value, tags in points:
            tags = {**tags, **extra}
            fields = [Field("name", [name], STRING),
                      Field("value", [value], INTEGER if isinstance(value, int) else DOUBLE),
                      Field("source", ["haproxy"], STRING), Field("type", ["gauge"], STRING),
                      Field("hostname", [host], STRING)]
            fields += [Field(k, [v], STRING) for k, v in tags.items()]
            fields.append(Field("tag_fields", ["hostname", *tags], STRING))
            out.append(Message(timestamp=now, type="metric", logger="haproxy_stats",
                               severity=6, hostname=host, fields=fields))
        return out

    async def tick(self, ctx: InputContext, session: aiohttp.ClientSession | None) -> None:
        now = time.time_ns()
        msgs: list[Message] = []
        targets: list[tuple[str, dict[str, str]]] = []
        for path in self.sources():
            m = _LBAAS_ID_RE.search(path)
            extra = {("loadbalancer_id" if m.group(1) else "pool_id"): m.group(2)} if m else {}
            targets.append((path, extra))
        if self.cfg.url:
            targets.append((self.cfg.url, {}))
        for target, extra in targets:
            try:
                if target == self.cfg.url and session is not None:
                    info, rows = None, await self.read_url(session)
                else:
                    info, rows = await self.read_socket(target)
                points = stats_points(info, rows, self.ignore, self.cfg.proxy_rename)
                ok = 1
                if target in self.failing:
                    self.failing.discard(target)
                    ctx.log.info("%s answers again", target)
            except (OSError, ValueError, TimeoutError, aiohttp.ClientError) as e:
                points, ok = [], 0
                ctx.stats.errors += 1
                if target not in self.failing:  # logged once until it recovers
                    self.failing.add(target)
                    ctx.log.warning("%s: %s: %s", target, type(e).__name__, e)
            points.append(("haproxy_check", ok, {}))
            msgs += self.messages(ctx, points, extra, now)
        ctx.stats.messages_in += len(msgs)
        if msgs:
            await ctx.deliver(msgs)

    async def run(self, ctx: InputContext) -> None:
        session = aiohttp.ClientSession() if self.cfg.url else None
        try:
            while not ctx.stopping.is_set():
                await self.tick(ctx, session)
                try:
                    await asyncio.wait_for(ctx.stopping.wait(), self.cfg.ticker_interval)
                except TimeoutError:
                    pass
        finally:
            if session is not None:
                await session.close()
