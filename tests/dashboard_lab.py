"""A small cloud whose series fill a real InfluxDB through hekapy, for the Grafana
dashboards' proof (tests/conf/test_grafana_dashboards.py) and pictures
(scripts/render-dashboards). Everything is real except the OpenStack services, whose
log lines are written with oslo.log's own formatter:

- the shipped LMA pair, conf/lma_log_collector.toml and conf/lma_metric_collector.toml,
  as two `hekapy run` processes, patched only for paths, ports, URLs and ticker
  intervals (seconds instead of LMA's 10 s and 60 s);
- API and error lines of Nova, Neutron, Glance, Cinder and Heat (oslo.log), and
  Keystone's Apache access log, read by the log_collector's logstreamers, through its
  HttpMetricsFilter and LogCounterFilter, to the metric_collector;
- HAProxy: the controllers' proxies under LMA's names, one backend with a dead server,
  and two tenant load balancers laid out as the Neutron LBaaS agent does (a v2 load
  balancer with a dead member, a v1 pool), all with real HTTP traffic (2xx, 4xx, 5xx);
- collectd (cpu, memory, load, processes, df, disk, netlink, swap, users, and virt on
  libvirt's built-in test hypervisor, `test:///default`, whose guest is a real domain
  to collectd) posting write_http JSON to the metric_collector;
- both collectors' HekapyStatsInput.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hekapy.benchmarks.es_double import EsDouble
from tests.services import (
    InfluxDB,
    collectd,
    free_port,
    haproxy,
    influxdb,
    stop_process,
    wait_for_port,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
HEKAPY = [sys.executable, "-m", "hekapy.collector.app.cli", "run", "-c"]
HOST = "node-1"  # collectd's Hostname in tests/services.py: one node for every source
ENVIRONMENT = "env-42"
ENV = {"HOSTNAME": HOST, "HEKAPY_DEPLOYMENT_ID": "42", "INFLUXDB_PASSWORD": "lab-password",
       "TZ": "UTC"}
# API requests per round: (method, path, status), the 5xx share per service.
REQUESTS = {
    "nova": [("GET", "/v2.1/servers/detail", 200), ("POST", "/v2.1/servers", 202),
             ("DELETE", "/v2.1/servers/{id}", 204), ("GET", "/v2.1/flavors/42", 404)],
    "neutron": [("GET", "/v2.0/networks", 200), ("POST", "/v2.0/ports", 201),
                ("PUT", "/v2.0/ports/{id}", 200), ("GET", "/v2.0/ports/{id}", 404)],
    "glance": [("GET", "/v2/images", 200), ("POST", "/v2/images", 201),
               ("PATCH", "/v2/images/{id}", 200), ("GET", "/v2/images/{id}", 404)],
    "cinder": [("GET", "/v3/{id}/volumes/detail", 200), ("POST", "/v3/{id}/volumes", 202),
               ("DELETE", "/v3/{id}/volumes/{id}", 202)],
    "heat": [("GET", "/v1/{id}/stacks", 200), ("POST", "/v1/{id}/stacks", 201),
             ("DELETE", "/v1/{id}/stacks/s/{id}", 204)],
    "keystone": [("POST", "/v3/auth/tokens", 201), ("GET", "/v3/auth/tokens", 200),
                 ("GET", "/v3/projects", 200), ("POST", "/v3/auth/tokens", 401)],
}
# Nova answers 5xx to a quarter of its requests, the others to one in 40: the API 5xx
# alert fires for nova only. Nova also logs errors, glance none: the log-error alert
# fires for nova, not for glance.
FIVE_XX_EVERY = {"nova": 4}
ERRORS_PER_ROUND = {"nova": 2, "neutron": 1, "cinder": 1, "heat": 1, "glance": 0}
LOG_FILES = {"nova": "nova/nova-api.log", "neutron": "neutron/server.log",
             "glance": "glance/api.log", "cinder": "cinder/cinder-api.log",
             "heat": "heat/heat-api.log"}
# The controllers' HAProxy proxies under the names LMA's haproxy.cfg gave them (the
# collector renames them: nova-api-2 → nova-api, keystone-1 → keystone-public-api, ...).
CONTROLLER_PROXIES = ("nova-api-2", "neutron", "keystone-1", "glance-api", "cinder-api",
                      "heat-api")


def replace(text: str, old: str, new: str, count: int = 1) -> str:
    """`text` with `old` replaced; fails when the shipped config no longer has it."""
    assert text.count(old) == count, f"{old!r} appears {text.count(old)} times, not {count}"
    return text.replace(old, new)


class OsloLines:
    """OpenStack service logs written by oslo.log's ContextFormatter, in UTC."""

    def __init__(self, logs: Path, seed: int = 7) -> None:
        from oslo_config import cfg
        from oslo_context import context
        from oslo_log import formatters
        from oslo_log import log as oslo_log
        conf = cfg.ConfigOpts()
        oslo_log.register_options(conf)
        conf([], project="hekapy-lab")
        self.formatter = formatters.ContextFormatter(config=conf, project="nova",
                                                     datefmt="%Y-%m-%d %H:%M:%S")
        self.formatter.converter = time.gmtime
        self.context = context
        self.logs = logs
        self.rng = random.Random(seed)
        self.requests: dict[str, int] = {}  # per service, so far

    def _line(self, name: str, level: int, msg: str, pid: int) -> str:
        store = self.context._request_store
        before = getattr(store, "context", None)
        ctx = self.context.RequestContext(request_id=f"req-{uuid.uuid4()}",
                                          user_id=uuid.uuid4().hex,
                                          project_id=uuid.uuid4().hex, overwrite=False)
        if before is None and getattr(store, "context", None) is not None:
            del store.context  # oslo.context keeps it as the thread's: leave none
        rec = logging.LogRecord(name, level, __file__, 1, msg, None, None)
        rec.created = time.time()
        rec.msecs = int(rec.created * 1000) % 1000
        rec.process = pid
        rec.context = ctx
        return self.formatter.format(rec) + "\n"

    def access(self, service: str, method: str, path: str, status: int, seconds: float
               ) -> str:
        path = path.replace("{id}", uuid.uuid4().hex)
        size = self.rng.randint(200, 9000)
        if service in ("glance", "heat", "neutron"):
            # eventlet's wsgi log format (glance-api, heat-api, neutron-server)
            stamp = time.strftime("%d/%b/%Y %H:%M:%S", time.gmtime())
            logger = "neutron.wsgi" if service == "neutron" else "eventlet.wsgi.server"
            msg = (f'10.20.0.{self.rng.randint(2, 250)} - - [{stamp}] "{method} {path} '
                   f'HTTP/1.1" {status} {size} {seconds:.6f}')
        else:
            logger = ("nova.osapi_compute.wsgi.server" if service == "nova"
                      else "cinder.api.openstack.wsgi")
            msg = (f'10.20.0.{self.rng.randint(2, 250)} "{method} {path} HTTP/1.1" '
                   f"status: {status} len: {size} time: {seconds:.7f}")
        return self._line(logger, logging.INFO, msg, 2000 + len(service))

    def keystone_access(self, method: str, path: str, status: int, seconds: float) -> str:
        """Keystone under Apache (the log_collector's keystone_wsgi pattern, %D in µs)."""
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        return (f'10.20.0.{self.rng.randint(2, 250)} - - [{stamp}] "{method} {path} '
                f'HTTP/1.1" {status} {self.rng.randint(100, 6000)} '
                f'{int(seconds * 1e6)} "-" "python-keystoneclient"\n')

    def round(self, scale: int = 2) -> None:
        """One round of API traffic (each request `scale` times) and log lines for
        every service."""
        out: dict[Path, list[str]] = {}
        for service, requests in REQUESTS.items():
            lines = []
            every = FIVE_XX_EVERY.get(service, 40)
            for method, path, status in requests * scale:
                n = self.requests[service] = self.requests.get(service, 0) + 1
                if n % every == 0:
                    status = 503
                seconds = self.rng.lognormvariate(-2.5, 0.6)
                if service == "keystone":
                    lines.append(self.keystone_access(method, path, status, seconds))
                else:
                    lines.append(self.access(service, method, path, status, seconds))
            if service == "keystone":
                out[self.logs / "apache2" / "keystone_wsgi_main_access.log"] = lines
                continue
            name = f"{service}.api"
            for _ in range(ERRORS_PER_ROUND.get(service, 0)):
                lines.append(self._line(name, logging.ERROR, "Unexpected exception in API "
                                        f"method: backend {uuid.uuid4()} unreachable", 2001))
            lines.append(self._line(name, logging.WARNING, "Quota usage close to limit", 2001))
            lines.append(self._line(name, logging.DEBUG, "Calling method 'list'", 2001))
            out[self.logs / LOG_FILES[service]] = lines
        for path, lines in out.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write("".join(lines))


