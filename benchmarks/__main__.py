"""The benchmark harness: `python -m hekapy.benchmarks [SCENARIO...] [--mib N] [--runs N]`.

Every scenario runs on the same seeded corpus (benchmarks/corpus.py, oslo.log's own
formatter), once to warm up (not with --quick) and then `--runs` times; the report gives
the median and the spread (min-max) of each, and each row's ratio to the anchors
measured in the same run: the naive Python shipper, cat, the bare regex loop and
rsyslog (the machines are noisy: compare within a run only). Results go to
benchmarks/results/<UTC time>.json (and latest.json), a bar chart to
benchmarks/results/latest.png when matplotlib is installed, and the README's Markdown
table to stdout. Every scenario starts its own services and cleans up; a broken run
(a sink short of documents, a numbered line lost, a process that died, a missing tool)
reports no number: the row says FAILED and the harness exits 1.

Scenarios (no name: all of them, in this order):
- baselines (benchmarks/baselines.py): `cat`, `regex`, `naive`;
- hekapy end to end (benchmarks/scenarios_pipeline.py): `pipeline` (tail → LMA decoding
  → Elasticsearch double: lines/s, MiB/s, CPU s/GiB, peak RSS, write→ack latency
  p50/p99), `pipeline-429` (the double answers 429 to one bulk request in five),
  `outage` (use_buffering, lines at 10k/s, the double down 60 s: peak RSS, disk buffer
  peak, recovery time, lines lost: must be 0);
- rsyslog from Debian on the same corpus and double (benchmarks/rsyslog_peer.py):
  `rsyslog-file` (imfile → omfile), `rsyslog-es` (imfile → omelasticsearch),
  `rsyslog-mmnormalize` (imfile → mmnormalize → omelasticsearch); they need
  scripts/install-bench-deps;
- parts of hekapy (benchmarks/scenarios_components.py): `decoders`, `influxdb` (needs
  influxd, scripts/install-system-deps), `replay-1`, `replay-2`.

`python -m hekapy.benchmarks soak --minutes N` is the soak (benchmarks/soak.py): both
LMA collectors for N minutes under steady traffic and recurring faults, leak slopes and
the exact accounting; it has its own options (`soak --help`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hekapy.benchmarks import baselines, report, rsyslog_peer, scenarios_components
from hekapy.benchmarks import scenarios_pipeline as pipeline
from hekapy.benchmarks.corpus import Corpus
from hekapy.benchmarks.harness import Bench, Sample, ScenarioError, make_row
from hekapy.collector import compiled

RESULTS = Path(__file__).resolve().parent / "results"

# name → (scenario, preflight check of what it needs, run before the corpus is made)
SCENARIOS: dict[str, tuple[Callable[[Bench], list[Sample]], Callable[[Any], Any] | None]] = {
    "cat": (baselines.bench_cat, None),
    "regex": (baselines.bench_regex, None),
    "naive": (baselines.bench_naive, None),
    "decoders": (scenarios_components.bench_decoders, None),
    "pipeline": (pipeline.bench_pipeline, None),
    "pipeline-429": (pipeline.bench_pipeline_429, None),
    "rsyslog-file": (rsyslog_peer.bench_rsyslog_file,
                     lambda a: rsyslog_peer.check("file", a.rsyslogd)),
    "rsyslog-es": (rsyslog_peer.bench_rsyslog_es,
                   lambda a: rsyslog_peer.check("es", a.rsyslogd)),
    "rsyslog-mmnormalize": (rsyslog_peer.bench_rsyslog_mmnormalize,
                            lambda a: rsyslog_peer.check("mmnormalize", a.rsyslogd)),
    "outage": (pipeline.bench_outage, None),
    "influxdb": (scenarios_components.bench_influxdb, scenarios_components.check_influxdb),
    "replay-1": (scenarios_components.bench_replay_1, None),
    "replay-2": (scenarios_components.bench_replay_2, None),
}
# Option: (default, default with --quick)
PHASES = {"latency_rate": (2000.0, 2000.0), "latency_seconds": (5.0, 1.0),
          "outage_rate": (10000.0, 10000.0), "outage_seconds": (60.0, 3.0),
          "outage_pre": (5.0, 1.0), "outage_post": (5.0, 1.0)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", help=f"some of: {', '.join(SCENARIOS)} (all)")
    ap.add_argument("--mib", type=float, default=100.0, help="corpus size")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and "
                    "the chart go")
    ap.add_argument("--quick", action="store_true", help="no warm-up run, short latency "
                    "and outage phases (tests)")
    ap.add_argument("--latency-rate", type=float, help="pipeline: numbered lines/s "
                    "appended for the write→ack latency (2000)")
    ap.add_argument("--latency-seconds", type=float, help="pipeline: for so long (5; 1 "
                    "with --quick)")
    ap.add_argument("--outage-rate", type=float, help="outage: lines/s written (10000)")
    ap.add_argument("--outage-seconds", type=float, help="outage: how long the double is "
                    "down (60; 3 with --quick)")
    ap.add_argument("--outage-pre", type=float, help="outage: seconds of writing before "
                    "it (5; 1 with --quick)")
    ap.add_argument("--outage-post", type=float, help="outage: seconds of writing after "
                    "recovery (5; 1 with --quick)")
    ap.add_argument("--rsyslogd", help="the rsyslogd binary (default: PATH, /usr/sbin)")
    args = ap.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from "
                 f"{', '.join(SCENARIOS)}")
    args.scenarios = args.scenarios or list(SCENARIOS)
    for key, (default, quick) in PHASES.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else default)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["soak"]:  # a long run with faults, its own options (benchmarks/soak.py)
        from hekapy.benchmarks import soak
        return soak.main(argv[1:])
    args = parse_args(argv)
    for name in args.scenarios:
        check = SCENARIOS[name][1]
        try:
            if check is not None:
                check(args)
        except ScenarioError as e:
            print(f"hekapy.benchmarks: {name}: {e}", file=sys.stderr)
            return 1
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="hekapy-bench-") as d:
        tmp = Path(d)
        corpus = tmp / "corpus"
        Corpus(args.seed).write(corpus, int(args.mib * 2**20))
        bench = Bench(corpus=corpus, tmp=tmp, nbytes=0, lines=0, args=args)
        bench.nbytes = sum(p.stat().st_size for p in bench.oslo_paths)
        bench.lines = sum(p.read_bytes().count(b"\n") for p in bench.oslo_paths)
        print(f"corpus: {bench.nbytes / 2**20:,.1f} MiB of oslo.log lines, {bench.lines:,} "
              f"lines ({bench.nbytes / bench.lines:,.0f} B/line), seed {args.seed}; "
              f"Python {sys.version.split()[0]} ({os.path.realpath(sys.executable)}), hot "
              f"path: {compiled.summary()}", flush=True)
        for name in args.scenarios:
            try:
                rows[name] = make_row(SCENARIOS[name][0](bench), bench)
            except ScenarioError as e:
                print(f"FAILED {name}: {e}", file=sys.stderr, flush=True)
                rows[name] = {"error": str(e)}
            report.print_row(name, rows[name])
        corpus_info = {"mib": bench.nbytes / 2**20, "lines": bench.lines, "seed": args.seed}
        if bench._expected is not None:
            corpus_info["documents"] = bench._expected
    report.finish(rows, corpus_info, args, args.results)
    failed = [n for n, r in rows.items() if "error" in r]
    if failed:
        print(f"hekapy.benchmarks: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
