"""The soak: hekapy running for a long time under steady traffic and recurring faults.

    python -m hekapy.benchmarks soak --minutes 60      # (or python -m hekapy.benchmarks.soak)

What runs (every process on this machine, every address on 127.0.0.1):
- the two LMA-equivalent collectors, conf/lma_log_collector.toml and
  conf/lma_metric_collector.toml, as `hekapy run` processes, with their directories,
  ports and the ES_URL / INFLUXDB_URL variables pointed at this run's;
- the Elasticsearch double (benchmarks/es_double.py) in its own process, noting each
  numbered line it stores and whether it ever stores one twice under another _id;
- Debian's influxd (started with tests/services.py, as the influxdb scenario does);
- the writer (benchmarks/soak_writer.py): oslo.log lines of nova-api and the LBaaS agent,
  Keystone's Apache access log and HAProxy's log, numbered, at `--rate` lines/s (2,000),
  with logrotate-style rotations (rename and copytruncate alternating).

Faults, on periods scaled with the run (`Plan.for_minutes`; a 60-minute run gets the
periods below, a 3-minute run sees each at least once):
- every 60 s: the rotations (the writer does them);
- every 5 min: the double down for 20 s (connections refused and closed), then every
  bulk request answered 429 for 20 s;
- every 10 min: InfluxDB restarted (stopped, started on the same ports and data);
- every 10 min: SIGHUP to both collectors with a changed configuration (a flush_count
  one off), so the reload drains and restarts the pipeline each time.

Every `--sample-every` s (10) it samples, for each collector, RSS and open descriptors
(psutil), asyncio tasks (/stats `asyncio_tasks`), journal and disk-buffer sizes on disk
(the state directory's `logstreamer/` and `output_queue/`), and the lag: lines written
(at the writer's pace) not yet stored by the double.

At the end: the writer stops, every line must reach the double (or stall for
`--stall` s: failed), the collectors get SIGTERM and must exit 0, and the exact
accounting of the fault suite holds: lines written = stored once + dead-lettered +
counted drops, 0 lost, 0 lines stored under two ids. The log-derived metrics are
reported too: the requests counted in InfluxDB's *_http_response_times series against
the HTTP lines written (nova-api's, Keystone's and HAProxy's). Not an exact account:
LMA's HTTP metrics ignore a line that reaches the filter more than grace_time after its
interval's tick (a backlog read after an outage or a reload), so the count can only be
lower; more than written, or none, fails the run.

Leaks: over the second half of the writing phase, a least-squares line through each
collector's RSS and descriptor samples; growth is a slope whose 95% confidence interval
lies above 0 *and* that is above the limit (`LIMITS`, why those numbers: there). The run
fails on growth, a loss, a duplicate, a dead collector, or a non-zero exit.

Results: benchmarks/results/soak-<UTC time>.json, soak-latest.json, soak-latest.md
(the table) and soak-latest.png (RSS, descriptors, lag and disk buffer over time, faults
shaded) with matplotlib.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from hekapy.benchmarks.harness import SEQ_PATTERN, Double, ScenarioError, tail
from hekapy.benchmarks.soak_writer import FILES
from hekapy.collector import compiled

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
RESULTS = Path(__file__).resolve().parent / "results"
HEKAPY = [sys.executable, "-m", "hekapy.collector.app.cli"]
COLLECTORS = ("log_collector", "metric_collector")
LOG_DIRECTORIES = ("nova", "neutron", "keystone", "glance", "cinder", "heat", "apache2")
# How long a rotated file stays before the writer deletes it (logrotate's `rotate N`):
# far longer than any lag the faults cause, so that a loss is the collector's.
KEEP_ROTATED_S = 900.0

# What counts as growth over the second half: the slope's 95% confidence interval lies
# above 0, the slope is above a rate, and the growth it fits over the window is above a
# floor (name → (rate per hour, floor, floor when the window is under SHORT_WINDOW_S)):
# - RSS: 10 MiB/h. A collector meant to run for months beside the services must not
#   add 240 MiB a day; below that a 30-minute window cannot tell a leak from the faults'
#   own swing (each outage's catch-up reads ahead, queues and allocator arenas grow and
#   shrink with it). Floor: 4 MiB, the swing between samples at steady state. A short
#   window (the 3-minute run's 90 s) sees the warm-up instead: the first catch-ups set
#   new high-water marks of the data in flight, up to max_inflight_bytes (64 MiB) per
#   input, which Python keeps mapped; there only growth beyond that counts.
# - descriptors: 6 per hour, one per InfluxDB restart or per two Elasticsearch outages
#   of the 60-minute run, far below one per rotation (240 per hour with four files);
#   floor 3: lingering rotated files (rotate_wait) come and go between samples.
LIMITS = {"rss_mib": (10.0, 4.0, 64.0), "fds": (6.0, 3.0, 3.0)}
SHORT_WINDOW_S = 600.0
# The HTTP metrics filter ticks every 10 s and the metric_collector flushes every second:
# a count unchanged for this long is final.
METRICS_SETTLED_S = 30.0


@dataclass
class Plan:
    """When things happen, in seconds from the start of writing."""

    minutes: float
    rate: float = 2000.0
    sample_every: float = 10.0
    rotate_every: float = 60.0
    es_every: float = 300.0
    es_fault: float = 20.0
    influx_every: float = 600.0
    sighup_every: float = 600.0
    # Faults left out ("es", "influx", "sighup"): to tell which one a trend follows.
    skip: tuple[str, ...] = ()

    @classmethod
    def for_minutes(cls, minutes: float, rate: float = 2000.0,
                    sample_every: float = 10.0) -> Plan:
        """The hour's periods scaled by minutes / 60, with floors that keep a short run
        meaningful: a rotation every 10 s at least, the other faults at least once a
        minute, outages of min(20 s, a sixth of their period)."""
        scale = minutes / 60
        es_every = max(60.0, 300 * scale)
        return cls(minutes=minutes, rate=rate, sample_every=sample_every,
                   rotate_every=max(10.0, 60 * scale), es_every=es_every,
                   es_fault=min(20.0, es_every / 6),
                   influx_every=max(60.0, 600 * scale), sighup_every=max(60.0, 600 * scale))

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    def events(self) -> list[tuple[float, str]]:
        """(time, action), sorted; each fault starts within the writing phase and ends
        before it (the end is for the drain)."""
        out: list[tuple[float, str]] = []
        end = self.seconds - 5
        t = self.es_every / 3 if "es" not in self.skip else end
        while t + 2 * self.es_fault < end:
            out += [(t, "es_down"), (t + self.es_fault, "es_up"),
                    (t + self.es_fault, "es_429_on"), (t + 2 * self.es_fault, "es_429_off")]
            t += self.es_every
        t = self.influx_every / 2 if "influx" not in self.skip else end
        while t < end:
            out.append((t, "influx_restart"))
            t += self.influx_every
        t = self.sighup_every * 0.8 if "sighup" not in self.skip else end
        while t < end:
            out.append((t, "sighup"))
            t += self.sighup_every
        return sorted(out, key=lambda e: e[0])  # stable: es_up before es_429_on


def replace(text: str, old: str, new: str, count: int = 1) -> str:
    if text.count(old) != count:
        raise ScenarioError(f"the shipped configuration changed: {old!r} found "
                            f"{text.count(old)} times, {count} expected")
    return text.replace(old, new)


@dataclass
class Layout:
    """This run's directories, ports and configuration files."""

    tmp: Path
    logs: Path = field(init=False)
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logs = self.tmp / "var-log"
        self.logs.mkdir(parents=True)
        # The directories the LMA configuration tails exist from the start, as on a
        # controller (the writer creates its files in some of them).
        for d in LOG_DIRECTORIES:
            (self.logs / d).mkdir()
        for name in ("tcp", "collectd", "log_status", "metric_status"):
            self.ports[name] = free_port()

    def state(self, collector: str) -> Path:
        return self.tmp / collector

    def conf(self, collector: str) -> Path:
        return self.tmp / f"{collector}.toml"

    def write_configs(self, generation: int) -> None:
        """The shipped files, pointed at this run; `generation` changes one flush_count
        (odd: one less), so that a reload has something to apply."""
        p = self.ports
        text = (CONF / "lma_log_collector.toml").read_text()
        text = replace(text, '"/var/cache/log_collector"', f'"{self.state(COLLECTORS[0])}"')
        text = text.replace('"/var/log', f'"{self.logs}')
        text = replace(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{p["tcp"]}"')
        text = replace(text, "[hekad]\n",
                       f'[hekad]\nstatus_address = "127.0.0.1:{p["log_status"]}"\n')
        text = replace(text, "flush_count = 1000\n", f"flush_count = {1000 - generation % 2}\n")
        self.conf(COLLECTORS[0]).write_text(text)

        text = (CONF / "lma_metric_collector.toml").read_text()
        text = replace(text, '"/var/cache/metric_collector"',
                       f'"{self.state(COLLECTORS[1])}"')
        text = replace(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{p["tcp"]}"')
        text = replace(text, 'address = "127.0.0.1:8325"',
                       f'address = "127.0.0.1:{p["collectd"]}"')
        text = replace(text, 'status_address = "127.0.0.1:4353"',
                       f'status_address = "127.0.0.1:{p["metric_status"]}"')
        text = text.replace('"/var/lib/', f'"{self.tmp}/lib/')
        text = replace(text, "flush_count = 400\n", f"flush_count = {400 - generation % 2}\n")
        self.conf(COLLECTORS[1]).write_text(text)

    def status_url(self, collector: str) -> str:
        port = self.ports["log_status" if collector == COLLECTORS[0] else "metric_status"]
        return f"http://127.0.0.1:{port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dir_size(path: Path) -> int:
    total = 0
    if path.exists():
        for f in path.rglob("*"):
            with contextlib.suppress(OSError):
                if f.is_file():
                    total += f.stat().st_size
    return total


# --- statistics ---------------------------------------------------------------------

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; beyond, 1.96.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
        2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074,
        2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def slope_per_hour(points: list[tuple[float, float]]) -> dict[str, float]:
    """Least squares of value on time (seconds): the slope per hour and its 95%
    confidence interval. Fewer than 3 points, or no spread in time: no interval."""
    n = len(points)
    if n < 3:
        return {"slope": 0.0, "ci_low": -math.inf, "ci_high": math.inf, "n": n}
    ts = [t / 3600 for t, _ in points]
    vs = [v for _, v in points]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    sxx = sum((t - mt) ** 2 for t in ts)
    if sxx == 0:
        return {"slope": 0.0, "ci_low": -math.inf, "ci_high": math.inf, "n": n}
    slope = sum((t - mt) * (v - mv) for t, v in zip(ts, vs, strict=True)) / sxx
    resid = sum((v - (mv + slope * (t - mt))) ** 2 for t, v in zip(ts, vs, strict=True))
    se = math.sqrt(resid / (n - 2) / sxx)
    q = _T95[n - 3] if n - 2 <= len(_T95) else 1.96
    return {"slope": slope, "ci_low": slope - q * se, "ci_high": slope + q * se, "n": n}


def grows(fit: dict[str, float], window_h: float, limit_per_h: float,
          floor: float) -> bool:
    return (fit["ci_low"] > 0 and fit["slope"] > limit_per_h
            and fit["slope"] * window_h > floor)


# --- the run ------------------------------------------------------------------------

class Soak:
    def __init__(self, plan: Plan, tmp: Path, results: Path | None,
                 stall: float = 180.0, echo: Callable[[str], None] = print) -> None:
        self.plan = plan
        self.layout = Layout(tmp)
        self.results = results
        self.stall = stall
        self.echo = echo
        self.procs: dict[str, subprocess.Popen] = {}
        self.samples: list[dict[str, Any]] = []
        self.faults_done: list[tuple[float, str]] = []
        self.generation = 0
        self.t0 = 0.0
        self.env: dict[str, str] = {}
        self.double: Double | None = None
        self.influx: Any = None
        self.session: aiohttp.ClientSession | None = None
        self.es_down = False
        self.last_count: dict[str, int] = {"seqs": 0, "seq_floor": 0, "documents": 0,
                                           "seq_duplicates": 0}

    # processes ------------------------------------------------------------------------
    def start_collector(self, name: str) -> None:
        log = open(self.layout.tmp / f"{name}.log", "ab")  # the child keeps its own
        try:
            self.procs[name] = subprocess.Popen(
                [*HEKAPY, "run", "-c", str(self.layout.conf(name))], env=self.env,
                stdout=log, stderr=log)
        finally:
            log.close()

    def collector_log(self, name: str) -> str:
        return tail(self.layout.tmp / f"{name}.log", 4000)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise ScenarioError(f"{name} exited with {p.returncode}:\n"
                                    f"{self.collector_log(name)}")

    async def stats(self, name: str) -> dict[str, Any] | None:
        """/stats, or None while the status server is away (a reload restarts it)."""
        assert self.session is not None
        try:
            async with self.session.get(self.layout.status_url(name) + "/stats",
                                        timeout=aiohttp.ClientTimeout(total=10)) as r:
                return await r.json() if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def double_faults(self, **faults: Any) -> None:
        assert self.session is not None and self.double is not None
        async with self.session.post(self.double.url + "/_double/faults",
                                     json=faults) as r:
            if r.status != 200:
                raise ScenarioError(f"the double refused {faults}: {r.status}")

    async def double_count(self) -> dict[str, int]:
        """The double's counts; while it is down (it refuses everyone), the last ones."""
        assert self.double is not None
        if not self.es_down:
            self.last_count = await asyncio.to_thread(self.double.count)
        return self.last_count

    # faults ---------------------------------------------------------------------------
    async def act(self, action: str) -> None:
        assert self.double is not None
        if action == "es_down":
            await self.double_count()
            self.es_down = True
            await asyncio.to_thread(self.double.go_down)
        elif action == "es_up":
            await asyncio.to_thread(self.double.come_back)
            self.es_down = False
        elif action == "es_429_on":
            await self.double_faults(reject_429_every=1)
        elif action == "es_429_off":
            await self.double_faults(reject_429_every=0)
        elif action == "influx_restart":
            await self.influx.restart()
        elif action == "sighup":
            self.generation += 1
            self.layout.write_configs(self.generation)
            for p in self.procs.values():
                p.send_signal(signal.SIGHUP)
        else:
            raise AssertionError(action)
        self.faults_done.append((time.monotonic() - self.t0, action))

    # sampling -------------------------------------------------------------------------
    async def sample(self, writing: bool) -> dict[str, Any]:
        import psutil
        now = time.monotonic() - self.t0
        written = min(self.plan.rate * now, self.plan.rate * self.plan.seconds)
        count = await self.double_count()
        row: dict[str, Any] = {"t": now, "writing": writing, "written_est": int(written),
                               "stored": count["seqs"], "lag_lines": max(
                                   0, int(written) - count["seqs"])}
        for name in COLLECTORS:
            p = psutil.Process(self.procs[name].pid)
            with p.oneshot():
                row[f"{name}.rss_mib"] = p.memory_info().rss / 2**20
                row[f"{name}.fds"] = p.num_fds()
            st = await self.stats(name)
            row[f"{name}.tasks"] = st.get("asyncio_tasks") if st else None
            state = self.layout.state(name)
            row[f"{name}.journal_bytes"] = dir_size(state / "logstreamer")
            row[f"{name}.buffer_bytes"] = dir_size(state / "output_queue")
        self.samples.append(row)
        return row

    # the whole run ----------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        influxdb = _influxdb_service()
        self.layout.write_configs(0)
        self.double = Double(record_seq=True)
        try:
            async with influxdb(self.layout.tmp / "influxd") as db, \
                    aiohttp.ClientSession() as session:
                self.influx, self.session = db, session
                await db.query("CREATE DATABASE lma")
                self.env = {**os.environ, "ES_URL": self.double.url, "INFLUXDB_URL": db.url,
                            "INFLUXDB_PASSWORD": "", "HOSTNAME": "soak-1",
                            "HEKAPY_DEPLOYMENT_ID": "7", "TZ": "UTC",
                            # A fatal signal in a C extension leaves its Python stack.
                            "PYTHONFAULTHANDLER": "1"}
                try:
                    return await self._run_collectors()
                finally:
                    for name, p in self.procs.items():
                        if p.poll() is None:
                            p.kill()
                            p.wait()
                            self.echo(f"soak: {name} killed at the end of a failed run")
        finally:
            self.double.close()

    async def _run_collectors(self) -> dict[str, Any]:
        plan = self.plan
        from tests.services import wait_for_port
        # The services' logs exist before the collectors start, as on a node. Created by
        # the writer after them, a file is found at the next rescan (LogstreamerInput's
        # rescan_interval, a minute), and haproxy.log, whose file_match has no sequence
        # group, could be rotated out of its stream before it was ever read.
        for rel in FILES:
            (self.layout.logs / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.layout.logs / rel).touch()
        self.start_collector("metric_collector")
        await wait_for_port(self.layout.ports["tcp"], self.procs["metric_collector"],
                            timeout=60, log=self.layout.tmp / "metric_collector.log")
        self.start_collector("log_collector")
        await wait_for_port(self.layout.ports["log_status"], self.procs["log_collector"],
                            timeout=60, log=self.layout.tmp / "log_collector.log")
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hekapy.benchmarks.soak_writer", str(self.layout.logs),
            "--rate", str(plan.rate), "--seconds", str(plan.seconds),
            "--rotate-every", str(plan.rotate_every),
            "--keep", str(max(5, math.ceil(KEEP_ROTATED_S / plan.rotate_every))),
            stdout=asyncio.subprocess.PIPE)
        self.t0 = time.monotonic()
        events = plan.events()
        self.echo(f"soak: {plan.minutes:g} min at {plan.rate:,.0f} lines/s; "
                  f"{len(events)} fault steps; state under {self.layout.tmp}")
        next_sample = 0.0
        writer_out = asyncio.ensure_future(writer.communicate())
        while not writer_out.done():
            now = time.monotonic() - self.t0
            while events and events[0][0] <= now:
                _, action = events.pop(0)
                await self.act(action)
            if now >= next_sample:
                row = await self.sample(writing=True)
                next_sample += plan.sample_every
                if int(row["t"]) // 60 != int(row["t"] - plan.sample_every) // 60:
                    self.echo(self.progress(row))
            self.check_alive()
            wake = min([next_sample] + [t for t, _ in events[:1]]) - (
                time.monotonic() - self.t0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer_out), max(0.0, wake))
        out, _ = writer_out.result()
        if writer.returncode != 0:
            raise ScenarioError(f"the writer exited with {writer.returncode}")
        written = json.loads(out.decode().strip().splitlines()[-1])
        writing_ended = time.monotonic() - self.t0
        for action in ("es_up", "es_429_off"):  # whatever was on stays off for the drain
            if any(a == action for t, a in events):
                await self.act(action)
        stored = await self.drain(written["written"])
        metric = await self.metric_accounting(written)
        drops = await self.counted_drops()
        exits = {}
        for name in ("log_collector", "metric_collector"):
            p = self.procs[name]
            p.send_signal(signal.SIGTERM)
            try:
                exits[name] = await asyncio.to_thread(p.wait, 120)
            except subprocess.TimeoutExpired:
                raise ScenarioError(f"{name} did not stop within 120 s of SIGTERM") from None
        count = await self.double_count()
        dead = dead_lettered(self.layout.state(COLLECTORS[0]))
        return self.verdict(written, writing_ended, stored, count, dead, drops, metric,
                            exits)

    def progress(self, row: dict[str, Any]) -> str:
        lc, mc = COLLECTORS
        return (f"soak: {row['t'] / 60:5.1f} min  stored {row['stored']:,}  lag "
                f"{row['lag_lines']:,}  RSS {row[f'{lc}.rss_mib']:.0f}/"
                f"{row[f'{mc}.rss_mib']:.0f} MiB  fds {row[f'{lc}.fds']}/{row[f'{mc}.fds']}  "
                f"tasks {row[f'{lc}.tasks']}/{row[f'{mc}.tasks']}  buffer "
                f"{row[f'{lc}.buffer_bytes'] / 2**20:.1f} MiB")

    async def drain(self, written: int) -> float:
        """Until the double holds every numbered line; seconds it took. Stalling for
        `stall` s is a failure (lines lost, or a collector stuck)."""
        start = time.monotonic()
        seen, moved = -1, start
        while True:
            count = await self.double_count()
            if count["seqs"] >= written:
                return time.monotonic() - start
            if count["seqs"] != seen:
                seen, moved = count["seqs"], time.monotonic()
            elif time.monotonic() - moved > self.stall:
                missing = written - count["seqs"]
                raise ScenarioError(
                    f"{missing:,} of {written:,} lines never reached the double (stuck for "
                    f"{self.stall:.0f} s; lowest missing hkseq={count['seq_floor']})\n"
                    f"{self.collector_log('log_collector')}")
            self.check_alive()
            if time.monotonic() - self.t0 - self.samples[-1]["t"] >= self.plan.sample_every:
                await self.sample(writing=False)
            await asyncio.sleep(0.5)  # the double's count is asked; it has no event for us

    async def metric_accounting(self, written: dict[str, Any]) -> dict[str, int]:
        """The requests counted in InfluxDB's *_http_response_times (nova-api's,
        Keystone's and HAProxy's lines each carry one; LMA's HTTP metrics filter names
        the series after the Logger) against those written, waited for (the filter emits
        every ticker_interval, then the metric_collector flushes)."""
        per_file = written["per_file"]
        expected = (per_file["nova/nova-api.log"] + per_file["haproxy.log"]
                    + per_file["apache2/keystone_wsgi_main_access.log"])
        deadline = time.monotonic() + max(120.0, self.stall)
        counted, moved = -1, time.monotonic()
        while time.monotonic() < deadline:
            rows = await self.influx.query(
                'SELECT sum("count") AS n FROM /_http_response_times$/',
                db="lma")
            now_counted = round(sum(r["n"] or 0 for r in rows))
            if now_counted >= expected:
                counted = now_counted
                break
            if now_counted != counted:
                counted, moved = now_counted, time.monotonic()
            elif time.monotonic() - moved > METRICS_SETTLED_S:
                break  # the last interval was sent and stored: the rest was ignored
            self.check_alive()
            await asyncio.sleep(1.0)  # InfluxDB has no event to wait on
        return {"http_lines_written": expected, "http_requests_counted": counted}

    async def counted_drops(self) -> int:
        """What the log_collector's Elasticsearch output dropped by policy (/stats)."""
        st = await self.stats(COLLECTORS[0])
        if st is None:
            raise ScenarioError("the log_collector's /stats did not answer at the end")
        for row in st["plugins"]:
            if row["name"] == "elasticsearch_output":
                return int(row.get("dropped", 0)) + int(row.get("buffer", {}).get("dropped", 0))
        raise ScenarioError("no elasticsearch_output in the log_collector's /stats")

    def verdict(self, written: dict[str, Any], writing_ended: float, drain_s: float,
                count: dict[str, int], dead: int, drops: int, metric: dict[str, int],
                exits: dict[str, int]) -> dict[str, Any]:
        n = written["written"]
        lost = n - count["seqs"] - dead - drops
        half = writing_ended / 2
        window_h = (writing_ended - half) / 3600
        second = [s for s in self.samples if s["writing"] and s["t"] >= half]
        trends: dict[str, dict[str, Any]] = {}
        failures: list[str] = []
        for name in COLLECTORS:
            for key, (limit, floor, short_floor) in LIMITS.items():
                fit = slope_per_hour([(s["t"], s[f"{name}.{key}"]) for s in second])
                fit["grows"] = grows(fit, window_h, limit, short_floor
                                     if window_h * 3600 < SHORT_WINDOW_S else floor)
                trends[f"{name}.{key}"] = fit
                if fit["grows"]:
                    failures.append(f"{name} {key} grows: {fit['slope']:.1f}/h "
                                    f"(95% CI {fit['ci_low']:.1f} .. {fit['ci_high']:.1f})")
            tasks = [(s["t"], s[f"{name}.tasks"]) for s in second
                     if s[f"{name}.tasks"] is not None]
            trends[f"{name}.tasks"] = slope_per_hour(tasks)
        if lost:
            failures.append(f"{lost:,} lines lost")
        if count["seq_duplicates"]:
            failures.append(f"{count['seq_duplicates']:,} lines stored under two ids")
        if count["seqs"] > n:
            failures.append("the double holds more numbered lines than were written")
        for name, code in exits.items():
            if code != 0:
                failures.append(f"{name} exited with {code} on SIGTERM")
        if not 0 < metric["http_requests_counted"] <= metric["http_lines_written"]:
            failures.append(f"InfluxDB counts {metric['http_requests_counted']:,} requests "
                            f"of {metric['http_lines_written']:,} HTTP lines written")
        reloads = {name: self.collector_log_full(name).count(
            "reload: the new configuration is running") for name in COLLECTORS}
        sighups = sum(1 for _, a in self.faults_done if a == "sighup")
        for name, k in reloads.items():
            if k != sighups:
                failures.append(f"{name} applied {k} reloads of {sighups} SIGHUPs")
        result = {
            "plan": asdict(self.plan), "hot_path": compiled.summary(),
            "python": sys.version.split()[0], "cpus": os.cpu_count(),
            "written": written, "stored": count["seqs"], "dead_lettered": dead,
            "dropped": drops, "lost": lost, "duplicates": count["seq_duplicates"],
            "double_documents": count["documents"], "drain_seconds": drain_s,
            "writing_seconds": writing_ended, "metrics": metric, "exits": exits,
            "reloads": reloads, "faults": self.faults_done, "trends": trends,
            "samples": self.samples, "failures": failures, "ok": not failures}
        return result

    def collector_log_full(self, name: str) -> str:
        return (self.layout.tmp / f"{name}.log").read_text(errors="replace")


