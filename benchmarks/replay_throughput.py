"""`hekapy replay` throughput with 1 and 2 workers on the same archive, in one run, into
the Elasticsearch double (its own process, ids only).

    .venv/bin/python -m hekapy.benchmarks.replay_throughput --mib 60

The archive: gzip-compressed OpenStack logs (the demo generator: nova-api, nova-compute,
neutron-server, the LBaaS agent) in an /var/log-like layout, four files. The
configuration is the `pipeline` scenario's (benchmarks/scenarios_pipeline.py: LMA's
Elasticsearch fields and flush settings), so the two compare.

Measured as the `pipeline` scenario measures the daemon, start-up excluded: from the
moment the coordinator says its workers began reading (its "reading N files" line on
stderr: imports, the plan and the first worker's start are over, nothing is decoded
yet) until the double holds every document; CPU seconds summed over every replay
process (the coordinator and its workers: the rusage of the process tree once it
exited, minus what the tree had used at that moment; a second worker still starting
then counts as work). The double's CPU is not in it (`sink_cpu_share`: how much of a
core the double took). The start-up (seconds, CPU) and the end-to-end time are
reported beside.
"""

from __future__ import annotations

import argparse
import gzip
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hekapy.benchmarks.harness import Double, ScenarioError, tail
from hekapy.benchmarks.openstack_config import es_output, openstack_logs
from hekapy.benchmarks.scenarios_pipeline import LMA_ES_FIELDS, OUTPUT_KEYS
from hekapy.collector.app.demo import generate

FILES = {"nova/nova-api.log.1.gz": "nova-api", "nova/nova-compute.log.1.gz": "nova-compute",
         "neutron/server.log.1.gz": "neutron-server",
         "neutron/lbaas-agent.log.1.gz": "lbaas-agent"}
POLL = 0.02  # seconds between two counts of the double


def make_archive(root: Path, mib: float, seed: int = 11) -> tuple[int, int]:
    """Files totalling about `mib` MiB uncompressed; returns (bytes, lines)."""
    rng = random.Random(seed)
    per_file = int(mib * 2**20 / len(FILES))
    total_bytes = total_lines = 0
    for rel, service in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        size = 0
        t = 1_763_856_000.0
        while size < per_file:
            for ln in generate(service, rng, t):
                lines.append(ln)
                size += len(ln) + 1
            t += 0.05
        data = ("\n".join(lines) + "\n").encode()
        path.write_bytes(gzip.compress(data, 1))
        total_bytes += len(data)
        total_lines += len(lines)
    return total_bytes, total_lines


def replay_config(state: Path, es_url: str) -> str:
    return openstack_logs(state, hostname="ctl-1") + es_output(
        es_url, fields=LMA_ES_FIELDS, **OUTPUT_KEYS)


