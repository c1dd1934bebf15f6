"""`hekapy influxdb-setup`: the InfluxDB 1.x database hekapy writes to, with a default
retention policy that really is the default, in one idempotent run.

InfluxDB 1.x creates a database with a policy named `autogen` (infinite duration) and
writes, and reads that name no retention policy, go to the database's default policy
(https://docs.influxdata.com/influxdb/v1/query_language/manage-database/). Altering a
policy called `default`, as LMA's installer did, changes nothing on 1.x. So:

1. `CREATE DATABASE` when `SHOW DATABASES` lacks it;
2. `SHOW RETENTION POLICIES`; the policy to set is the InfluxdbOutput's
   `retention_policy` when it names one, else the database's current default (autogen);
3. `CREATE RETENTION POLICY … DEFAULT` when it is missing, `ALTER RETENTION POLICY …
   DEFAULT` when its duration, shard group duration or default flag differ, nothing
   when they match: `retention_days` (0: keep forever), with InfluxDB's own shard group
   durations for that retention (1 h under 2 days, 1 day up to 6 months, 7 days
   beyond), so old data goes a day at a time rather than a week.

InfluxDB 2.x keeps retention on its buckets, which it creates with one: this command
refuses a 2.x output (`token`) and says so.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import click

from hekapy.collector.engine.config import Config
from hekapy.collector.engine.redact import redact_url
from hekapy.collector.net.tls import client_ssl_context, tls_settings

EXIT_FAILED = 1
_DAY = 86400
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class SetupError(Exception):
    """InfluxDB cannot be prepared: a clear reason, never a credential."""


@dataclass
class Target:
    url: str  # without credentials
    database: str
    retention_policy: str  # "" : the database's current default
    username: str = ""
    password: str = ""
    ssl_context: ssl.SSLContext | None = None


def target_from(config: Config | None, output_name: str | None, url: str | None,
                database: str, path: str | None) -> Target:
    """The config's InfluxdbOutput (URL, database, retention_policy, credentials, TLS),
    or `url` and `database` with credentials from HEKAPY_INFLUXDB_USERNAME /
    HEKAPY_INFLUXDB_PASSWORD."""
    if config is not None:
        outputs = [s for s in config.by_category("Output")
                   if s.cls.type_name == "InfluxdbOutput"
                   and (output_name is None or s.name == output_name)]
        if len(outputs) != 1:
            names = ", ".join(s.name for s in outputs) or "none"
            raise SetupError(f"need exactly one InfluxdbOutput in {path} (found: {names}); "
                             "choose with --output")
        cfg = outputs[0].cfg
        if cfg.token:
            raise SetupError(f"[{outputs[0].name}] writes to InfluxDB 2.x (token): set the "
                             f"retention of bucket {cfg.bucket!r} in InfluxDB itself "
                             "(influx bucket update --retention 30d); this command sets "
                             "up InfluxDB 1.x")
        tls = client_ssl_context(tls_settings(cfg.tls)) if cfg.tls else None
        return Target(redact_url(cfg.url.rstrip("/")), cfg.database, cfg.retention_policy,
                      cfg.username, cfg.password, tls)
    if url:
        parts = urlsplit(url)  # credentials in the URL, else from the environment
        return Target(redact_url(url.rstrip("/")), database, "",
                      parts.username or os.environ.get("HEKAPY_INFLUXDB_USERNAME", ""),
                      parts.password or os.environ.get("HEKAPY_INFLUXDB_PASSWORD", ""))
    raise SetupError("give -c CONFIG or --url URL")


def quote(identifier: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return '"' + identifier.replace("\\", "\\\\").replace('"', '\\"') + '"'


def seconds(go_duration: str) -> float:
    """InfluxDB's '720h0m0s' in seconds; '0s' (infinite) is 0."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _GO_DURATION.findall(go_duration))


def shard_group_days(retention_days: int) -> float:
    """The shard group duration InfluxDB itself picks for a retention period."""
    if retention_days <= 0 or retention_days > 182:
        return 7
    return 1 if retention_days >= 2 else 1 / 24


