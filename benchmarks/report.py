"""The harness's report: each row's ratios to the anchors measured in the same run
(the naive Python shipper, cat, the bare regex loop, rsyslog), the issue's targets,
the console lines, the JSON (benchmarks/results/<UTC time>.json and latest.json), the
bar chart (latest.png, with matplotlib) and the README's Markdown table."""

from __future__ import annotations

import json
import operator
import os
import sys
import time
from pathlib import Path
from typing import Any

from hekapy.collector import compiled

ANCHORS = ("naive", "cat", "regex", "rsyslog-es", "rsyslog-mmnormalize", "rsyslog-file")
HEKAPY_ROWS = ("pipeline", "pipeline-429", "outage", "decoders", "influxdb", "replay-1",
               "replay-2")
# (row, value, comparison, bound, what the issue asks)
TARGETS: list[tuple[str, str, str, float, str]] = [
    ("pipeline", "ratios.rsyslog-es", ">=", 1.5, ">= 1.5x rsyslog -> omelasticsearch"),
    ("pipeline", "ratios.rsyslog-mmnormalize", ">=", 2.0,
     ">= 2x rsyslog with mmnormalize"),
    ("pipeline", "ratios.naive", ">=", 0.8, ">= 0.8x the naive Python shipper"),
    ("pipeline", "peak_rss_steady_mib", "<=", 150, "peak RSS <= 150 MiB at steady state"),
    ("outage", "peak_rss_steady_mib", "<=", 150,
     "peak RSS <= 150 MiB at steady state (10k lines/s)"),
    ("outage", "peak_rss_outage_mib", "<=", 150, "peak RSS <= 150 MiB during the outage"),
    ("outage", "lines_lost", "<=", 0, "0 lines lost"),
    ("pipeline", "cpu_s_per_gib", "<=", 20, "CPU <= 20 s per GiB of log lines"),
    ("pipeline", "latency_p99_ms", "<=", 500, "write->ack p99 < 500 ms at 2,000 lines/s"),
    ("decoders", "ratio_to_grammar_regex", ">=", 2.0, ">= 2x the full-grammar regex"),
    ("influxdb", "ratio_to_replay", ">=", 0.5, ">= 50% of a bare replay of the same bodies"),
    ("replay-1", "ratio_to_pipeline", ">=", 1.0, ">= 1.0x pipeline lines/s"),
    ("replay-2", "ratio_to_replay_1", ">=", 1.35, ">= 1.35x replay-1 lines/s"),
    ("replay-1", "cpu_ratio_to_pipeline", "<=", 1.1,
     "CPU s/GiB (all replay processes) <= 1.1x pipeline's"),
    ("replay-2", "cpu_ratio_to_pipeline", "<=", 1.1,
     "CPU s/GiB (all replay processes) <= 1.1x pipeline's"),
]
_OPS = {">=": operator.ge, "<=": operator.le}


def add_ratios(rows: dict[str, dict[str, Any]]) -> None:
    """`ratios` (to every anchor measured) and `ratio_to_naive` on each rate row;
    replay-2 also gets its scaling over replay-1."""
    rates = {a: rows[a]["lines_per_s"] for a in ANCHORS
             if a in rows and "lines_per_s" in rows[a]}
    for row in rows.values():
        if "lines_per_s" not in row:
            continue
        row["ratios"] = {a: row["lines_per_s"] / r for a, r in rates.items()}
        if "naive" in rates:
            row["ratio_to_naive"] = row["ratios"]["naive"]
    if "lines_per_s" in rows.get("replay-1", {}) and "lines_per_s" in rows.get("replay-2", {}):
        rows["replay-2"]["ratio_to_replay_1"] = (rows["replay-2"]["lines_per_s"]
                                                 / rows["replay-1"]["lines_per_s"])
    daemon = rows.get("pipeline", {})
    for name in ("replay-1", "replay-2"):
        row = rows.get(name, {})
        if "lines_per_s" in row and "lines_per_s" in daemon:
            row["ratio_to_pipeline"] = row["lines_per_s"] / daemon["lines_per_s"]
        # A --quick corpus can take the daemon less CPU than the clock's 10 ms tick.
        if "cpu_s_per_gib" in row and daemon.get("cpu_s_per_gib"):
            row["cpu_ratio_to_pipeline"] = row["cpu_s_per_gib"] / daemon["cpu_s_per_gib"]


