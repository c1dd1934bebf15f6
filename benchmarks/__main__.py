"""The benchmark harness: `python -m hekapy.benchmarks [SCENARIO...] [--mib N] [--runs N]`.

Every scenario runs on the same seeded corpus (benchmarks/corpus.py, oslo.log's own
formatter), once to warm up and then `--runs` times; the report gives the median and
the spread (min-max) of each, and each row's ratio to the naive Python shipper measured
in the same run (the machines are noisy: compare within a run only). Results go to
benchmarks/results/<UTC time>.json (and latest.json), and a bar chart to
benchmarks/results/latest.png when matplotlib is installed.

Scenarios:
- `cat`: `cat` of the corpus to /dev/null (the physical limit of reading it);
- `regex`: a bare Python loop, one full-grammar oslo.log regex per line (CPython's
  ceiling for line parsing);
- `naive`: a naive Python shipper: regex, a 13-field dict, orjson, 5,000-document bulk
  bodies written to /dev/null;
- `pipeline`: `hekapy run` tailing the corpus (LogstreamerInput, OpenStackLogDecoder,
  ESJsonEncoder, ElasticSearchOutput) into the Elasticsearch double in its own process:
  lines/s, MiB/s, CPU seconds per GiB and peak RSS of hekapy, timed from the first
  stored document (start-up excluded). It fails loudly when the double did not receive
  every document the lines make.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from hekapy.benchmarks.corpus import Corpus
from hekapy.benchmarks.es_double import start_process
from hekapy.benchmarks.openstack_config import es_output, openstack_logs

RESULTS = Path(__file__).resolve().parent / "results"
OSLO_FILES = ("nova/nova-api.log", "nova/nova-compute.log", "neutron/server.log",
              "neutron/lbaas-agent.log")
# The OpenStack line grammar in one regex (what a regex-parsing shipper would use).
OSLO_RE = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (?P<pid>\d+) (?P<level>[A-Z]+) "
    r"(?P<module>\S+) (?:\[(?P<ctx>[^\]]*)\] )?(?P<msg>.*)")

LMA_ES_FIELDS = ["DynamicFields", "Hostname", "Logger", "Payload", "Pid", "Severity",
                 "Timestamp", "Type"]


def pipeline_config(state: Path, logs: Path, es_url: str) -> str:
    return openstack_logs(state, logs) + es_output(
        es_url, fields=LMA_ES_FIELDS, flush_count=2000, flush_interval=200, max_in_flight=4)


def oslo_paths(corpus: Path) -> list[Path]:
    return [corpus / f for f in OSLO_FILES]


def bench_cat(corpus: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    subprocess.run(["cat", *map(str, oslo_paths(corpus))], stdout=subprocess.DEVNULL,
                   check=True)
    return {"seconds": time.perf_counter() - t0}


def bench_regex(corpus: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    n = 0
    match = OSLO_RE.match
    for p in oslo_paths(corpus):
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                if match(line):
                    n += 1
    return {"seconds": time.perf_counter() - t0}


def bench_naive(corpus: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    match = OSLO_RE.match
    body: list[bytes] = []
    with open(os.devnull, "wb") as out:
        for p in oslo_paths(corpus):
            with open(p, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = match(line)
                    if not m:
                        continue
                    doc = {"Timestamp": m["ts"], "Pid": int(m["pid"]),
                           "severity_label": m["level"], "python_module": m["module"],
                           "Payload": m["msg"], "Type": "log", "Logger": p.stem,
                           "Hostname": "bench-1", "Severity": 6, "programname": p.stem,
                           "request_id": m["ctx"] or "", "EnvVersion": "", "Uuid": ""}
                    body.append(b'{"index":{"_index":"log"}}\n' + orjson.dumps(doc) + b"\n")
                    if len(body) == 5000:
                        out.write(b"".join(body))
                        body = []
        out.write(b"".join(body))
    return {"seconds": time.perf_counter() - t0}


def expected_documents(corpus: Path) -> int:
    from types import SimpleNamespace

    from hekapy.collector.message import Message
    from hekapy.decoders.openstack_log import OpenStackLogDecoder
    options = {k: o.default_value() for k, o in OpenStackLogDecoder.all_options().items()}
    n = 0
    for p in oslo_paths(corpus):
        dec = OpenStackLogDecoder("bench", SimpleNamespace(**{**options, "tz": "UTC"}))
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                r = dec.decode(Message(payload=line))
                n += 0 if r is None else 1 if isinstance(r, Message) else len(r)
        n += len(dec.flush())
    return n


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def bench_pipeline(corpus: Path, expected: int) -> dict[str, float]:
    import psutil
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        double, url = start_process("--no-sources", "--no-mappings")
        try:
            conf = tmp / "hekad.toml"
            conf.write_text(pipeline_config(tmp / "state", corpus, url))
            proc = subprocess.Popen([sys.executable, "-m", "hekapy.collector.cli", "run",
                                     "-c", str(conf)], stderr=subprocess.DEVNULL)
            ps = psutil.Process(proc.pid)
            peak = 0
            stored = 0
            # Timed from the first stored document (start-up, imports and the first
            # flush excluded; they are not throughput), CPU likewise.
            t0 = cpu0 = 0.0
            last_change = time.perf_counter()
            try:
                while stored < expected:
                    if proc.poll() is not None:
                        raise SystemExit(f"hekapy exited with {proc.returncode}")
                    peak = max(peak, ps.memory_info().rss)
                    now_stored = _get(url + "/_double/stats")["documents"]
                    if now_stored != stored:
                        if not stored:
                            t0 = time.perf_counter()
                            cpu0 = sum(ps.cpu_times()[:2])
                            first = now_stored
                        stored, last_change = now_stored, time.perf_counter()
                    elif time.perf_counter() - last_change > 30:
                        raise SystemExit(f"the double stopped at {stored} of {expected} "
                                         "documents: a broken run, no number reported")
                    time.sleep(0.02)  # sampling RSS and the double's count
                # The documents after the first sample, over the time they took.
                elapsed = (last_change - t0) * expected / max(expected - first, 1)
                cpu_s = (sum(ps.cpu_times()[:2]) - cpu0) * expected / max(expected - first, 1)
            finally:
                proc.terminate()
                proc.wait(60)
        finally:
            double.kill()
            double.wait()
    return {"seconds": elapsed, "cpu_seconds": cpu_s, "peak_rss_mib": peak / 2**20}


SCENARIOS: dict[str, Callable[..., dict[str, float]]] = {
    "cat": bench_cat, "regex": bench_regex, "naive": bench_naive, "pipeline": bench_pipeline}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", help=f"some of: {', '.join(SCENARIOS)} (all)")
    ap.add_argument("--mib", type=float, default=100.0, help="corpus size")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and "
                    "the chart go")
    args = ap.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from "
                 f"{', '.join(SCENARIOS)}")
    args.scenarios = args.scenarios or list(SCENARIOS)
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        corpus = Path(d) / "corpus"
        Corpus(args.seed).write(corpus, int(args.mib * 2**20))
        nbytes = sum(p.stat().st_size for p in oslo_paths(corpus))
        lines = sum(p.read_bytes().count(b"\n") for p in oslo_paths(corpus))
        expected = expected_documents(corpus) if "pipeline" in args.scenarios else 0
        print(f"corpus: {nbytes / 2**20:,.1f} MiB of oslo.log lines, {lines:,} lines "
              f"({nbytes / lines:,.0f} B/line), seed {args.seed}", flush=True)
        rows: dict[str, dict[str, Any]] = {}
        for name in args.scenarios:
            fn = SCENARIOS[name]
            call = (lambda fn=fn: fn(corpus, expected)) if name == "pipeline" else \
                (lambda fn=fn: fn(corpus))
            call()  # warm-up (page cache, imports)
            samples = [call() for _ in range(args.runs)]
            secs = [s["seconds"] for s in samples]
            med = statistics.median(secs)
            row = {"lines_per_s": lines / med, "mib_per_s": nbytes / med / 2**20,
                   "spread_lines_per_s": [lines / max(secs), lines / min(secs)],
                   "runs": args.runs}
            if "cpu_seconds" in samples[0]:
                cpu = statistics.median(s["cpu_seconds"] for s in samples)
                row["cpu_s_per_gib"] = cpu / (nbytes / 2**30)
                row["peak_rss_mib"] = max(s["peak_rss_mib"] for s in samples)
                row["documents"] = expected
            rows[name] = row
            print(f"{name:10s} {row['lines_per_s']:>12,.0f} lines/s {row['mib_per_s']:>8,.1f}"
                  f" MiB/s  (spread {row['spread_lines_per_s'][0]:,.0f}-"
                  f"{row['spread_lines_per_s'][1]:,.0f})"
                  + (f"  CPU {row['cpu_s_per_gib']:,.0f} s/GiB, peak RSS "
                     f"{row['peak_rss_mib']:,.0f} MiB" if "cpu_s_per_gib" in row else ""),
                  flush=True)
        if "naive" in rows:
            base = rows["naive"]["lines_per_s"]
            for name, row in rows.items():
                row["ratio_to_naive"] = row["lines_per_s"] / base
                print(f"{name:10s} {row['ratio_to_naive']:.2f}x the naive Python shipper")
    report = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
              "corpus": {"mib": nbytes / 2**20, "lines": lines, "seed": args.seed},
              "results": rows}
    results: Path = args.results
    results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1)
    (results / f"{report['time'].replace(':', '')}.json").write_text(text)
    (results / "latest.json").write_text(text)
    chart(rows, results)
    return 0


def chart(rows: dict[str, dict[str, Any]], results: Path = RESULTS) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart; pip install matplotlib)")
        return
    names = list(rows)
    values = [rows[n]["mib_per_s"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(names, values, color=["#888" if n != "pipeline" else "#c33" for n in names])
    ax.set_xscale("log")  # cat is two orders of magnitude above the rest
    ax.set_xlabel("MiB/s of oslo.log lines (median, log scale)")
    ax.set_title("hekapy and its baselines, same corpus, same run")
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,.1f}", va="center")
    fig.tight_layout()
    fig.savefig(results / "latest.png", dpi=100)
    print(f"chart: {results / 'latest.png'}")


if __name__ == "__main__":
    sys.exit(main())
