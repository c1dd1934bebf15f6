"""`hekapy dashboards install`: the Grafana dashboards (conf/grafana/dashboards/) and the
Kibana / OpenSearch Dashboards saved objects (conf/kibana/) onto running servers,
through their HTTP APIs, idempotently: what is already there as shipped is left alone,
and a run that changes nothing says so. docs/dashboards-install.md lists every request.

Grafana (9 or later): the InfluxDB (InfluxQL) datasource with the uid the dashboards
name, a folder, then each dashboard by uid (`overwrite`). Kibana 7.10+/8 and
OpenSearch Dashboards 2: each NDJSON file is compared with what the server holds
(`_bulk_get`) and imported (`_import?overwrite=true`) unless every object is already
as shipped.

Credentials come from the environment (HEKAPY_GRAFANA_TOKEN or HEKAPY_GRAFANA_USERNAME
/ HEKAPY_GRAFANA_PASSWORD; HEKAPY_KIBANA_API_KEY or HEKAPY_KIBANA_USERNAME /
HEKAPY_KIBANA_PASSWORD; HEKAPY_INFLUXDB_USERNAME / HEKAPY_INFLUXDB_PASSWORD for the
datasource), or a TOML file with [grafana], [kibana] and [influxdb] tables of the same
keys (the environment wins). They are never printed: every line this command writes
has them masked.
"""

from __future__ import annotations

import base64
import copy
import importlib.resources
import json
import os
import ssl
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import click

from hekapy.collector.engine.redact import redact_url

EXIT_FAILED = 1
DEFAULT_DATASOURCE_UID = "hekapy-influxdb"
DEFAULT_DATASOURCE_NAME = "hekapy InfluxDB"
ENV = {
    "grafana": {"token": "HEKAPY_GRAFANA_TOKEN", "username": "HEKAPY_GRAFANA_USERNAME",
                "password": "HEKAPY_GRAFANA_PASSWORD"},
    "kibana": {"api_key": "HEKAPY_KIBANA_API_KEY", "username": "HEKAPY_KIBANA_USERNAME",
               "password": "HEKAPY_KIBANA_PASSWORD"},
    "influxdb": {"username": "HEKAPY_INFLUXDB_USERNAME",
                 "password": "HEKAPY_INFLUXDB_PASSWORD"},
}


class InstallError(Exception):
    """A server refused or cannot be reached: the reason, credentials masked."""


@dataclass
class Credentials:
    username: str = ""
    password: str = ""
    token: str = ""  # Grafana: a service account token; Kibana: an API key

    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.token) if s]


def load_credentials(path: str | None) -> dict[str, Credentials]:
    """Per server kind, from the file (if any) then the environment, which wins."""
    table: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            mode = p.stat().st_mode
            table = tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise InstallError(f"credentials file {path}: {type(e).__name__}: "
                               f"{getattr(e, 'strerror', None) or 'not valid TOML'}"
                               ) from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            click.echo(f"warning: credentials file {path} is readable by other users "
                       "(chmod 600 it)", err=True)
    out = {}
    for kind, names in ENV.items():
        section = table.get(kind, {})
        if not isinstance(section, dict):
            raise InstallError(f"credentials file {path}: [{kind}] must be a table")
        unknown = set(section) - set(names)
        if unknown:
            raise InstallError(f"credentials file {path}: [{kind}] has unknown key(s) "
                               f"{', '.join(sorted(unknown))}; valid: "
                               f"{', '.join(sorted(names))}")
        values = {key: os.environ.get(env) or str(section.get(key, ""))
                  for key, env in names.items()}
        out[kind] = Credentials(values.get("username", ""), values.get("password", ""),
                                values.get("token") or values.get("api_key", ""))
    return out


def ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file or None)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Report:
    """What a run did, and the secrets every printed line must not show."""
    secrets: list[str] = field(default_factory=list)
    changed: int = 0
    unchanged: int = 0

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def say(self, text: str, outcome: str | None = None) -> None:
        if outcome == "unchanged":
            self.unchanged += 1
        elif outcome is not None:
            self.changed += 1
        click.echo(self.scrub(text))