# --- HAProxy ----------------------------------------------------------------------------

async def http_backends() -> tuple[dict[str, web.AppRunner], dict[str, int]]:
    """Three members: one answers 200, one 404 for /missing, one 503."""
    async def ok(request: web.Request) -> web.Response:
        if request.path.startswith("/missing"):
            return web.Response(status=404, text="no such thing")
        return web.Response(text="ok")

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=503, text="overloaded")

    runners, ports = {}, {}
    for name, handler in (("ok", ok), ("ok2", ok), ("failing", failing)):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners[name] = runner
        ports[name] = port
    return runners, ports


HAPROXY_DEFAULTS = """defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
"""


def controller_cfg(sock: Path, fronts: dict[str, int], ports: dict[str, int]) -> str:
    parts = [f"global\n    stats socket {sock} mode 600 level admin\n    maxconn 256\n",
             HAPROXY_DEFAULTS]
    dead = free_port()  # nothing listens: a server the health check finds down
    for proxy in CONTROLLER_PROXIES:
        servers = (f"    server node-1 127.0.0.1:{ports['ok']} check inter 200ms\n"
                   f"    server node-2 127.0.0.1:{ports['ok2']} check inter 200ms\n")
        if proxy == "heat-api":
            servers += f"    server node-3 127.0.0.1:{dead} check inter 200ms\n"
        if proxy == "cinder-api":
            servers = f"    server node-1 127.0.0.1:{ports['failing']} check inter 200ms\n"
        parts.append(f"listen {proxy}\n    bind 127.0.0.1:{fronts[proxy]}\n"
                     f"    option httpchk GET /\n    balance roundrobin\n{servers}")
    return "".join(parts)