def archive_from(root: Path, files: dict[str, Path]) -> tuple[int, int]:
    """An archive of existing log files: {"nova/nova-api.log.1.gz": source path, …},
    gzip level 1; returns (uncompressed bytes, lines). The harness archives its corpus."""
    total_bytes = total_lines = 0
    for rel, src in files.items():
        data = src.read_bytes()
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data, 1))
        total_bytes += len(data)
        total_lines += data.count(b"\n")
    return total_bytes, total_lines


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its descendants (those alive now)."""
    import psutil
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


READING = b"hekapy replay: reading "  # the coordinator's line: start-up is over


class StartupWatch:
    """Reads the replay's stderr (to its log file) and notes when the coordinator says
    its workers began reading: the time, and the CPU the process tree had used."""

    def __init__(self, proc: subprocess.Popen, log: Path, sink: Double) -> None:
        self.proc = proc
        self.log = log
        self.sink = sink
        self.at: float | None = None
        self.cpu = self.sink_cpu = 0.0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with open(self.log, "wb") as out:
            for line in self.proc.stderr:
                if self.at is None and line.startswith(READING):
                    self.at = time.perf_counter()
                    self.cpu = tree_cpu_seconds(self.proc.pid)
                    self.sink_cpu = self.sink.cpu_seconds()
                out.write(line)


def replay_once(archive: Path, work: Path, workers: int, expected: int,
                stall: float = 60.0) -> dict[str, Any]:
    """`hekapy replay --workers N` of `archive` into a fresh double (its own process);
    the double must end with exactly `expected` documents (ScenarioError otherwise: no
    number from a broken run). This script's `main` and the harness's replay scenarios
    call it. See the module docstring for what is measured."""
    work.mkdir(parents=True, exist_ok=True)
    conf = work / f"replay-{workers}.toml"
    log = work / f"replay-{workers}.log"
    with Double() as es:
        conf.write_text(replay_config(work / f"state-{workers}", es.url))
        cpu_before = children_cpu_seconds()
        t_start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "hekapy.collector.app.cli",
                                 "replay", "-c", str(conf), "--workers", str(workers),
                                 str(archive)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        watch = StartupWatch(proc, log, es)
        try:
            stored, last_change = 0, t_start
            while stored < expected:
                time.sleep(POLL)
                now_stored = es.count()["documents"]
                if now_stored != stored:
                    stored, last_change = now_stored, time.perf_counter()
                elif proc.poll() is not None or time.perf_counter() - last_change > stall:
                    raise ScenarioError(f"replay with {workers} worker(s): the double "
                                        f"stopped at {stored} of {expected} documents: "
                                        f"{tail(log)}")
            t_all = time.perf_counter()
            sink = es.cpu_seconds()
            rc = proc.wait(timeout=120)
            watch.thread.join(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cpu = children_cpu_seconds() - cpu_before
        stored = es.count()["documents"]
    if rc != 0:
        raise ScenarioError(f"replay with {workers} worker(s) exited with {rc}: {tail(log)}")
    if stored != expected:
        raise ScenarioError(f"replay with {workers} worker(s): the double holds {stored} "
                            f"documents, {expected} expected")
    if watch.at is None:
        raise ScenarioError(f"replay never said it began reading: {tail(log)}")
    seconds = t_all - watch.at
    return {"seconds": seconds, "cpu_seconds": cpu - watch.cpu,
            "startup_seconds": watch.at - t_start, "startup_cpu_seconds": watch.cpu,
            "seconds_with_startup": t_all - t_start,
            "sink_cpu_share": (sink - watch.sink_cpu) / seconds, "documents": expected,
            "workers": workers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=float, default=60.0, help="uncompressed archive size")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    from hekapy.benchmarks.harness import expected_documents
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        nbytes, nlines = make_archive(tmp / "archive", args.mib)
        plain = [tmp / "plain" / rel.removesuffix(".gz") for rel in FILES]
        for rel, path in zip(FILES, plain, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.decompress((tmp / "archive" / rel).read_bytes()))
        expected = expected_documents(plain)
        print(f"archive: {nbytes / 2**20:,.1f} MiB, {nlines:,} lines, {expected:,} "
              f"documents, {len(FILES)} gzip files", flush=True)
        best: dict[int, float] = {}
        for run in range(args.runs):
            for workers in (1, 2):
                s = replay_once(tmp / "archive", tmp / f"run-{run}", workers, expected)
                rate = nlines / s["seconds"]
                best[workers] = max(best.get(workers, 0.0), rate)
                print(f"run {run + 1}, {workers} worker(s): {rate:,.0f} lines/s, "
                      f"{nbytes / s['seconds'] / 2**20:,.1f} MiB/s, CPU "
                      f"{s['cpu_seconds'] / (nbytes / 2**30):,.1f} s/GiB (all processes), "
                      f"start-up {s['startup_seconds']:.1f} s", flush=True)
        print(f"best: 1 worker {best[1]:,.0f} lines/s, 2 workers {best[2]:,.0f} lines/s, "
              f"scaling {best[2] / best[1]:.2f}x")


if __name__ == "__main__":
    main()