class Api:
    """JSON over HTTP to one server; 401/403 and unreachable servers are InstallErrors."""

    def __init__(self, product: str, url: str, session: aiohttp.ClientSession,
                 headers: dict[str, str], hint: str) -> None:
        parts = urlsplit(url)
        self.product = product
        self.base = redact_url(url).rstrip("/")
        self.session = session
        self.headers = headers
        self.hint = hint
        if parts.username is not None and "Authorization" not in headers:
            user_pass = f"{parts.username}:{parts.password or ''}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(
                user_pass.encode()).decode()

    async def call(self, method: str, path: str, body: Any = None,
                   data: aiohttp.FormData | None = None, ok: tuple[int, ...] = (200,)
                   ) -> tuple[int, Any]:
        try:
            async with self.session.request(method, self.base + path, json=body, data=data,
                                            headers=self.headers) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise InstallError(f"{self.product} at {self.base}: {type(e).__name__}: {e}"
                               ) from None
        if status in (401, 403):
            raise InstallError(f"{self.product} at {self.base} answered {status} to "
                               f"{method} {path}: check {self.hint}")
        try:
            reply = json.loads(text) if text else None
        except ValueError:
            reply = text[:300]
        if status not in ok and status != 404:
            raise InstallError(f"{self.product} at {self.base}: {method} {path}: {status} "
                               f"{json.dumps(reply)[:300] if reply is not None else ''}")
        return status, reply


# --- Grafana --------------------------------------------------------------------------

def grafana_headers(creds: Credentials) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if creds.token:
        headers["Authorization"] = f"Bearer {creds.token}"
    elif creds.username or creds.password:
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise InstallError(f"no Grafana dashboard (*.json) in {directory}")
    out = []
    for f in files:
        try:
            dash = json.loads(f.read_text())
        except ValueError as e:
            raise InstallError(f"{f}: not JSON: {e}") from None
        if not isinstance(dash, dict) or not dash.get("uid") or not dash.get("title"):
            raise InstallError(f"{f}: a dashboard needs a uid and a title (the uid is "
                               "how a second run finds it)")
        out.append(dash)
    return out


def influx_datasource_uids(value: Any) -> set[str]:
    """The uids of the InfluxDB datasources a dashboard names anywhere."""
    found: set[str] = set()
    if isinstance(value, dict):
        ds = value.get("datasource")
        if isinstance(ds, dict) and ds.get("type") == "influxdb" and ds.get("uid"):
            found.add(ds["uid"])
        for v in value.values():
            found |= influx_datasource_uids(v)
    elif isinstance(value, list):
        for v in value:
            found |= influx_datasource_uids(v)
    return found


def datasource_uid(dashboards: list[dict[str, Any]], given: str | None) -> str:
    named = set().union(*(influx_datasource_uids(d) for d in dashboards))
    if given is None:
        if len(named) > 1:
            raise InstallError(f"the dashboards name several InfluxDB datasources "
                               f"({', '.join(sorted(named))}); choose with --datasource-uid")
        return next(iter(named), DEFAULT_DATASOURCE_UID)
    if named - {given}:
        raise InstallError(f"--datasource-uid {given}, but the dashboards read "
                           f"{', '.join(sorted(named - {given}))}")
    return given


@dataclass
class Datasource:
    uid: str
    name: str
    url: str
    database: str
    username: str = ""
    password: str = ""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "uid": self.uid, "name": self.name, "type": "influxdb", "access": "proxy",
            "url": self.url, "user": self.username, "database": self.database,
            "basicAuth": False, "isDefault": False,
            "jsonData": {"dbName": self.database, "httpMode": "POST",
                         "timeInterval": "10s"}}
        if self.password:
            body["secureJsonData"] = {"password": self.password}
        return body


