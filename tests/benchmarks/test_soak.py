"""The soak (benchmarks/soak.py) for 3 minutes, in every CI run: both LMA collectors under
2,000 lines/s with every fault of the long run at least once (rename and copytruncate
rotations, the Elasticsearch double down and answering 429, InfluxDB restarted, SIGHUP
reloads), ending with the exact accounting and the leak slopes. The 60-minute run's
figures are in docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hekapy.benchmarks.soak import Plan

pytestmark = pytest.mark.slow


def test_a_short_plan_has_every_fault():
    plan = Plan.for_minutes(3)
    actions = [a for _, a in plan.events()]
    for action in ("es_down", "es_up", "es_429_on", "es_429_off", "influx_restart",
                   "sighup"):
        assert action in actions
    assert plan.rotate_every <= 10 and plan.seconds == 180
    assert all(t < plan.seconds - 5 for t, _ in plan.events())
    hour = Plan.for_minutes(60)
    assert (hour.rotate_every, hour.es_every, hour.es_fault, hour.influx_every,
            hour.sighup_every) == (60, 300, 20, 600, 600)


@pytest.mark.services
def test_soak_three_minutes(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hekapy.benchmarks", "soak", "--minutes", "3",
         "--results", str(tmp_path / "results"), "--keep", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert (tmp_path / "results" / "soak-latest.json").exists(), out[-4000:]
    result = json.loads((tmp_path / "results" / "soak-latest.json").read_text())
    assert proc.returncode == 0, (result.get("failures"), out[-4000:])
    assert result["ok"] and result["lost"] == 0 and result["duplicates"] == 0
    written = result["written"]
    assert result["stored"] + result["dead_lettered"] + result["dropped"] == \
        written["written"] >= 300_000
    assert written["renames"] and written["copytruncates"]
    done = [a for _, a in result["faults"]]
    for action in ("es_down", "es_429_on", "influx_restart", "sighup"):
        assert action in done
    assert result["reloads"] == {"log_collector": done.count("sighup"),
                                 "metric_collector": done.count("sighup")}
    metrics = result["metrics"]  # late lines are ignored by LMA's HTTP metrics
    assert 0.5 * metrics["http_lines_written"] < metrics["http_requests_counted"] <= \
        metrics["http_lines_written"]
    assert (tmp_path / "results" / "soak-latest.md").read_text().count("\n|") >= 4