def _value(row: dict[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def check_targets(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name, path, op, bound, what in TARGETS:
        value = _value(rows.get(name, {}), path)
        if value is None:
            continue
        out.append({"row": name, "target": what, "value": value,
                    "met": bool(_OPS[op](value, bound))})
    return out


def _f(value: Any, fmt: str = ",.0f") -> str:
    return "—" if value is None else format(value, fmt)


def notes(name: str, row: dict[str, Any]) -> str:
    if "error" in row:
        return "FAILED: " + row["error"].splitlines()[0][:160]
    parts = []
    if "latency_p50_ms" in row:
        parts.append(f"write→ack p50 {row['latency_p50_ms']:,.0f} ms, p99 "
                     f"{row['latency_p99_ms']:,.0f} ms at {row['latency_rate']:,.0f} lines/s")
    if "peak_rss_steady_mib" in row and "recovery_seconds" not in row:
        parts.append(f"steady-state RSS {row['peak_rss_steady_mib']:,.0f} MiB (peak: "
                     "catch-up of the appended corpus)")
    if "rejected_429" in row:
        parts.append(f"{row['rejected_429']:,.0f} bulk requests answered 429")
    if "recovery_seconds" in row:
        parts.append(f"{row['write_rate']:,.0f} lines/s, double down "
                     f"{row['outage_seconds']:,.0f} s: recovery {row['recovery_seconds']:,.1f}"
                     f" s, disk buffer peak {row['buffer_peak_mib']:,.0f} MiB, peak RSS "
                     f"{row['peak_rss_steady_mib']:,.0f} MiB before the outage, "
                     f"{row['peak_rss_outage_mib']:,.0f} MiB during it (run's peak: "
                     f"recovery), {row['lines_lost']:,.0f} of {row['lines_written']:,.0f} "
                     "lines lost")
    if "ratio_to_grammar_regex" in row:
        parts.append(f"{row['ratio_to_grammar_regex']:.0%} of the full-grammar regex "
                     f"({row['grammar_regex_lines_per_s']:,.0f} lines/s)")
    if "ratio_to_replay" in row:
        parts.append(f"points/s; {row['ratio_to_replay']:.0%} of a bare replay of the "
                     f"same bodies ({row['replay_points_per_s']:,.0f} points/s)")
    if "ratio_to_pipeline" in row:
        parts.append(f"{row['ratio_to_pipeline']:.2f}x pipeline")
    if "ratio_to_replay_1" in row:
        parts.append(f"{row['ratio_to_replay_1']:.2f}x replay-1")
    if "cpu_ratio_to_pipeline" in row:
        parts.append(f"CPU {row['cpu_ratio_to_pipeline']:.2f}x pipeline's (all processes)")
    if "startup_seconds" in row:
        parts.append(f"start-up {row['startup_seconds']:,.1f} s and "
                     f"{row['startup_cpu_seconds']:,.1f} CPU s, not timed (end to end "
                     f"{row['seconds_with_startup']:,.1f} s)")
    return "; ".join(parts)


def print_row(name: str, row: dict[str, Any]) -> None:
    if "lines_per_s" in row:
        lo, hi = row["spread_lines_per_s"]
        extra = ""
        if "cpu_s_per_gib" in row:
            extra = (f"  CPU {row['cpu_s_per_gib']:,.0f} s/GiB, peak RSS "
                     f"{_f(row.get('peak_rss_mib'))} MiB")
        print(f"{name:20s} {row['lines_per_s']:>12,.0f} {row['unit']}/s "
              f"{_f(row.get('mib_per_s'), ',.1f'):>8} MiB/s  (spread {lo:,.0f}-{hi:,.0f})"
              + extra, flush=True)
    note = notes(name, row)
    if note:
        print(f"{'' if 'lines_per_s' in row else name:20s} {note}", flush=True)


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| scenario | lines/s | MiB/s | vs naive | vs rsyslog→ES | vs rsyslog+mmnormalize"
             " | CPU s/GiB | peak RSS MiB | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        ratios = row.get("ratios", {})
        rate = _f(row.get("lines_per_s"))
        if row.get("unit", "lines") != "lines":
            rate += f" {row['unit']}/s"
        cells = [name, rate, _f(row.get("mib_per_s"), ",.1f"),
                 _f(ratios.get("naive"), ".2f") + ("x" if "naive" in ratios else ""),
                 _f(ratios.get("rsyslog-es"), ".2f") + ("x" if "rsyslog-es" in ratios else ""),
                 _f(ratios.get("rsyslog-mmnormalize"), ".2f")
                 + ("x" if "rsyslog-mmnormalize" in ratios else ""),
                 _f(row.get("cpu_s_per_gib")), _f(row.get("peak_rss_mib")),
                 notes(name, row).replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finish(rows: dict[str, dict[str, Any]], corpus: dict[str, Any], args: Any,
           results: Path) -> dict[str, Any]:
    add_ratios(rows)
    targets = check_targets(rows)
    if "naive" in rows and "ratios" in rows["naive"]:
        print()
        for name, row in rows.items():
            if "ratio_to_naive" in row:
                extra = "".join(f", {row['ratios'][a]:.2f}x {a}" for a in
                                ("rsyslog-es", "rsyslog-mmnormalize") if a in row["ratios"])
                print(f"{name:20s} {row['ratio_to_naive']:.2f}x the naive Python shipper"
                      + extra)
    if targets:
        print()
        for t in targets:
            print(f"target {'met   ' if t['met'] else 'MISSED'} {t['row']}: {t['target']} "
                  f"(got {t['value']:,.2f})")
    report = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "interpreter": os.path.realpath(sys.executable),
                          "hot_path": compiled.summary()},
              "corpus": corpus,
              "options": {k: v for k, v in vars(args).items()
                          if k not in ("results", "scenarios")},
              "results": rows, "targets": targets}
    results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=1, default=str)
    (results / f"{report['time'].replace(':', '')}.json").write_text(text)
    (results / "latest.json").write_text(text)
    chart(rows, results)
    print("\n" + markdown_table(rows))
    return report


def chart(rows: dict[str, dict[str, Any]], results: Path) -> None:
    """Two panels on the same rows: lines per second on a linear scale (cat and the
    bare regex loop, which ship nothing, left out: on their scale the shippers'
    differences vanish), and CPU seconds per GiB, where hekapy and rsyslog are
    compared per unit of work."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart; pip install matplotlib)")
        return
    names = [n for n, r in rows.items()
             if r.get("lines_per_s") and r.get("unit") == "lines" and n not in ("cat", "regex")]
    if not names:
        return
    costly = [n for n in names if rows[n].get("cpu_s_per_gib")]

    def color(n: str) -> str:
        return "#c33" if n in HEKAPY_ROWS else "#36c" if n.startswith("rsyslog") else "#888"

    fig, (rate_ax, cpu_ax) = plt.subplots(
        1, 2, figsize=(11, 0.42 * len(names) + 1.8),
        gridspec_kw={"width_ratios": [3, 2]})
    rates = [rows[n]["lines_per_s"] for n in names]
    rate_ax.barh(names, rates, color=[color(n) for n in names])
    rate_ax.invert_yaxis()
    rate_ax.set_xlabel("lines/s (median, linear)")
    for i, v in enumerate(rates):
        rate_ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    rate_ax.set_xlim(0, max(rates) * 1.25)
    if costly:
        cpu = [rows[n]["cpu_s_per_gib"] for n in costly]
        cpu_ax.barh(costly, cpu, color=[color(n) for n in costly])
        cpu_ax.invert_yaxis()
        cpu_ax.axvline(20, color="#c33", linestyle="--", linewidth=1)
        cpu_ax.set_xlabel("CPU s per GiB (lower is better; dashed: 20)")
        for i, v in enumerate(cpu):
            cpu_ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
        cpu_ax.set_xlim(0, max(cpu) * 1.25)
    fig.suptitle("hekapy (red), rsyslog (blue) and baselines: same corpus, same run")
    fig.tight_layout()
    fig.savefig(results / "latest.png", dpi=100)
    plt.close(fig)
    print(f"chart: {results / 'latest.png'}")