def dead_lettered(state: Path) -> int:
    path = state / "dead_letter" / "elasticsearch_output.ndjson"
    if not path.exists():
        return 0
    seq = re.compile(SEQ_PATTERN.encode())
    return sum(1 for ln in path.read_bytes().splitlines() if seq.search(ln))


def _influxdb_service() -> Callable[[Path], contextlib.AbstractAsyncContextManager[Any]]:
    """tests/services.py's influxd start-up (the soak runs from a checkout)."""
    if not (ROOT / "tests" / "services.py").is_file():
        raise ScenarioError("the soak starts influxd with tests/services.py: run it from a "
                            "hekapy checkout")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.services import influxdb
    return influxdb


# --- the report ------------------------------------------------------------------------

def table(result: dict[str, Any], every_s: float) -> str:
    """The samples as a Markdown table, one row every `every_s` s (and the last)."""
    lc, mc = COLLECTORS
    head = ["min", "stored", "lag (lines)", "log RSS MiB", "metric RSS MiB", "log fds",
            "metric fds", "log tasks", "metric tasks", "journals KiB", "disk buffers MiB"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shown, last = [], -every_s
    for s in result["samples"]:
        if s["t"] - last >= every_s - 1e-6:
            shown.append(s)
            last = s["t"]
    if result["samples"] and shown[-1] is not result["samples"][-1]:
        shown.append(result["samples"][-1])
    for s in shown:
        rows.append("| " + " | ".join([
            f"{s['t'] / 60:.1f}", f"{s['stored']:,}", f"{s['lag_lines']:,}",
            f"{s[f'{lc}.rss_mib']:.0f}", f"{s[f'{mc}.rss_mib']:.0f}", str(s[f"{lc}.fds"]),
            str(s[f"{mc}.fds"]), str(s[f"{lc}.tasks"]), str(s[f"{mc}.tasks"]),
            f"{(s[f'{lc}.journal_bytes'] + s[f'{mc}.journal_bytes']) / 1024:.1f}",
            f"{(s[f'{lc}.buffer_bytes'] + s[f'{mc}.buffer_bytes']) / 2**20:.1f}"]) + " |")
    return "\n".join(rows)


def summary(result: dict[str, Any]) -> str:
    w = result["written"]
    plan = result["plan"]
    lines = [
        f"{plan['minutes']:g} minutes at {plan['rate']:,.0f} lines/s ({result['hot_path']}, "
        f"Python {result['python']}, {result['cpus']} CPUs): {w['rotations']} rotations "
        f"({w['renames']} renames, {w['copytruncates']} copytruncates), "
        + ", ".join(f"{k} x{sum(1 for _, a in result['faults'] if a == k)}"
                    for k in ("es_down", "es_429_on", "influx_restart", "sighup")) + ".",
        f"written {w['written']:,}, stored {result['stored']:,}, dead-lettered "
        f"{result['dead_lettered']:,}, dropped {result['dropped']:,}, lost {result['lost']:,}, "
        f"duplicates {result['duplicates']:,}; drained in {result['drain_seconds']:.1f} s "
        "after the writer stopped.",
        f"InfluxDB: {result['metrics']['http_requests_counted']:,} requests counted of "
        f"{result['metrics']['http_lines_written']:,} HTTP lines written (LMA's HTTP "
        "metrics ignore lines that come later than grace_time after their tick).",
        "Second half, slope per hour (95% CI): " + "; ".join(
            f"{k} {v['slope']:+.2f} ({v['ci_low']:+.2f} .. {v['ci_high']:+.2f})"
            for k, v in result["trends"].items()) + ".",
        "PASS" if result["ok"] else "FAIL: " + "; ".join(result["failures"]),
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    lc, mc = COLLECTORS
    s = result["samples"]
    t = [x["t"] / 60 for x in s]
    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    series = [("RSS (MiB)", "rss_mib"), ("open descriptors", "fds")]
    for ax, (label, key) in zip(axes[:2], series, strict=True):
        ax.plot(t, [x[f"{lc}.{key}"] for x in s], label="log_collector")
        ax.plot(t, [x[f"{mc}.{key}"] for x in s], label="metric_collector")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8)
    axes[2].plot(t, [x["lag_lines"] for x in s], color="tab:red")
    axes[2].set_ylabel("lag (lines)")
    axes[3].plot(t, [(x[f"{lc}.buffer_bytes"] + x[f"{mc}.buffer_bytes"]) / 2**20 for x in s],
                 color="tab:purple")
    axes[3].set_ylabel("disk buffers (MiB)")
    axes[3].set_xlabel("minutes")
    starts: dict[str, float] = {}
    for when, action in result["faults"]:
        m = when / 60
        if action in ("es_down", "es_429_on"):
            starts[action] = m
        elif action in ("es_up", "es_429_off"):
            key = "es_down" if action == "es_up" else "es_429_on"
            if key in starts:
                began = starts.pop(key)
                for ax in axes:
                    ax.axvspan(began, m, color="grey" if key == "es_down" else "orange",
                               alpha=0.2, lw=0)
        else:
            for ax in axes:
                ax.axvline(m, color="green" if action == "sighup" else "blue", lw=0.6,
                           ls="--")
    axes[0].set_title(f"soak, {result['plan']['minutes']:g} min: Elasticsearch down (grey), "
                      "429 (orange), InfluxDB restart (blue), SIGHUP (green)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_results(result: dict[str, Any], results: Path) -> list[Path]:
    results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    every = 60.0 if result["plan"]["minutes"] < 30 else 300.0
    text = summary(result) + "\n\n" + table(result, every) + "\n"
    out = [results / f"soak-{stamp}.json", results / "soak-latest.json",
           results / "soak-latest.md"]
    for p in out[:2]:
        p.write_text(json.dumps(result, indent=1, default=str))
    out[2].write_text(text)
    if plot(result, results / "soak-latest.png"):
        out.append(results / "soak-latest.png")
    return out


# --- command line ------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m hekapy.benchmarks soak",
                                 description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=2000.0, help="lines per second")
    ap.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    ap.add_argument("--stall", type=float, default=180.0, help="seconds without progress "
                    "at the end before the run fails")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--skip", default="", help="faults to leave out, comma-separated: "
                    "es, influx, sighup (to tell which one a trend follows)")
    ap.add_argument("--keep", type=Path, help="keep the run's directory here (logs, "
                    "state, the collectors' own logs) instead of a temporary one")
    args = ap.parse_args(argv)
    if args.minutes < 1 or args.rate <= 0 or args.sample_every <= 0:
        ap.error("--minutes must be at least 1, --rate and --sample-every positive")
    unknown = {x for x in args.skip.split(",") if x} - {"es", "influx", "sighup"}
    if unknown:
        ap.error(f"--skip takes es, influx, sighup; not {', '.join(sorted(unknown))}")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan.for_minutes(args.minutes, args.rate, args.sample_every)
    plan.skip = tuple(x for x in args.skip.split(",") if x)

    def go(tmp: Path) -> dict[str, Any]:
        return asyncio.run(Soak(plan, tmp, args.results, args.stall).run())
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        return go(Path(tempfile.mkdtemp(dir=args.keep, prefix="soak-")))
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="hekapy-soak-") as d:
        return go(Path(d))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except ScenarioError as e:
        print(f"soak: FAILED: {e}", file=sys.stderr)
        return 1
    for p in write_results(result, args.results):
        print(f"soak: wrote {p}")
    print(summary(result))
    print(table(result, 60.0 if args.minutes < 30 else 300.0))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