def lb_cfg(sock: Path, name: str, front: int, members: list[int]) -> str:
    servers = "".join(f"    server member-{i + 1} 127.0.0.1:{port} check inter 200ms\n"
                      for i, port in enumerate(members))
    return (f"global\n    stats socket {sock} mode 600 level admin\n    maxconn 64\n"
            f"{HAPROXY_DEFAULTS}frontend fe_{name}\n    bind 127.0.0.1:{front}\n"
            f"    default_backend be_{name}\nbackend be_{name}\n    balance roundrobin\n"
            f"    option httpchk GET /\n{servers}")


# --- the lab ------------------------------------------------------------------------------

class _Poll:
    """An asyncio subprocess seen as a Popen for `poll()`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    def poll(self) -> int | None:
        return self.proc.returncode

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


@dataclass
class Lab:
    db: InfluxDB
    status_urls: dict[str, str]
    loadbalancer_id: str
    pool_id: str
    tmp: Path
    lines: OsloLines
    frontends: list[int]  # every HAProxy frontend port (controllers' and tenants')
    backends: dict[str, web.AppRunner]  # the HTTP servers behind HAProxy, by name
    procs: dict[str, _Poll] = field(default_factory=dict)

    async def stop_backend(self, name: str) -> None:
        """Stops one HTTP server behind HAProxy (ok2: the second server of every
        controller backend and member-2 of the v1 pool)."""
        await self.backends[name].cleanup()

    async def query(self, q: str, db: str = "lma") -> list[dict[str, Any]]:
        """The raw series of an InfluxQL query (InfluxDB's JSON); AssertionError with
        InfluxDB's message for a query it refuses."""
        async with aiohttp.ClientSession() as s, s.post(
                self.db.url + "/query", data={"q": q, "db": db, "epoch": "ms"}) as r:
            body = await r.json()
        if "results" not in body:
            raise AssertionError(f"InfluxDB refused {q!r}: {body.get('error', body)}")
        result = body["results"][0]
        if "error" in result:
            raise AssertionError(f"InfluxDB refused {q!r}: {result['error']}")
        return result.get("series", [])

    async def metrics(self) -> dict[str, str]:
        """Each collector's Prometheus /metrics text."""
        out = {}
        async with aiohttp.ClientSession() as s:
            for name, url in self.status_urls.items():
                async with s.get(url + "/metrics") as r:
                    assert r.status == 200, f"{name} /metrics: {r.status}"
                    out[name] = await r.text()
        return out

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.tmp / "hekapy.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {proc.returncode}: {log}")


