"""Demo OpenStack logs for the quickstart: realistic lines, written continuously.

`hekapy quickstart` runs a `DemoLogWriter` beside the collector so an operator can watch
hekapy tail, rotate-follow and decode logs without any OpenStack. The line generators
are pure and seeded (`generate(service, rng, now)`), so the benchmark corpus can reuse
them; the writer only appends whole lines and rotates files like logrotate's `create`.

Formats (docs/compatibility.md, "LMA decoders"; the captures in tests/data/lab):
- oslo.log default/context format for nova-api, nova-compute, neutron server and the
  neutron LBaaS agent, including wsgi access lines and multi-line tracebacks;
- Keystone's Apache WSGI access log; HAProxy httplog lines as received over syslog.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# service → file under the demo directory (the names LMA's logstreamers match)
FILES = {
    "nova-api": "nova/nova-api.log",
    "nova-compute": "nova/nova-compute.log",
    "neutron-server": "neutron/server.log",
    "lbaas-agent": "neutron/lbaas-agent.log",
    "keystone": "apache2/keystone_wsgi_main_access.log",
    "haproxy": "haproxy.log",
}
# relative weight of each service in the mix
WEIGHTS = {"nova-api": 5, "nova-compute": 3, "neutron-server": 3, "lbaas-agent": 1,
           "keystone": 3, "haproxy": 4}

_USERS = ["8f1c2a7e9b3d4e5f8f1c2a7e9b3d4e5f", "4a5b6c7d8e9f40a1b2c3d4e5f6a7b8c9"]
_TENANTS = ["0b1d2c3e4f5a6b7c0b1d2c3e4f5a6b7c", "9e8d7c6b5a4f4e3d2c1b0a9f8e7d6c5b"]
_HOSTS = ["node-1", "node-2", "node-3"]


def _oslo_time(now: float) -> str:
    ms = int(now * 1000) % 1000
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{ms:03d}"


def _req(rng: random.Random) -> str:
    return f"req-{_uuid(rng)}"


def _context(rng: random.Random) -> str:
    return f"[{_req(rng)} {rng.choice(_USERS)} {rng.choice(_TENANTS)} - - -]"


def _level(rng: random.Random) -> str:
    return rng.choices(["DEBUG", "INFO", "WARNING", "ERROR"], [10, 80, 8, 2])[0]


def _oslo(now: float, pid: int, level: str, module: str, context: str, msg: str) -> str:
    return f"{_oslo_time(now)} {pid} {level} {module} {context} {msg}"


def _traceback(now: float, pid: int, module: str, context: str, exc: str) -> list[str]:
    """LOG.exception() as oslo.log writes it: the message with the request context,
    then the traceback, each line with `logging_exception_prefix` (no context)."""
    frames = ["Traceback (most recent call last):",
              f'  File "/usr/lib/python3/dist-packages/{module.replace(".", "/")}.py", '
              "line 214, in _process",
              "    result = self._driver.execute(context, payload)",
              exc]
    prefix = f"{_oslo_time(now)} {pid} ERROR {module}"
    return [_oslo(now, pid, "ERROR", module, context,
                  f"Unexpected error while processing the request: {exc}"),
            *(f"{prefix} {f}" for f in frames)]


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _nova_api(rng: random.Random, now: float) -> list[str]:
    ctx = _context(rng)
    if rng.random() < 0.7:
        method, url, status = rng.choice([
            ("GET", "/v2.1/servers/detail", 200), ("GET", "/v2.1/flavors", 200),
            ("POST", "/v2.1/servers", 202), ("DELETE", f"/v2.1/servers/{_uuid(rng)}", 204),
            ("GET", "/v2.1/os-hypervisors", 403)])
        ip = f"192.168.0.{rng.randint(2, 250)}"
        return [_oslo(now, 2310, "INFO", "nova.osapi_compute.wsgi.server", ctx,
                      f'{ip} "{method} {url} HTTP/1.1" status: {status} '
                      f"len: {rng.randint(200, 9000)} time: {rng.uniform(0.01, 1.5):.7f}")]
    level = _level(rng)
    if level == "ERROR":
        return _traceback(now, 2310, "nova.api.openstack.wsgi", ctx,
                          "oslo_db.exception.DBConnectionError: (pymysql.err.OperationalError)"
                          " (2013, 'Lost connection to MySQL server during query')")
    return [_oslo(now, 2310, level, "nova.api.openstack.compute.servers", ctx,
                  rng.choice(["Fetching server list", "Quota check passed for instances",
                              "Returning 3 servers after filtering"]))]


def _nova_compute(rng: random.Random, now: float) -> list[str]:
    inst = _uuid(rng)
    level = _level(rng)
    if level == "ERROR":
        return _traceback(now, 4417, "nova.compute.manager", _context(rng),
                          "libvirt.libvirtError: Requested operation is not valid: "
                          "domain is not running")
    msg = rng.choice([f"[instance: {inst}] Took {rng.uniform(2, 40):.2f} seconds to spawn "
                      "the instance on the hypervisor.",
                      "Final resource view: phys_ram=64317MB used_ram=8704MB",
                      f"[instance: {inst}] Terminating instance"])
    ctx = "[-]" if "resource view" in msg else _context(rng)
    return [_oslo(now, 4417, level, "nova.compute.manager", ctx, msg)]


def _neutron_server(rng: random.Random, now: float) -> list[str]:
    ctx = _context(rng)
    if rng.random() < 0.6:
        method, url, status = rng.choice([("GET", "/v2.0/ports?device_id=x", 200),
                                          ("POST", "/v2.0/floatingips", 201),
                                          ("GET", "/v2.0/networks", 200)])
        return [_oslo(now, 1822, "INFO", "neutron.wsgi", ctx,
                      f'10.20.0.{rng.randint(2, 9)} "{method} {url} HTTP/1.1" {status} '
                      f"{rng.randint(300, 5000)} {rng.uniform(0.005, 0.9):.6f}")]
    return [_oslo(now, 1822, _level(rng), "neutron.db.agents_db", ctx,
                  rng.choice(["Agent healthcheck: found 0 dead agents",
                              "Port 7a1b binding to host node-2 committed"]))]


def _lbaas_agent(rng: random.Random, now: float) -> list[str]:
    lb = _uuid(rng)
    pool = _uuid(rng)
    mod = "neutron_lbaas.drivers.haproxy.namespace_driver"
    level = _level(rng)
    if level == "ERROR":
        return _traceback(now, 12731, mod, _context(rng),
                          f"KeyError: 'pool {pool} has no members'")
    return [_oslo(now, 12731, level, mod, _context(rng), rng.choice([
        f"Deploying loadbalancer {lb} with {rng.randint(1, 4)} members",
        f"Stats for pool {pool} collected",
        f"Member 10.0.0.{rng.randint(2, 50)}:80 of pool {pool} marked DOWN by health monitor"]))]


def _keystone(rng: random.Random, now: float) -> list[str]:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
    method, url, status = rng.choice([("POST", "/v3/auth/tokens", 201),
                                      ("GET", "/v3/auth/tokens", 200),
                                      ("GET", "/v3/projects", 200),
                                      ("POST", "/v3/auth/tokens", 401)])
    return [f'192.168.0.{rng.randint(2, 250)} - - [{stamp}] "{method} {url} HTTP/1.1" '
            f'{status} {rng.randint(100, 6000)} {rng.randint(2000, 900000)} "-" '
            '"python-keystoneclient"']


def _haproxy(rng: random.Random, now: float) -> list[str]:
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(now))
    accept = time.strftime("%d/%b/%Y:%H:%M:%S", time.localtime(now))
    backend, url = rng.choice([("nova-api", "/v2.1/servers/detail"),
                               ("keystone-1", "/v3/auth/tokens"),
                               ("neutron", "/v2.0/networks")])
    status = rng.choices([200, 201, 404, 503], [80, 10, 7, 3])[0]
    tr = rng.randint(1, 900)
    return [f"{stamp} {rng.choice(_HOSTS)} haproxy[{rng.randint(1000, 3000)}]: "
            f"192.168.0.{rng.randint(2, 250)}:{rng.randint(30000, 60000)} "
            f"[{accept}.{rng.randint(0, 999):03d}] {backend} {backend}/node-{rng.randint(1, 3)} "
            f"0/0/1/{tr}/{tr + 1} {status} {rng.randint(200, 9000)} - - ---- "
            f"{rng.randint(1, 30)}/{rng.randint(1, 30)}/0/0/0 0/0 \"GET {url} HTTP/1.1\""]


GENERATORS: dict[str, Callable[[random.Random, float], list[str]]] = {
    "nova-api": _nova_api, "nova-compute": _nova_compute, "neutron-server": _neutron_server,
    "lbaas-agent": _lbaas_agent, "keystone": _keystone, "haproxy": _haproxy}


def generate(service: str, rng: random.Random, now: float) -> list[str]:
    """The lines (without newlines) of one log event of `service`; several for a
    traceback. Deterministic for a given rng state and `now`."""
    return GENERATORS[service](rng, now)


class DemoLogWriter:
    """Appends demo lines to the files of `FILES` under `directory` at `rate` lines/s,
    whole lines only, rotating a file (x.log → x.log.1 → x.log.2 …, like logrotate's
    `create`) when it exceeds `rotate_bytes`."""

    def __init__(self, directory: str | os.PathLike, rate: float = 20.0, seed: int | None = 1,
                 rotate_bytes: int = 1 << 20, keep: int = 5) -> None:
        self.directory = Path(directory)
        self.rate = rate
        self.rng = random.Random(seed)
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self.lines_written = 0
        self._services = list(WEIGHTS)
        self._weights = list(WEIGHTS.values())

    def path(self, service: str) -> Path:
        return self.directory / FILES[service]

    def write_batch(self, events: int, now: float | None = None) -> int:
        """Write `events` log events; returns the number of lines written."""
        now = time.time() if now is None else now
        pending: dict[str, list[str]] = {}
        for _ in range(events):
            service = self.rng.choices(self._services, self._weights)[0]
            pending.setdefault(service, []).extend(generate(service, self.rng, now))
        n = 0
        for service, lines in pending.items():
            path = self.path(service)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                f.write(("\n".join(lines) + "\n").encode())
                size = f.tell()
            n += len(lines)
            if self.rotate_bytes and size > self.rotate_bytes:
                self.rotate(path)
        self.lines_written += n
        return n

    def rotate(self, path: Path) -> None:
        for i in range(self.keep - 1, 0, -1):
            older = path.with_name(f"{path.name}.{i}")
            if older.exists():
                older.rename(path.with_name(f"{path.name}.{i + 1}"))
        path.rename(path.with_name(f"{path.name}.1"))
        path.touch()

    async def run(self, stop: asyncio.Event) -> None:
        """Write at `rate` events per second (in ticks of 0.1 s) until `stop` is set."""
        tick = 0.1
        debt = 0.0
        while not stop.is_set():
            debt += self.rate * tick
            whole = int(debt)
            if whole:
                self.write_batch(whole)
                debt -= whole
            try:
                await asyncio.wait_for(stop.wait(), tick)
            except TimeoutError:
                pass


def write_demo_logs(directory: str, rate: float = 20.0, seed: int = 1,
                    duration: float = 0.0, rotate_bytes: int = 1 << 20) -> int:
    """`hekapy demo`: write demo logs until `duration` seconds passed (0: until SIGINT
    or SIGTERM); returns the number of lines written."""
    writer = DemoLogWriter(directory, rate, seed, rotate_bytes)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if duration:
            loop.call_later(duration, stop.set)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await writer.run(stop)

    asyncio.run(go())
    return writer.lines_written