def _datasource_differs(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Grafana never returns secrets: a password counts as the same once Grafana says
    it holds one."""
    for key in ("name", "type", "access", "url", "user"):
        if stored.get(key) != wanted[key]:
            return True
    jd = stored.get("jsonData") or {}
    if any(jd.get(k) != v for k, v in wanted["jsonData"].items()):
        return True
    return "secureJsonData" in wanted and not (stored.get("secureJsonFields") or {}).get(
        "password")


def _comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    """A dashboard without what Grafana sets itself (id, version)."""
    return {k: v for k, v in dashboard.items() if k not in ("id", "version")}


async def install_grafana(api: Api, datasource: Datasource, dashboards: list[dict[str, Any]],
                          folder_uid: str, folder_title: str, report: Report) -> None:
    ds_path = f"/api/datasources/uid/{datasource.uid}"
    wanted = datasource.body()
    status, stored = await api.call("GET", ds_path)
    what = f"datasource {datasource.name!r} (uid {datasource.uid}, {datasource.url})"
    if status == 404:
        status, _ = await api.call("POST", "/api/datasources", wanted, ok=(200, 409))
        if status == 409:
            raise InstallError(f"Grafana at {api.base}: another datasource is named "
                               f"{datasource.name!r}: rename it, or choose another name "
                               "with --datasource-name")
        report.say(f"Grafana: {what} created", "created")
    elif stored.get("readOnly"):
        report.say(f"Grafana: {what} is provisioned from files: left as it is",
                   "unchanged")
    elif _datasource_differs(stored, wanted):
        await api.call("PUT", ds_path, {**wanted, "id": stored.get("id")})
        report.say(f"Grafana: {what} updated", "updated")
    else:
        report.say(f"Grafana: {what} unchanged", "unchanged")

    status, _ = await api.call("GET", f"/api/folders/{folder_uid}")
    if status == 404:
        await api.call("POST", "/api/folders", {"uid": folder_uid, "title": folder_title})
        report.say(f"Grafana: folder {folder_title!r} created", "created")
    else:
        report.say(f"Grafana: folder {folder_title!r} (uid {folder_uid}) exists", "unchanged")

    for dash in dashboards:
        path = f"/api/dashboards/uid/{dash['uid']}"
        status, stored = await api.call("GET", path)
        what = f"dashboard {dash['title']!r} (uid {dash['uid']})"
        if (status == 200 and _comparable(stored["dashboard"]) == _comparable(dash)
                and stored.get("meta", {}).get("folderUid") == folder_uid):
            report.say(f"Grafana: {what} unchanged", "unchanged")
            continue
        body = {"dashboard": {**copy.deepcopy(dash), "id": None}, "folderUid": folder_uid,
                "overwrite": True, "message": "hekapy dashboards install"}
        await api.call("POST", "/api/dashboards/db", body)
        report.say(f"Grafana: {what} {'created' if status == 404 else 'updated'}",
                   "created" if status == 404 else "updated")


# --- Kibana / OpenSearch Dashboards ------------------------------------------------------

def kibana_headers(creds: Credentials, opensearch: bool) -> dict[str, str]:
    headers = {"osd-xsrf" if opensearch else "kbn-xsrf": "true"}
    if creds.token:
        headers["Authorization"] = f"ApiKey {creds.token}"
    elif creds.username or creds.password:
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return headers


def load_saved_objects(directory: Path) -> dict[str, tuple[bytes, list[dict[str, Any]]]]:
    """file name → (its bytes, its objects without the export summary line)."""
    files = sorted(directory.glob("*.ndjson"))
    if not files:
        raise InstallError(f"no saved objects (*.ndjson) in {directory}")
    out = {}
    for f in files:
        raw = f.read_bytes()
        try:
            objects = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except ValueError as e:
            raise InstallError(f"{f}: not NDJSON: {e}") from None
        out[f.name] = (raw, [o for o in objects if "exportedCount" not in o])
    return out


def _contains(stored: Any, wanted: Any) -> bool:
    """Whether `stored` holds everything `wanted` says (servers add keys on import,
    migrations among them); attributes that are JSON text are compared as JSON."""
    if isinstance(wanted, dict):
        return isinstance(stored, dict) and all(
            k in stored and _contains(stored[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(stored, list) and len(stored) == len(wanted)
                and all(_contains(s, w) for s, w in zip(stored, wanted, strict=True)))
    if isinstance(wanted, str) and isinstance(stored, str) and wanted[:1] in "{[":
        try:
            return _contains(json.loads(stored), json.loads(wanted))
        except ValueError:
            pass
    return stored == wanted


def _same_object(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    refs = {(r["name"], r["type"], r["id"]) for r in stored.get("references", [])}
    return ("error" not in stored and _contains(stored.get("attributes"),
                                                wanted["attributes"])
            and refs == {(r["name"], r["type"], r["id"]) for r in wanted["references"]})


async def install_kibana(api: Api, files: dict[str, tuple[bytes, list[dict[str, Any]]]],
                         report: Report) -> None:
    for name, (raw, objects) in files.items():
        try:
            status, got = await api.call("POST", "/api/saved_objects/_bulk_get",
                                         [{"type": o["type"], "id": o["id"]}
                                          for o in objects])
        except InstallError as e:
            if "xsrf" in str(e):  # Kibana wants kbn-xsrf, OpenSearch Dashboards osd-xsrf
                raise InstallError(f"{e} (is it {'Kibana' if 'kbn-xsrf' in str(e) else ''}"
                                   f"{'OpenSearch Dashboards' if 'osd-xsrf' in str(e) else ''}"
                                   "? --opensearch-dashboards chooses the header)") from None
            raise
        stored = got.get("saved_objects", []) if status == 200 and isinstance(got, dict) \
            else []
        if len(stored) == len(objects) and all(
                _same_object(s, o) for s, o in zip(stored, objects, strict=True)):
            report.say(f"{api.product}: {name} ({len(objects)} objects) unchanged",
                       "unchanged")
            continue
        form = aiohttp.FormData()
        form.add_field("file", raw, filename=name, content_type="application/ndjson")
        status, reply = await api.call("POST", "/api/saved_objects/_import?overwrite=true",
                                       data=form)
        if status != 200 or not isinstance(reply, dict) or not reply.get("success"):
            errors = reply.get("errors") if isinstance(reply, dict) else reply
            raise InstallError(f"{api.product} at {api.base}: importing {name} failed: "
                               f"{json.dumps(errors)[:400]}")
        report.say(f"{api.product}: {name} imported ({reply.get('successCount')} objects)",
                   "imported")


# --- the command --------------------------------------------------------------------------

def shipped(subdir: str) -> Path:
    return Path(str(importlib.resources.files("hekapy.conf").joinpath(subdir)))


@dataclass
class Plan:
    grafana_url: str | None
    kibana_url: str | None
    opensearch_dashboards: bool
    kibana_space: str
    dashboards_dir: Path
    saved_objects_dir: Path
    influxdb_url: str
    influxdb_database: str
    datasource_uid: str | None
    datasource_name: str
    folder_uid: str
    folder_title: str
    credentials_file: str | None
    ca_file: str | None
    insecure: bool


async def install(plan: Plan) -> int:
    report = Report()
    try:
        creds = load_credentials(plan.credentials_file)
        report.secrets = [s for c in creds.values() for s in c.secrets()]
        for url in (plan.grafana_url, plan.kibana_url):
            if url and urlsplit(url).password:
                report.secrets.append(urlsplit(url).password or "")
        dashboards = load_dashboards(plan.dashboards_dir) if plan.grafana_url else []
        saved = load_saved_objects(plan.saved_objects_dir) if plan.kibana_url else {}
        connector = aiohttp.TCPConnector(ssl=ssl_context(plan.ca_file, plan.insecure))
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=60)) as s:
            if plan.grafana_url:
                api = Api("Grafana", plan.grafana_url, s, grafana_headers(creds["grafana"]),
                          "HEKAPY_GRAFANA_TOKEN or HEKAPY_GRAFANA_USERNAME/PASSWORD "
                          "(or [grafana] in the credentials file)")
                influx = creds["influxdb"]
                datasource = Datasource(datasource_uid(dashboards, plan.datasource_uid),
                                        plan.datasource_name, plan.influxdb_url,
                                        plan.influxdb_database, influx.username,
                                        influx.password)
                await install_grafana(api, datasource, dashboards, plan.folder_uid,
                                      plan.folder_title, report)
            if plan.kibana_url:
                product = ("OpenSearch Dashboards" if plan.opensearch_dashboards
                           else "Kibana")
                url = plan.kibana_url.rstrip("/")
                if plan.kibana_space:
                    url += f"/s/{plan.kibana_space}"
                api = Api(product, url, s, kibana_headers(creds["kibana"],
                                                          plan.opensearch_dashboards),
                          "HEKAPY_KIBANA_USERNAME/PASSWORD or HEKAPY_KIBANA_API_KEY (or "
                          "[kibana] in the credentials file)")
                await install_kibana(api, saved, report)
    except InstallError as e:
        click.echo(report.scrub(f"error: {e}"), err=True)
        return EXIT_FAILED
    if report.changed:
        report.say(f"done: {report.changed} changed, {report.unchanged} already as shipped")
    else:
        report.say(f"done: nothing changed ({report.unchanged} already as shipped)")
    return 0
