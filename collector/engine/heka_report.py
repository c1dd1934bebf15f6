"""Heka's report of a running pipeline: the `heka.all-report` JSON that Heka's
DashboardOutput had hekad inject into the router every `ticker_interval` (as the
Payload of a message with Type `heka.all-report` and Logger `hekad`, no fields), and
that the status server serves at `/heka.all-report`. What read Heka's report (LMA's
heka_monitoring.lua, a Heka dashboard) reads hekapy's. The format and its fields, with
their public sources, are in docs/compatibility.md ("Reports").

    {"globals": [...], "inputs": [...], "decoders": [...], "filters": [...],
     "outputs": [...], "encoders": [...]}

Each entry is `{"Name": ..., "<Field>": {"value": V, "representation": R}, ...}`:

- filters and outputs: InChanCapacity, InChanLength, MatchChanCapacity,
  MatchChanLength, MatchAvgDuration (ns), LeakCount (always 0: hekapy has no pool of
  packs to leak from), ProcessMessageCount;
- filters also ProcessMessageFailures (their errors), InjectMessageCount,
  ProcessMessageSamples, ProcessMessageAvgDuration (ns), TimerEventSamples,
  TimerEventAvgDuration (ns);
- decoders: ProcessMessageCount, ProcessMessageFailures, ProcessMessageSamples,
  ProcessMessageAvgDuration (ns);
- the fields a plugin reports itself (Plugin.heka_report: the sandbox plugins' Memory,
  MaxMemory, MaxOutput);
- hekapy's own counters in the same form (MessagesIn, BytesOut, ..., Type).

The averages are per message, timed per batch (collector/engine/stats.py): Heka timed
one message in `sample_denominator`, hekapy every batch, so ProcessMessageSamples counts
every message timed.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from hekapy.collector import __version__
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.report import (
    plugin_rows,
    process_info,
    process_start_time,
    queue_rows,
)
from hekapy.collector.engine.stats import COUNTERS

if TYPE_CHECKING:
    from hekapy.collector.engine.pipeline import Pipeline

REPORT_TYPE = "heka.all-report"
REPORT_LOGGER = "hekad"  # Heka's HEKA_DAEMON logger
CATEGORIES = ("globals", "inputs", "decoders", "filters", "outputs", "encoders")
# The /health rule (collector/app/status/snapshot.py): reading an output's retry state
# with a shorter horizon would end its retry episode early.
RETRY_STALE_MIN = 60.0


def _field(value: Any, representation: str = "count") -> dict[str, Any]:
    return {"value": value, "representation": representation}


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))


def _average(total_ns: int, samples: int) -> int:
    return total_ns // samples if samples else 0


def _timings(entry: dict[str, Any], p: dict[str, Any]) -> None:
    samples = p.get("process_samples", 0)
    entry["ProcessMessageSamples"] = _field(samples)
    entry["ProcessMessageAvgDuration"] = _field(_average(p.get("process_ns", 0), samples),
                                                "ns")


def _plugin_entry(p: dict[str, Any], routed: int) -> dict[str, Any]:
    """One plugin's entry, from a row of collector/engine/report.py (with `queues` for
    filters and outputs, `streams` for a LogstreamerInput when the reader added them)."""
    entry: dict[str, Any] = {"Name": p["name"], "Type": _field(p["type"], "")}
    # The plugin's own fields first: the engine's counters are the ones that count.
    for key, (value, rep) in p.get("heka_report", {}).items():
        entry[key] = _field(value, rep)
    cat = p["category"]
    queues = p.get("queues") or []
    main_q = next((q for q in queues if q["queue"] == "input"), None)
    if main_q is not None:
        entry["InChanCapacity"] = _field(main_q["max_batches"])
        entry["InChanLength"] = _field(main_q["batches"])
        first = queues[0]  # what the router fills (buffer-in for a buffered output)
        entry["MatchChanCapacity"] = _field(first["max_batches"])
        entry["MatchChanLength"] = _field(first["batches"])
        avg = int(p["matcher_seconds"] * 1e9 / routed) if routed else 0
        entry["MatchAvgDuration"] = _field(avg, "ns")
    if cat in ("filter", "output"):
        entry["LeakCount"] = _field(0)
    if cat in ("filter", "output", "decoder"):
        entry["ProcessMessageCount"] = _field(p["messages_in"])
    if cat == "filter":
        entry["ProcessMessageFailures"] = _field(p["errors"])
        entry["InjectMessageCount"] = _field(p["injected"])
        _timings(entry, p)
        timers = p.get("timer_samples", 0)
        entry["TimerEventSamples"] = _field(timers)
        entry["TimerEventAvgDuration"] = _field(_average(p.get("timer_ns", 0), timers),
                                                "ns")
    if cat == "decoder":
        entry["ProcessMessageFailures"] = _field(p["decode_failures"])
        _timings(entry, p)
    for key in COUNTERS:
        entry[_camel(key)] = _field(p[key], "B" if key.startswith("bytes") else "count")
    if "unacked_batches" in p:
        entry["UnacknowledgedBatches"] = _field(p["unacked_batches"])
    if p.get("buffer"):
        entry["BufferSize"] = _field(p["buffer"]["bytes"], "B")
        entry["BufferMaxSize"] = _field(p["buffer"]["max_bytes"], "B")
    for s in p.get("streams", ()):
        entry[f"AckLag-{s['stream']}"] = _field(s["lag_bytes"], "B")
    return entry


def _encoder_reports(plugins: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The encoders' own report fields, from the outputs they serve (one instance per
    output: the Max* fields the largest, the others summed)."""
    out: dict[str, dict[str, Any]] = {}
    for p in plugins:
        name = p.get("encoder")
        if not name:
            continue
        merged = out.setdefault(name, {})
        for key, (value, rep) in p.get("encoder_report", {}).items():
            have = merged.get(key)
            if have is not None and isinstance(value, (int, float)):
                value = max(have[0], value) if key.startswith("Max") else have[0] + value
            merged[key] = (value, rep)
    return out


