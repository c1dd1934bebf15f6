"""A reproducible benchmark corpus: OpenStack logs written by oslo.log's own formatter
(ContextFormatter with oslo.context request contexts, LOG.exception tracebacks exactly
as oslo.log writes them), Keystone's Apache access log, HAProxy httplog lines and
oslo.messaging v2 notification envelopes.

    .venv/bin/python -m hekapy.benchmarks.corpus OUT_DIR --mib 100 --seed 1 \\
        --long-fraction 0.05

The same seed and size give the same bytes (timestamps advance by a fixed step from
2025-11-23T00:00:00Z; no clock, no pid, no hostname of the machine). Layout, as
/var/log on a controller (the LMA log_collector's file_match patterns apply):
nova/nova-api.log, nova/nova-compute.log, neutron/server.log, neutron/lbaas-agent.log,
keystone/keystone-wsgi-public.log (Apache), haproxy.log, and
notifications/notifications.jsonl (one envelope per line). `--long-fraction` of the
oslo.log lines are DEBUG lines carrying a 1-4 KiB payload (the line-length mix).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

START = 1_763_856_000.0  # 2025-11-23T00:00:00Z
STEP = 0.004  # seconds between two events

OSLO_FILES = {  # file → (logger names, project, pid)
    "nova/nova-api.log": (("nova.api.openstack.wsgi", "nova.osapi_compute.wsgi.server",
                           "nova.api.openstack.compute.servers"), "nova", 2310),
    "nova/nova-compute.log": (("nova.compute.manager", "nova.virt.libvirt.driver",
                               "nova.compute.resource_tracker"), "nova", 4417),
    "neutron/server.log": (("neutron.wsgi", "neutron.plugins.ml2.plugin",
                            "neutron.db.agents_db"), "neutron", 12031),
    "neutron/lbaas-agent.log": (("neutron_lbaas.agent.agent_manager",
                                 "neutron_lbaas.drivers.haproxy.namespace_driver"),
                                "neutron", 12731),
}
# Share of events per destination (logs by volume on a busy controller).
WEIGHTS = {"nova/nova-api.log": 30, "nova/nova-compute.log": 15, "neutron/server.log": 20,
           "neutron/lbaas-agent.log": 8, "keystone": 12, "haproxy": 12, "notifications": 3}


def _oslo_formatter() -> logging.Formatter:
    from oslo_config import cfg
    from oslo_log import formatters, log
    conf = cfg.ConfigOpts()
    log.register_options(conf)
    conf([], project="hekapy-corpus")
    return formatters.ContextFormatter(config=conf, project="nova",
                                       datefmt="%Y-%m-%d %H:%M:%S")


# Exceptions raised and caught in code "from" nova's wsgi.py, so the traceback lines
# are the same on every machine (no path of this checkout in them).
_WSGI = "/usr/lib/python3/dist-packages/nova/api/openstack/wsgi.py"
_namespace: dict[str, Any] = {}
exec(compile("import sys\n"
             "def _process(error):\n"
             "    raise error\n"
             "def capture(error):\n"
             "    try:\n"
             "        _process(error)\n"
             "    except Exception:\n"
             "        return sys.exc_info()\n", _WSGI, "exec"), _namespace)
capture_exception = _namespace["capture"]


def _hex(rng: random.Random, n: int = 32) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Corpus:
    """Writes the corpus; `write(directory, size)` returns bytes and lines per file."""

    def __init__(self, seed: int = 1, long_fraction: float = 0.05) -> None:
        from oslo_context import context
        self.rng = random.Random(seed)
        self.long_fraction = long_fraction
        self.formatter = _oslo_formatter()
        self.context = context
        self.users = [_hex(self.rng) for _ in range(8)]
        self.projects = [_hex(self.rng) for _ in range(5)]
        self.t = START

    def _ctx(self) -> Any:
        rng = self.rng
        store = self.context._request_store
        before = getattr(store, "context", None)
        ctx = self.context.RequestContext(user_id=rng.choice(self.users),
                                          project_id=rng.choice(self.projects),
                                          request_id="req-" + _uuid(rng), overwrite=False)
        # oslo.context keeps a context as the thread's current one when there is none
        # (even with overwrite=False), and oslo.log then prints it on every later line
        # logged without a context: leave the process as it was.
        if before is None and getattr(store, "context", None) is not None:
            del store.context
        return ctx

    def _record(self, name: str, level: int, msg: str, pid: int, ctx: Any,
                exc_info: Any = None) -> str:
        rec = logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)
        rec.created = self.t
        rec.msecs = int(self.t * 1000) % 1000
        rec.process = pid
        rec.context = ctx
        return self.formatter.format(rec) + "\n"

    def oslo_event(self, path: str) -> str:
        rng = self.rng
        names, _project, pid = OSLO_FILES[path]
        name = rng.choice(names)
        ctx = self._ctx()
        roll = rng.random()
        if roll < self.long_fraction:
            blob = json.dumps({"servers": [{"id": _uuid(rng), "status": "ACTIVE",
                                            "name": f"vm-{rng.randint(1, 9999)}"}
                                           for _ in range(rng.randint(10, 40))]})
            return self._record(name, logging.DEBUG, f"Response body: {blob}", pid, ctx)
        if roll < self.long_fraction + 0.01:
            exc_info = capture_exception(KeyError(f"port {_uuid(rng)} not found"))
            return self._record(name, logging.ERROR, "Unexpected exception in API method",
                                pid, ctx, exc_info)
        if "wsgi" in name and rng.random() < 0.7:
            method, url, status = rng.choice([
                ("GET", "/v2.1/servers/detail", 200), ("POST", "/v2.1/servers", 202),
                ("GET", "/v2.0/ports?device_id=" + _uuid(rng), 200),
                ("DELETE", "/v2.1/servers/" + _uuid(rng), 204),
                ("GET", "/v2.1/flavors/42", 404)])
            msg = (f'192.168.0.{rng.randint(2, 250)} "{method} {url} HTTP/1.1" status: '
                   f"{status} len: {rng.randint(200, 9000)} time: "
                   f"{rng.random() * 2:.7f}")
            return self._record(name, logging.INFO, msg, pid, ctx)
        level = rng.choices([logging.INFO, logging.WARNING, logging.DEBUG],
                            [70, 5, 25])[0]
        msg = rng.choice([
            f"Instance {_uuid(rng)} spawned successfully in {rng.random() * 30:.2f} seconds",
            f"Port {_uuid(rng)} updated; status ACTIVE",
            f"Updating load balancer {_uuid(rng)} (pool {_uuid(rng)}): haproxy reloaded",
            f"Final resource view: phys_ram={rng.randint(1, 512)}GB used_ram="
            f"{rng.randint(1, 512)}GB vcpus={rng.randint(8, 96)}",
            "Agent heartbeat received from l3-agent on node-3"])
        return self._record(name, level, msg, pid, ctx)

    def keystone_line(self) -> str:
        rng = self.rng
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self.t))
        method, url, status = rng.choice([("POST", "/v3/auth/tokens", 201),
                                          ("GET", "/v3/auth/tokens", 200),
                                          ("GET", "/v3/projects", 200),
                                          ("POST", "/v3/auth/tokens", 401)])
        return (f'192.168.0.{rng.randint(2, 250)} - - [{stamp}] "{method} {url} HTTP/1.1" '
                f'{status} {rng.randint(100, 6000)} {rng.randint(2000, 900000)} "-" '
                '"python-keystoneclient"\n')

    def haproxy_line(self) -> str:
        rng = self.rng
        stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(self.t))
        accept = time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(self.t))
        backend, url = rng.choice([("nova-api", "/v2.1/servers/detail"),
                                   ("keystone-1", "/v3/auth/tokens"),
                                   ("neutron", "/v2.0/networks")])
        status = rng.choices([200, 201, 404, 503], [80, 10, 7, 3])[0]
        tr = rng.randint(1, 900)
        return (f"<134>{stamp} node-1 haproxy[2104]: 192.168.0.{rng.randint(2, 250)}:"
                f"{rng.randint(30000, 60000)} [{accept}.{int(self.t * 1000) % 1000:03d}] "
                f"{backend} {backend}/node-{rng.randint(1, 3)} 0/0/1/{tr}/{tr + 1} {status} "
                f"{rng.randint(200, 9000)} - - ---- {rng.randint(1, 30)}/"
                f"{rng.randint(1, 30)}/0/0/0 0/0 \"GET {url} HTTP/1.1\"\n")

    def notification_line(self) -> str:
        rng = self.rng
        inner = {"message_id": _uuid(rng), "publisher_id": f"compute.node-{rng.randint(1, 9)}",
                 "event_type": rng.choice(["compute.instance.create.end",
                                           "compute.instance.delete.end",
                                           "port.update.end", "volume.create.end"]),
                 "priority": "INFO",
                 "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.t))
                 + f".{int(self.t * 1e6) % 10**6:06d}",
                 "payload": {"tenant_id": rng.choice(self.projects),
                             "user_id": rng.choice(self.users), "instance_id": _uuid(rng),
                             "state": "active", "memory_mb": 2048},
                 "_unique_id": _hex(rng)}
        return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}) + "\n"

    def write(self, directory: Path, size: int) -> dict[str, tuple[int, int]]:
        """Files under `directory` totalling about `size` bytes: {file: (bytes, lines)}."""
        dests = list(WEIGHTS)
        weights = [WEIGHTS[d] for d in dests]
        files: dict[str, io.BufferedWriter] = {}
        stats: dict[str, list[int]] = {}
        names = {"keystone": "keystone/keystone-wsgi-public.log", "haproxy": "haproxy.log",
                 "notifications": "notifications/notifications.jsonl"}
        total = 0
        try:
            while total < size:
                dest = self.rng.choices(dests, weights)[0]
                rel = names.get(dest, dest)
                if dest == "keystone":
                    text = self.keystone_line()
                elif dest == "haproxy":
                    text = self.haproxy_line()
                elif dest == "notifications":
                    text = self.notification_line()
                else:
                    text = self.oslo_event(dest)
                data = text.encode()
                f = files.get(rel)
                if f is None:
                    p = directory / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    f = files[rel] = open(p, "wb")  # closed below
                    stats[rel] = [0, 0]
                f.write(data)
                stats[rel][0] += len(data)
                stats[rel][1] += data.count(b"\n")
                total += len(data)
                self.t += STEP
        finally:
            for f in files.values():
                f.close()
        return {k: (v[0], v[1]) for k, v in stats.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--mib", type=float, default=100.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--long-fraction", type=float, default=0.05)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    stats = Corpus(args.seed, args.long_fraction).write(args.directory,
                                                       int(args.mib * 2**20))
    for rel, (nbytes, lines) in sorted(stats.items()):
        print(f"{rel}: {nbytes / 2**20:,.1f} MiB, {lines:,} lines, "
              f"{nbytes / max(lines, 1):,.0f} B/line")
    print(f"written in {time.perf_counter() - t0:,.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
