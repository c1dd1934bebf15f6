"""Instructions per line of the whole daemon and of a whole replay, counted by callgrind
in every process (a replay's coordinator and workers summed).

Wall-clock and CPU-second figures move by tens of percent on a shared machine;
instruction counts do not. Each program runs twice under `valgrind --tool=callgrind
--trace-children=yes`, on N and 4N log events, into the Elasticsearch double (its own
process, not counted); the difference divided by the difference in lines is the cost of
a line, start-up and shutdown cancelling out:

- daemon: `hekapy run` with the `pipeline` scenario's configuration
  (benchmarks/scenarios_pipeline.py) tailing nova-api.log from its start, stopped by
  SIGTERM once the double holds every document;
- replay: `hekapy replay --workers W` with the same configuration
  (benchmarks/replay_throughput.py) of nova-api.log.1.gz (gzip level 1, as the
  harness's replay archive; `--plain`: uncompressed), to its end.

    python -m hekapy.benchmarks.callgrind_replay [--events 1500] [--workers 1] [--plain]
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hekapy.benchmarks.harness import Double, expected_documents
from hekapy.benchmarks.replay_throughput import replay_config
from hekapy.benchmarks.scenarios_pipeline import pipeline_config

HEKAPY = [sys.executable, "-m", "hekapy.collector.app.cli"]


def write_events(path: Path, events: int) -> int:
    """`events` oslo.log events (the benchmark corpus's); returns the lines."""
    from hekapy.benchmarks.corpus import Corpus
    corpus = Corpus(seed=3)
    text = "".join(corpus.oslo_event("nova/nova-api.log") for _ in range(events))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text.count("\n")


def valgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={out}/callgrind.%p"]


def instructions(out: Path) -> int:
    """Instructions of every process callgrind followed."""
    total = 0
    for f in out.glob("callgrind.*"):
        text = f.read_text(errors="replace")
        m = re.search(r"^summary:\s+(\d+)", text, re.M) or \
            re.search(r"^totals:\s+(\d+)", text, re.M)
        if m:
            total += int(m.group(1))
    return total


def daemon(work: Path, events: int, timeout: float = 1800) -> tuple[int, int]:
    """(instructions, lines) of `hekapy run` shipping `events` events."""
    logs = work / "logs"
    lines = write_events(logs / "nova" / "nova-api.log", events)
    expected = expected_documents([logs / "nova" / "nova-api.log"])
    out = work / "callgrind"
    out.mkdir()
    with Double() as es:
        conf = work / "hekad.toml"
        conf.write_text(pipeline_config(work / "state", logs, es.url))
        with open(work / "hekapy.log", "wb") as err:
            proc = subprocess.Popen([*valgrind(out), *HEKAPY, "run", "-c", str(conf)],
                                    stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        try:
            while es.count()["documents"] < expected:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the daemon stopped short: "
                                     f"{(work / 'hekapy.log').read_text()[-2000:]}")
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=600)
    return instructions(out), lines


def replay(work: Path, events: int, workers: int, compress: bool = True
           ) -> tuple[int, int]:
    """(instructions, lines) of `hekapy replay` of `events` events, gzip-compressed
    unless `compress` is false."""
    plain = work / "plain" / "nova-api.log"
    lines = write_events(plain, events)
    archive = work / "archive" / "nova" / ("nova-api.log.1.gz" if compress
                                           else "nova-api.log.1")
    archive.parent.mkdir(parents=True)
    data = plain.read_bytes()
    archive.write_bytes(gzip.compress(data, 1) if compress else data)
    expected = expected_documents([plain])
    out = work / "callgrind"
    out.mkdir()
    with Double() as es:
        conf = work / "replay.toml"
        conf.write_text(replay_config(work / "state", es.url))
        r = subprocess.run([*valgrind(out), *HEKAPY, "replay", "-c", str(conf), "--workers",
                            str(workers), str(work / "archive")], capture_output=True)
        if r.returncode != 0 or es.count()["documents"] != expected:
            raise SystemExit(f"replay failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return instructions(out), lines


def per_line(measure: object, events: int, tmp: Path, name: str) -> float:
    small = measure(tmp / f"{name}-small", events)  # type: ignore[operator]
    large = measure(tmp / f"{name}-large", 4 * events)  # type: ignore[operator]
    return (large[0] - small[0]) / (large[1] - small[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--events", type=int, default=1500)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--plain", action="store_true", help="replay an uncompressed file")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        d_line = per_line(daemon, args.events, tmp, "daemon")
        r_line = per_line(lambda w, e: replay(w, e, args.workers, not args.plain),
                          args.events, tmp, "replay")
    hot = "pure Python" if os.environ.get("HEKAPY_PURE") else "as installed"
    what = "plain" if args.plain else "gzip"
    print(f"daemon {d_line / 1000:,.1f}k instructions per line; replay ({args.workers} "
          f"worker(s), all processes, {what} archive) {r_line / 1000:,.1f}k: "
          f"{r_line / d_line:.2f}x "
          f"({sys.version.split()[0]}, hot path {hot})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
