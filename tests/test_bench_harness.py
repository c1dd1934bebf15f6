"""The benchmark harness runs end to end on a tiny corpus: every scenario reports, the
pipeline scenario checks that the Elasticsearch double got every document, and the
JSON report and the chart are written where asked."""

from __future__ import annotations

import json
import subprocess
import sys


def test_harness_reports_every_scenario(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hekapy.benchmarks", "--mib", "0.5",
                        "--runs", "1", "--results", str(tmp_path)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    rows = report["results"]
    assert set(rows) == {"cat", "regex", "naive", "pipeline"}
    assert all(row["lines_per_s"] > 0 for row in rows.values())
    assert rows["naive"]["ratio_to_naive"] == 1.0
    pipeline = rows["pipeline"]
    assert pipeline["documents"] > 0 and pipeline["peak_rss_mib"] > 10
    assert (tmp_path / "latest.png").stat().st_size > 1000
    assert "pipeline" in r.stdout and "x the naive Python shipper" in r.stdout


def test_unknown_scenario_is_an_error():
    r = subprocess.run([sys.executable, "-m", "hekapy.benchmarks", "nope"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown scenario" in r.stderr