def _days(value: float) -> str:
    return "forever" if value == 0 else f"{value:g} day{'s' if value != 1 else ''}"


class Influx:
    """InfluxQL over /query, answers as rows."""

    def __init__(self, target: Target, session: aiohttp.ClientSession) -> None:
        self.target = target
        self.session = session

    async def query(self, statement: str) -> list[dict[str, Any]]:
        try:
            async with self.session.post(self.target.url + "/query",
                                         data={"q": statement}) as resp:
                status, text = resp.status, await resp.text()
                body = await resp.json(content_type=None) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise SetupError(f"{self.target.url}: {type(e).__name__}: {e}") from None
        if status in (401, 403):
            raise SetupError(f"{self.target.url} answered {status}: check the credentials "
                             "(the output's username/password, or HEKAPY_INFLUXDB_*) and "
                             "their admin privilege")
        if status != 200 or not isinstance(body, dict):
            raise SetupError(f"{self.target.url}: {statement}: {status} {text[:300]}")
        result = (body.get("results") or [{}])[0]
        if "error" in result:  # InfluxDB answers 200 with the statement's error inside
            raise SetupError(f"{self.target.url}: {statement}: {result['error']}")
        return [dict(zip(s["columns"], row, strict=True))
                for s in result.get("series", []) for row in s.get("values") or []]

    async def version(self) -> str:
        try:
            async with self.session.get(self.target.url + "/ping") as resp:
                return resp.headers.get("X-Influxdb-Version", "?")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise SetupError(f"{self.target.url}: {type(e).__name__}: {e}") from None


async def _database(db: Influx) -> str:
    name = db.target.database
    if name in {row["name"] for row in await db.query("SHOW DATABASES")}:
        return f"database {name!r} exists"
    await db.query(f"CREATE DATABASE {quote(name)}")
    return f"database {name!r} created"


async def _retention(db: Influx, retention_days: int, replication: int) -> str:
    target = db.target
    on = quote(target.database)
    policies = {row["name"]: row for row in
                await db.query(f"SHOW RETENTION POLICIES ON {on}")}
    name = target.retention_policy or next(
        (n for n, row in policies.items() if row["default"]), "autogen")
    duration = max(retention_days, 0)
    shard = shard_group_days(retention_days)
    spec = (f"DURATION {f'{duration}d' if duration else 'INF'} REPLICATION {replication} "
            f"SHARD DURATION {f'{shard:g}d' if shard >= 1 else '1h'} DEFAULT")
    wanted = f"{_days(duration)}, shard groups of {_days(shard)}, the default"
    current = policies.get(name)
    if current is None:
        await db.query(f"CREATE RETENTION POLICY {quote(name)} ON {on} {spec}")
        return f"retention policy {name!r} on {target.database!r} created: {wanted}"
    was = (seconds(current["duration"]) / _DAY, seconds(current["shardGroupDuration"]) / _DAY,
           bool(current["default"]))
    if (abs(was[0] - duration) < 1e-9 and abs(was[1] - shard) < 1e-9 and was[2]
            and int(current["replicaN"]) == replication):
        return f"retention policy {name!r} on {target.database!r} unchanged: {wanted}"
    await db.query(f"ALTER RETENTION POLICY {quote(name)} ON {on} {spec}")
    before = f"{_days(was[0])}{', the default' if was[2] else ', not the default'}"
    return f"retention policy {name!r} on {target.database!r} changed: {wanted} (was {before})"


async def setup(target: Target, retention_days: int, replication: int = 1) -> int:
    """The whole of influxdb-setup; the exit status."""
    headers = {}
    if target.username or target.password:
        token = base64.b64encode(f"{target.username}:{target.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connector = aiohttp.TCPConnector(ssl=target.ssl_context or True)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        db = Influx(target, session)
        try:
            click.echo(f"InfluxDB {await db.version()} at {target.url}")
            click.echo(await _database(db))
            click.echo(await _retention(db, retention_days, replication))
        except SetupError as e:
            click.echo(f"error: {e}", err=True)
            return EXIT_FAILED
    return 0
