"""`GET /metrics`: a snapshot in Prometheus text format 0.0.4.

Per plugin, labels `plugin` and `type` (decoders count the records their inputs handed
them; a decoder shared by several inputs is one series, summed):
`hekapy_plugin_messages_in_total`, `_messages_out_total`, `_bytes_in_total` (filters,
outputs: bytes the router handed them), `_bytes_out_total` (inputs: record bytes
delivered), `_decode_failures_total`, `_dropped_total`, `_retried_total`,
`_dead_lettered_total`, `_errors_total`, `_restarts_total`, `_injected_total`,
`hekapy_plugin_up` (0 once it gave up for good), `hekapy_plugin_retrying_seconds`
(outputs: how long they have retried without storing anything),
`hekapy_plugin_matcher_seconds_total` (time the router spent in that plugin's
message_matcher: two clock reads per batch, not per message). Queues, labels `plugin`,
`type`, `queue` ("input": what the plugin reads; "buffer-in": the router's queue in front
of a disk buffer): `hekapy_queue_batches`, `_messages`, `_bytes`, `_capacity_batches`,
`_capacity_bytes`. Disk buffers (use_buffering): `hekapy_buffer_bytes`, `_max_bytes`
(0 = unlimited), `_dropped_total`, `_corrupt_bytes_total`. Inputs:
`hekapy_input_unacknowledged_batches`, `_bytes`, `hekapy_input_window_batches`
(poolsize), `hekapy_input_forced_flushes_total` (multi-line messages sent before their
end by the poolsize safety net). LogstreamerInput, label `stream`:
`hekapy_logstreamer_read_offset_bytes` and `hekapy_logstreamer_ack_lag_bytes`, the bytes
read but not yet acknowledged by every output (what a restart would read again: the
journal trails the acknowledged position by at most a second),
`hekapy_logstreamer_stream_problems_total` (label `problem`: binary, oversized,
truncated), `hekapy_logstreamer_skipped_file` (label `path`: a FIFO or other special
file file_match picked up, not read). Router:
`hekapy_router_messages_total`, `_unmatched_total`; tap: `hekapy_tap_viewers`,
`hekapy_tap_dropped_total`. Process: `process_resident_memory_bytes`,
`process_cpu_seconds_total`, `process_open_fds`, `process_start_time_seconds`,
`hekapy_uptime_seconds`, `hekapy_build_info{version, python, event_loop, hot_path}`.
Not measured: bytes an output wrote to its server (only what it was handed).
"""

from __future__ import annotations

from typing import Any

from hekapy.collector.engine.stats import COUNTERS


def _esc(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kw: Any) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kw.items()) + "}"


class _Metrics:
    def __init__(self) -> None:
        self.families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_: str, labels: str, value: float) -> None:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = (kind, help_, [])
        v = repr(float(value)) if isinstance(value, float) else str(int(value))
        fam[2].append(f"{name}{labels} {v}")

    def render(self) -> str:
        out = []
        for name, (kind, help_, samples) in self.families.items():
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return "\n".join(out) + "\n"


_COUNTER_HELP = {
    "messages_in": "messages the plugin received (inputs: records read)",
    "messages_out": "messages the plugin passed on (outputs: stored by the server)",
    "bytes_in": "bytes the router handed the plugin (decoders: record bytes)",
    "bytes_out": "record bytes an input delivered",
    "decode_failures": "records the decoder could not decode",
    "dropped": "messages dropped",
    "retried": "messages sent again after a failure",
    "dead_lettered": "messages the server rejected for good, written to the dead-letter file",
    "errors": "errors (failed runs, encoder and filter errors)",
    "restarts": "restarts after a failure",
    "injected": "messages a filter injected",
}