def render_all_report(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Heka's heka.all-report payload, from a reading of the pipeline: `report_data`'s,
    or the status server's snapshot (the same keys, and more)."""
    proc = data["process"]
    routed = data["router"]["messages"]
    report: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORIES}
    report["globals"] = [
        {"Name": "Router", "ProcessMessageCount": _field(routed),
         "UnmatchedMessageCount": _field(data["router"]["unmatched"])},
        {"Name": "hekapy", "Version": _field(data["version"], ""),
         "Uptime": _field(round(data["uptime"], 3), "s"),
         "Memory": _field(proc["rss_bytes"], "B"),
         "CpuSeconds": _field(round(proc["cpu_seconds"], 3), "s")},
    ]
    for p in data["plugins"]:
        report[p["category"] + "s"].append(_plugin_entry(p, routed))
    encoder_fields = _encoder_reports(data["plugins"])
    for e in data["encoders"]:
        entry: dict[str, Any] = {"Name": e["name"], "Type": _field(e["type"], "")}
        for key, (value, rep) in encoder_fields.get(e["name"], {}).items():
            entry[key] = _field(value, rep)
        entry["OutputCount"] = _field(len(e["outputs"]))
        report["encoders"].append(entry)
    return report


def report_data(pipeline: Pipeline, started: float | None = None) -> dict[str, Any]:
    """What `render_all_report` reads, from the pipeline itself (the status server has
    its own snapshot): version, uptime, process, router, plugins (filters and outputs
    with their queues), encoders. `started`: the process's start (epoch seconds)."""
    if started is None:
        started = process_start_time()
    hekad = pipeline.hekad
    stale = max(RETRY_STALE_MIN, 2 * float(getattr(hekad, "status_degraded_after", 30.0)))
    queues: dict[str, list[dict[str, Any]]] = {}
    for q in queue_rows(pipeline):
        queues.setdefault(q.pop("plugin"), []).append(q)
    plugins = plugin_rows(pipeline, stale)
    encoders: dict[str, dict[str, Any]] = {}
    for row in plugins:
        row.pop("plugin", None)
        ctx = row.pop("context", None)
        if row["category"] in ("filter", "output"):
            row["queues"] = queues.get(row["name"], [])
        encoder = getattr(ctx, "encoder", None) if row["category"] == "output" else None
        if encoder is not None:
            e = encoders.setdefault(encoder.name, {
                "name": encoder.name, "type": type(encoder).type_name, "outputs": []})
            e["outputs"].append(row["name"])
    router = pipeline.router
    return {"version": __version__, "uptime": max(0.0, time.time() - started),
            "process": process_info(started),
            "router": {"messages": router.messages_routed,
                       "unmatched": router.messages_unmatched},
            "plugins": plugins, "encoders": list(encoders.values())}


def report_payload(report: dict[str, list[dict[str, Any]]]) -> str:
    """The report as the message's Payload: compact JSON with sorted keys and a final
    newline, as Go's json.Encoder wrote Heka's."""
    return json.dumps(report, separators=(",", ":"), sort_keys=True) + "\n"


def all_report_message(report: dict[str, list[dict[str, Any]]], hostname: str) -> Message:
    """The `heka.all-report` message hekad injected: Logger hekad, the collector's
    Hostname and Pid, the report as Payload, no fields."""
    return Message(type=REPORT_TYPE, logger=REPORT_LOGGER, hostname=hostname,
                   pid=os.getpid(), payload=report_payload(report))
