"""Parts of hekapy measured alone, each through the function its standalone script
uses (so both report the same thing), on the harness's corpus where it applies:

- `decoders`: OpenStackLogDecoder on the corpus's oslo.log lines (benchmarks/decoders.py
  `measure`), next to the bare full-grammar regex over the same lines in the same run;
- `influxdb`: InfluxdbOutput into a real InfluxDB 1.x (Debian's influxd, started as the
  tests start it), one LMA-style metric point per corpus line, next to a bare aiohttp
  replay of the same pre-encoded bodies (benchmarks/influxdb_throughput.py `measure`);
  both databases are checked to hold every point;
- `replay-1`, `replay-2`: `hekapy replay --workers 1|2` of the corpus's oslo.log files
  gzip-compressed as an archive, into the Elasticsearch double with the `pipeline`
  scenario's configuration (benchmarks/replay_throughput.py `replay_once`), checked to
  hold every document; start-up excluded as `pipeline` excludes it (timed from the
  replay's "reading" line), CPU summed over all replay processes; the start-up
  (seconds, CPU) and the end-to-end time are reported beside.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from hekapy.benchmarks.harness import (
    OSLO_FILES,
    Bench,
    Sample,
    ScenarioError,
    repeat,
    tool_path,
)

INFLUX_HINT = "apt-get install influxdb (scripts/install-system-deps installs it)"


def corpus_lines(bench: Bench) -> list[tuple[str, str]]:
    """(stream name, line) for every line of the corpus's oslo.log files."""
    out: list[tuple[str, str]] = []
    for rel, logger in OSLO_FILES.items():
        with open(bench.corpus / rel, encoding="utf-8", errors="replace") as f:
            out.extend((logger, line) for line in f)
    return out


def decoders_once(bench: Bench) -> Sample:
    from hekapy.benchmarks.decoders import FAMILIES, measure
    lines = bench.cached("corpus_lines", lambda: corpus_lines(bench))
    m = measure(FAMILIES["openstack"], lines, repeat=1)
    if m.failures:
        raise ScenarioError(f"OpenStackLogDecoder failed on {m.failures} corpus lines")
    grammar = m.baseline_seconds["grammar"]
    return {"seconds": m.decoder_seconds, "items": m.lines, "bytes": m.nbytes,
            "grammar_regex_lines_per_s": m.lines / grammar,
            "ratio_to_grammar_regex": grammar / m.decoder_seconds}


def bench_decoders(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: decoders_once(bench))


def check_influxdb(args: Any) -> None:
    tool_path("influxd", None, INFLUX_HINT)


def _influxdb_service() -> Any:
    """tests/services.py's influxd start-up (the benchmark runs from a checkout)."""
    try:
        from tests.services import influxdb
    except ImportError:
        root = Path(__file__).resolve().parents[1]
        if not (root / "tests" / "services.py").is_file():
            raise ScenarioError("the influxdb scenario starts influxd with tests/services.py:"
                                " run the harness from a hekapy checkout") from None
        sys.path.insert(0, str(root))
        from tests.services import influxdb
    return influxdb


def bench_influxdb(bench: Bench, batch: int = 5000, in_flight: int = 2) -> list[Sample]:
    from hekapy.benchmarks.influxdb_throughput import measure
    influxdb = _influxdb_service()
    n = bench.lines  # one metric point per corpus line

    async def run_all() -> list[Sample]:
        samples: list[Sample] = []
        tmp = bench.scratch("influxdb")
        async with influxdb(tmp / "influxd") as db:
            for run in range(bench.runs + bench.warmup):
                replay_s, output_s = await measure(db, n, tmp, batch, in_flight, run)
                samples.append({"seconds": output_s, "items": n, "bytes": 0,
                                "unit": "points", "replay_points_per_s": n / replay_s,
                                "ratio_to_replay": replay_s / output_s})
        return samples[1:] if bench.warmup else samples

    try:
        return asyncio.run(run_all())
    except AssertionError as e:  # tests/services.py's and measure's failures
        raise ScenarioError(str(e)) from None


def replay_archive(bench: Bench) -> Path:
    from hekapy.benchmarks.replay_throughput import archive_from

    def make() -> Path:
        root = bench.scratch("archive")
        archive_from(root, {rel + ".1.gz": bench.corpus / rel for rel in OSLO_FILES})
        return root
    return bench.cached("replay_archive", make)


def replay_run(bench: Bench, workers: int) -> Sample:
    from hekapy.benchmarks.replay_throughput import replay_once
    archive = replay_archive(bench)
    return replay_once(archive, bench.scratch(f"replay{workers}"), workers,
                       bench.expected_documents())


def bench_replay_1(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: replay_run(bench, 1))


def bench_replay_2(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: replay_run(bench, 2))
