"""`GET /heka.all-report`: the JSON Heka's DashboardOutput served (the payload of the
`heka.all-report` message), so what read Heka's report reads hekapy's.

`{"globals": [...], "inputs": [...], "decoders": [...], "filters": [...], "outputs": [...],
"encoders": [...]}`, each entry `{"Name": ..., "<Counter>": {"value": N,
"representation": "count"}, ...}` with Heka's InChanCapacity / InChanLength /
MatchChanCapacity / MatchChanLength / MatchAvgDuration / ProcessMessageCount /
InjectMessageCount / ProcessMessageFailures where hekapy has them, and hekapy's own
counters in the same form.
"""

from __future__ import annotations

from typing import Any

from hekapy.collector.engine.stats import COUNTERS


def _field(value: Any, representation: str = "count") -> dict[str, Any]:
    return {"value": value, "representation": representation}


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))


def render_all_report(snap: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Heka's heka.all-report payload, from the snapshot."""
    proc = snap["process"]
    routed = snap["router"]["messages"]
    report: dict[str, list[dict[str, Any]]] = {
        "globals": [
            {"Name": "Router", "ProcessMessageCount": _field(routed),
             "UnmatchedMessageCount": _field(snap["router"]["unmatched"])},
            {"Name": "hekapy", "Version": _field(snap["version"], ""),
             "Uptime": _field(round(snap["uptime"], 3), "s"),
             "Memory": _field(proc["rss_bytes"], "B"),
             "CpuSeconds": _field(round(proc["cpu_seconds"], 3), "s")},
        ],
        "inputs": [], "decoders": [], "filters": [], "outputs": [], "encoders": []}
    for p in snap["plugins"]:
        entry: dict[str, Any] = {"Name": p["name"], "Type": _field(p["type"], "")}
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
        if cat in ("filter", "output", "decoder"):
            entry["ProcessMessageCount"] = _field(p["messages_in"])
        if cat == "filter":
            entry["InjectMessageCount"] = _field(p["injected"])
        if cat == "decoder":
            entry["ProcessMessageFailures"] = _field(p["decode_failures"])
        for key in COUNTERS:
            entry[_camel(key)] = _field(p[key], "B" if key.startswith("bytes") else "count")
        if "unacked_batches" in p:
            entry["UnacknowledgedBatches"] = _field(p["unacked_batches"])
        if p.get("buffer"):
            entry["BufferSize"] = _field(p["buffer"]["bytes"], "B")
            entry["BufferMaxSize"] = _field(p["buffer"]["max_bytes"], "B")
        for s in p.get("streams", ()):
            entry[f"AckLag-{s['stream']}"] = _field(s["lag_bytes"], "B")
        report[cat + "s"].append(entry)
    for e in snap["encoders"]:
        report["encoders"].append({"Name": e["name"], "Type": _field(e["type"], ""),
                                   "OutputCount": _field(len(e["outputs"]))})
    return report