def _patched_configs(tmp: Path, logs: Path, short: Path, tcp: int, collectd_port: int,
                     status: dict[str, int], tick: float) -> tuple[Path, Path]:
    text = (CONF / "lma_log_collector.toml").read_text()
    text = replace(text, '"/var/cache/log_collector"', f'"{tmp / "log_collector"}"')
    text = text.replace('"/var/log', f'"{logs}')
    text = replace(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{tcp}"')
    text = replace(text, "[hekad]\n",
                   f'[hekad]\nstatus_address = "127.0.0.1:{status["log_collector"]}"\n')
    text = replace(text, "ticker_interval = 10\npercentile", f"ticker_interval = {tick}\n"
                   "percentile")
    text = replace(text, "ticker_interval = 60\n", f"ticker_interval = {tick}\n")
    text = replace(text, 'type = "HekapyStatsInput"\nticker_interval = 10',
                   f'type = "HekapyStatsInput"\nticker_interval = {tick}')
    log_conf = tmp / "log_collector.toml"
    log_conf.write_text(text)

    text = (CONF / "lma_metric_collector.toml").read_text()
    text = replace(text, '"/var/cache/metric_collector"', f'"{tmp / "metric_collector"}"')
    text = replace(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{tcp}"')
    text = replace(text, 'address = "127.0.0.1:8325"', f'address = "127.0.0.1:{collectd_port}"')
    text = replace(text, 'status_address = "127.0.0.1:4353"',
                   f'status_address = "127.0.0.1:{status["metric_collector"]}"')
    text = replace(text, '"/var/lib/', f'"{short}/', count=3)
    text = replace(text, 'haproxy_stats.sock"]\nticker_interval = 10',
                   f'haproxy_stats.sock"]\nticker_interval = {tick}')
    text = replace(text, 'type = "HekapyStatsInput"\nticker_interval = 10',
                   f'type = "HekapyStatsInput"\nticker_interval = {tick}')
    metric_conf = tmp / "metric_collector.toml"
    metric_conf.write_text(text)
    return log_conf, metric_conf


COLLECTD_PLUGINS = ("cpu", "memory", "load", "processes", "df", "disk", "netlink", "swap",
                    "users", "virt")
COLLECTD_CONFIG = """
<Plugin processes>
  ProcessMatch "hekapy" "hekapy.collector.app.cli"
</Plugin>
<Plugin df>
  ValuesPercentage true
</Plugin>
<Plugin netlink>
  Interface "lo"
</Plugin>
<Plugin virt>
  Connection "test:///default"
  HostnameFormat uuid
  RefreshInterval 60
</Plugin>
"""


@contextlib.asynccontextmanager
async def running_lab(tmp: Path, tick: float = 1.0) -> AsyncIterator[Lab]:
    """Every source running and shipping through the two collectors into InfluxDB;
    `traffic(lab, rounds, pace)` then makes the API lines and HTTP requests."""
    short = Path(tempfile.mkdtemp(prefix="lab", dir="/tmp"))  # unix socket paths: short
    logs = tmp / "var-log"
    lab_log = tmp / "hekapy.log"
    lb_id, pool_id = str(uuid.uuid4()), str(uuid.uuid4())
    tcp, collectd_port = free_port(), free_port()
    status = {"log_collector": free_port(), "metric_collector": free_port()}
    log_conf, metric_conf = _patched_configs(tmp, logs, short, tcp, collectd_port, status,
                                             tick)
    lines = OsloLines(logs)
    lines.round()  # the files exist before the logstreamers look
    runners, ports = await http_backends()
    fronts = {p: free_port() for p in CONTROLLER_PROXIES}
    lb_front, pool_front = free_port(), free_port()
    sockets = {"controller": short / "haproxy" / "stats",
               "lb": short / "neutron" / "lbaas" / "v2" / lb_id / "haproxy_stats.sock",
               "pool": short / "neutron" / "lbaas" / pool_id / "sock"}
    for s in sockets.values():
        s.parent.mkdir(parents=True, exist_ok=True)
    dirs = {k: tmp / f"haproxy-{k}" for k in sockets}
    for d in dirs.values():
        d.mkdir()
    procs: dict[str, Any] = {}
    collectd_proc = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            db = await stack.enter_async_context(influxdb(tmp / "influxdb"))
            await db.query("CREATE DATABASE lma")
            es = await stack.enter_async_context(EsDouble("opensearch2"))
            await stack.enter_async_context(haproxy(
                controller_cfg(sockets["controller"], fronts, ports), dirs["controller"],
                wait_socket=sockets["controller"]))
            await stack.enter_async_context(haproxy(
                lb_cfg(sockets["lb"], lb_id[:8], lb_front, [ports["ok"], free_port()]),
                dirs["lb"], wait_socket=sockets["lb"]))
            await stack.enter_async_context(haproxy(
                lb_cfg(sockets["pool"], pool_id[:8], pool_front, [ports["ok"], ports["ok2"]]),
                dirs["pool"], wait_socket=sockets["pool"]))
            env = {**os.environ, **ENV, "ES_URL": es.url, "INFLUXDB_URL": db.url}
            with open(lab_log, "ab") as err:
                procs["metric_collector"] = await asyncio.create_subprocess_exec(
                    *HEKAPY, str(metric_conf), env=env, stdout=asyncio.subprocess.DEVNULL,
                    stderr=err)
            lab = Lab(db, {k: f"http://127.0.0.1:{p}" for k, p in status.items()},
                      lb_id, pool_id, tmp, lines,
                      [*fronts.values(), lb_front, pool_front], runners)
            await wait_for_port(tcp, _Poll(procs["metric_collector"]),  # type: ignore[arg-type]
                                timeout=60, log=lab_log)
            with open(lab_log, "ab") as err:
                procs["log_collector"] = await asyncio.create_subprocess_exec(
                    *HEKAPY, str(log_conf), env=env, stdout=asyncio.subprocess.DEVNULL,
                    stderr=err)
            lab.procs = {k: _Poll(p) for k, p in procs.items()}
            collectd_proc = await collectd(tmp / "collectd",
                                           f"http://127.0.0.1:{collectd_port}/",
                                           interval=tick, plugins=COLLECTD_PLUGINS,
                                           plugin_config=COLLECTD_CONFIG)
            yield lab
    finally:
        if collectd_proc is not None:
            await stop_process(collectd_proc)
        for p in procs.values():
            if p.returncode is None:
                p.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.wait(), 30)
                if p.returncode is None:
                    p.kill()
                    await p.wait()
        for r in runners.values():
            await r.cleanup()
        shutil.rmtree(short, ignore_errors=True)


async def traffic(lab: Lab, rounds: int, pace: float, varying: bool = False) -> None:
    """`rounds` rounds, `pace` seconds apart (a load, not a wait for anything): API log
    lines, and HTTP requests through every HAProxy frontend (2xx, 4xx, 5xx). `varying`
    makes the load rise and fall (the pictures)."""
    async with aiohttp.ClientSession() as s:
        for i in range(rounds):
            lab.check_alive()
            scale = 2 + round(2 * math.sin(i / 6)) if varying else 2
            lab.lines.round(scale)
            for port in lab.frontends:
                for path in ["/", "/missing" if i % 2 else "/"] * (scale // 2 + 1):
                    with contextlib.suppress(aiohttp.ClientError):
                        async with s.get(f"http://127.0.0.1:{port}{path}") as r:
                            await r.read()
            await asyncio.sleep(pace)
