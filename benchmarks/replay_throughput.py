"""`hekapy replay` throughput with 1 and 2 decoding workers on the same archive, in one
run, into the Elasticsearch double (its own process, ids only).

    .venv/bin/python -m hekapy.benchmarks.replay_throughput --mib 60

The archive: gzip-compressed OpenStack logs (the demo generator: nova-api, nova-compute,
neutron-server, the LBaaS agent) in an /var/log-like layout, four files. Reported: MiB/s
of uncompressed log lines and lines/s per worker count, and the scaling ratio (the
issue's target: >= 1.7x with 2 workers on 2 cores). The writer process (routing,
Elasticsearch encoding, HTTP) is shared by the workers; on a 2-core machine it competes
with them and with the double for the cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hekapy.benchmarks.es_double import start_process
from hekapy.benchmarks.openstack_config import es_output, openstack_logs
from hekapy.collector.app.demo import generate

FILES = {"nova/nova-api.log.1.gz": "nova-api", "nova/nova-compute.log.1.gz": "nova-compute",
         "neutron/server.log.1.gz": "neutron-server",
         "neutron/lbaas-agent.log.1.gz": "lbaas-agent"}


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
        es_url, flush_count=2000, flush_interval=100, max_in_flight=4)


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


def run_replay(conf: Path, archive: Path, workers: int) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hekapy.collector.app.cli", "replay", "-c",
                        str(conf), "--workers", str(workers), str(archive)],
                       capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"replay failed ({r.returncode}): {r.stderr[-2000:]}")
    return elapsed


def replay_once(archive: Path, work: Path, workers: int, expected: int | None = None
                ) -> float:
    """`hekapy replay --workers N` of `archive` into a fresh double (its own process):
    the seconds it took, start-up included. With `expected`, the double must then hold
    exactly that many documents (SystemExit otherwise: no number from a broken run).
    This script's `main` and the harness's replay scenarios call it."""
    proc, url = start_process("--no-sources", "--no-mappings")
    try:
        work.mkdir(parents=True, exist_ok=True)
        conf = work / f"replay-{workers}.toml"
        conf.write_text(replay_config(work / f"state-{workers}", url))
        elapsed = run_replay(conf, archive, workers)
        if expected is not None:
            with urllib.request.urlopen(url + "/_double/count", timeout=30) as r:
                stored = json.loads(r.read())["documents"]
            if stored != expected:
                raise SystemExit(f"replay with {workers} worker(s): the double holds "
                                 f"{stored} documents, {expected} expected")
    finally:
        proc.kill()
        proc.wait()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=float, default=60.0, help="uncompressed archive size")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        nbytes, nlines = make_archive(tmp / "archive", args.mib)
        print(f"archive: {nbytes / 2**20:,.1f} MiB, {nlines:,} lines, "
              f"{len(FILES)} gzip files", flush=True)
        best: dict[int, float] = {}
        for run in range(args.runs):
            for workers in (1, 2):
                elapsed = replay_once(tmp / "archive", tmp / f"run-{run}", workers)
                rate = nbytes / elapsed / 2**20
                best[workers] = max(best.get(workers, 0.0), rate)
                print(f"run {run + 1}, {workers} worker(s): {rate:,.1f} MiB/s, "
                      f"{nlines / elapsed:,.0f} lines/s ({elapsed:,.1f} s)", flush=True)
        print(f"best: 1 worker {best[1]:,.1f} MiB/s, 2 workers {best[2]:,.1f} MiB/s, "
              f"scaling {best[2] / best[1]:.2f}x")


if __name__ == "__main__":
    main()