def render_metrics(snap: dict[str, Any]) -> str:
    """The snapshot in Prometheus text format 0.0.4."""
    m = _Metrics()
    m.add("hekapy_build_info", "gauge", "hekapy version and runtime",
          _labels(version=snap["version"], python=snap["python"],
                  event_loop=snap["event_loop"], hot_path=snap["hot_path"]), 1)
    m.add("hekapy_uptime_seconds", "gauge", "seconds since the collector started", "",
          float(snap["uptime"]))
    proc = snap["process"]
    m.add("process_resident_memory_bytes", "gauge", "resident set size", "",
          proc["rss_bytes"])
    m.add("process_cpu_seconds_total", "counter", "user and system CPU seconds", "",
          float(proc["cpu_seconds"]))
    if proc["open_fds"] >= 0:
        m.add("process_open_fds", "gauge", "open file descriptors", "", proc["open_fds"])
    m.add("process_start_time_seconds", "gauge", "start time, seconds since the epoch", "",
          float(proc["start_time"]))
    m.add("hekapy_router_messages_total", "counter", "messages the router routed", "",
          snap["router"]["messages"])
    m.add("hekapy_router_unmatched_total", "counter",
          "routed messages no filter or output matched", "", snap["router"]["unmatched"])
    m.add("hekapy_tap_viewers", "gauge", "attached tap viewers", "", snap["tap"]["viewers"])
    m.add("hekapy_tap_dropped_total", "counter",
          "messages tap viewers missed because their queue was full", "",
          snap["tap"]["dropped"])
    health = snap["health"]["status"]
    for status in ("ok", "degraded", "failing"):
        m.add("hekapy_health", "gauge", "1 for the current /health status",
              _labels(status=status), int(health == status))
    for p in snap["plugins"]:
        lab = _labels(plugin=p["name"], type=p["type"])
        for key in COUNTERS:
            m.add(f"hekapy_plugin_{key}_total", "counter", _COUNTER_HELP[key], lab, p[key])
        m.add("hekapy_plugin_up", "gauge", "0 once the plugin gave up for good", lab,
              int(not p["gave_up"]))
        if p["category"] in ("filter", "output"):
            m.add("hekapy_plugin_matcher_seconds_total", "counter",
                  "seconds the router spent evaluating the plugin's message_matcher", lab,
                  float(p["matcher_seconds"]))
        if p["category"] == "output":
            m.add("hekapy_plugin_retrying_seconds", "gauge",
                  "seconds the output has retried without storing a message", lab,
                  float(p["retrying_for"]))
            m.add("hekapy_output_unacknowledged_batches", "gauge",
                  "batches the output holds, not yet acknowledged", lab,
                  p["unacked_batches"])
        for q in p.get("queues", ()):
            ql = _labels(plugin=p["name"], type=p["type"], queue=q["queue"])
            m.add("hekapy_queue_batches", "gauge", "batches queued", ql, q["batches"])
            m.add("hekapy_queue_messages", "gauge", "messages queued", ql, q["messages"])
            m.add("hekapy_queue_bytes", "gauge", "bytes queued", ql, q["bytes"])
            m.add("hekapy_queue_capacity_batches", "gauge", "queue bound in batches", ql,
                  q["max_batches"])
            m.add("hekapy_queue_capacity_bytes", "gauge", "queue bound in bytes", ql,
                  q["max_bytes"])
        buf = p.get("buffer")
        if buf:
            m.add("hekapy_buffer_bytes", "gauge", "bytes in the output's disk buffer", lab,
                  buf["bytes"])
            m.add("hekapy_buffer_max_bytes", "gauge",
                  "max_buffer_size of the disk buffer (0 = unlimited)", lab,
                  buf["max_bytes"])
            m.add("hekapy_buffer_dropped_total", "counter",
                  "records the full disk buffer dropped (full_action = drop)", lab,
                  buf["dropped"])
            m.add("hekapy_buffer_corrupt_bytes_total", "counter",
                  "corrupt bytes skipped in the disk buffer", lab, buf["corrupt_bytes"])
        if p["category"] == "input":
            m.add("hekapy_input_unacknowledged_batches", "gauge",
                  "batches delivered but not yet acknowledged by every output", lab,
                  p["unacked_batches"])
            m.add("hekapy_input_unacknowledged_bytes", "gauge",
                  "record bytes delivered but not yet acknowledged", lab,
                  p["unacked_bytes"])
            m.add("hekapy_input_window_batches", "gauge",
                  "unacknowledged batches allowed (poolsize)", lab, p["window_batches"])
            m.add("hekapy_input_forced_flushes_total", "counter",
                  "multi-line messages sent before their end: they spanned more than "
                  "poolsize deliveries", lab, p["forced_flushes"])
        for s in p.get("streams", ()):
            sl = _labels(plugin=p["name"], type=p["type"], stream=s["stream"])
            m.add("hekapy_logstreamer_read_offset_bytes", "gauge",
                  "read position in the stream's current file", sl, s["read_offset"])
            m.add("hekapy_logstreamer_ack_lag_bytes", "gauge",
                  "bytes read but not yet acknowledged by every output", sl,
                  s["lag_bytes"])
            for problem, n in sorted(s.get("problems", {}).items()):
                m.add("hekapy_logstreamer_stream_problems_total", "counter",
                      "what was wrong with a stream's data: binary (chunks with NUL "
                      "bytes), oversized (records over max_message_size), truncated (its "
                      "file truncated or rewritten)",
                      _labels(plugin=p["name"], type=p["type"], stream=s["stream"],
                              problem=problem), n)
        for path in p.get("skipped_files", ()):
            m.add("hekapy_logstreamer_skipped_file", "gauge",
                  "a path file_match picks up that is no regular file (a FIFO, a socket, "
                  "a device): not read", _labels(plugin=p["name"], type=p["type"],
                                                 path=path.split(": ", 1)[0]), 1)
    return m.render()
