"""The status server: what a running collector is doing, over HTTP (aiohttp).

Endpoints (all behind basic auth when status_username/status_password are set):

- `GET /metrics` — Prometheus text format (0.0.4). Per plugin, labels `plugin` and `type`
  (decoders count the records their inputs handed them; a decoder shared by several
  inputs is one series, summed):
  `hekapy_plugin_messages_in_total`, `_messages_out_total`, `_bytes_in_total` (filters,
  outputs: bytes the router handed them), `_bytes_out_total` (inputs: record bytes
  delivered), `_decode_failures_total`, `_dropped_total`, `_retried_total`,
  `_dead_lettered_total`, `_errors_total`, `_restarts_total`, `_injected_total`,
  `hekapy_plugin_up` (0 once it gave up for good), `hekapy_plugin_retrying_seconds`
  (outputs: how long they have retried without storing anything),
  `hekapy_plugin_matcher_seconds_total` (time the router spent in that plugin's
  message_matcher: two clock reads per batch, not per message). Queues, labels
  `plugin`, `type`, `queue` ("input": what the plugin reads; "buffer-in": the router's
  queue in front of a disk buffer): `hekapy_queue_batches`, `_messages`, `_bytes`,
  `_capacity_batches`, `_capacity_bytes`. Disk buffers (use_buffering):
  `hekapy_buffer_bytes`, `_max_bytes` (0 = unlimited), `_dropped_total`,
  `_corrupt_bytes_total`. Inputs: `hekapy_input_unacknowledged_batches`, `_bytes`,
  `hekapy_input_window_batches` (poolsize), `hekapy_input_forced_flushes_total`
  (multi-line messages sent before their end by the poolsize safety net). LogstreamerInput,
  label `stream`:
  `hekapy_logstreamer_read_offset_bytes` and `hekapy_logstreamer_ack_lag_bytes`, the
  bytes read but not yet acknowledged by every output (what a restart would read
  again: the journal trails the acknowledged position by at most a second). Router:
  `hekapy_router_messages_total`, `_unmatched_total`; tap: `hekapy_tap_viewers`,
  `hekapy_tap_dropped_total`. Process: `process_resident_memory_bytes`,
  `process_cpu_seconds_total`, `process_open_fds`, `process_start_time_seconds`,
  `hekapy_uptime_seconds`, `hekapy_build_info{version, python, event_loop, hot_path}`.
  Not measured: bytes an output wrote to its server (only what it was handed).
- `GET /health` — `{"status": "ok"}` (200); `{"status": "degraded", "reasons": [...]}`
  (200) when an output has retried without storing a single message for longer than
  `status_degraded_after` (its server is unreachable or refusing everything), a disk
  buffer is over 80% of its max_buffer_size, a plugin restarted in the last
  max(60 s, status_degraded_after), journal or disk-buffer writes failed in the last
  60 s (read-only or full file system), or hekapy is stopping; `{"status": "failing", ...}`
  (503) when a plugin gave up for good (its [X.retries] are exhausted) or the pipeline
  failed (a plugin that may not exit failed, a full disk buffer with
  full_action = "shutdown"). An output counts as retrying until it stores or
  dead-letters a message, or until it has not retried for max(60 s,
  2 * status_degraded_after).
- `GET /heka.all-report` and `/heka/all-report.json` — the JSON Heka's DashboardOutput
  served (the `heka.all-report` message's payload): `{"globals": [...], "inputs": [...],
  "decoders": [...], "filters": [...], "outputs": [...], "encoders": [...]}`, each
  entry `{"Name": ..., "<Counter>": {"value": N, "representation": "count"}, ...}` with
  Heka's InChanCapacity / InChanLength / MatchChanCapacity / MatchChanLength /
  MatchAvgDuration / ProcessMessageCount / InjectMessageCount / ProcessMessageFailures
  where hekapy has them, and hekapy's own counters in the same form.
- `GET /stats` — everything above as one JSON document (`hekapy top` reads it).
- `GET /tap?match=EXPR&plugin=NAME&buffer=N` — a live NDJSON stream of matching
  messages (collector/engine/tap.py); the pipeline never waits for a viewer.

Secrets never leave: every string of every response (and of the tap stream) goes
through a `Redactor` that masks URL userinfo and the values of secret-looking keys of
the whole config (password, token, secret, api_key, ...; values of 3 characters or
more), so the documents keep their shape and the Prometheus text stays valid. The
server logs no credentials and no access log. A failed bind is logged and hekapy
keeps running without it.

    [hekad]
    status_address = "127.0.0.1:4352"   # "" turns it off
    status_username = "ops"             # optional basic auth: both or neither
    status_password = "%ENV[HEKAPY_STATUS_PASSWORD]"
    status_allow_remote = false         # a non-loopback address is a config error
    status_degraded_after = "30s"       # /health: retrying this long is "degraded"
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import os
import platform
import resource
import socket
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from hekapy.collector import __version__, compiled
from hekapy.collector.engine.config import Config, split_host_port
from hekapy.collector.engine.matcher import MatcherSyntaxError, compile_matcher
from hekapy.collector.engine.redact import URL_USERINFO, is_secret_key, redact_userinfo
from hekapy.collector.engine.stats import COUNTERS, RateLimitedLog
from hekapy.collector.engine.tap import DEFAULT_BUFFER, MAX_BUFFER, TapRegistry, TapViewer

if TYPE_CHECKING:
    from hekapy.collector.engine.pipeline import Pipeline

log = logging.getLogger("hekapy.status")

BUFFER_DEGRADED = 0.8
RESTART_WINDOW = 60.0
TAP_CHUNK = 500  # messages serialized per write



class Redactor:
    """Masks secrets in text: URL userinfo, and every value of a secret-looking key
    anywhere in the config (plugins' sections, nested tables, [hekad])."""

    def __init__(self, config: Config | None = None) -> None:
        found: set[str] = set()
        if config is not None:
            self._walk(vars(config.hekad), found)
            for spec in config.plugins.values():
                self._walk(vars(spec.cfg), found)
        # Longest first: a secret that contains another is masked whole.
        self.secrets = sorted((s for s in found if len(s) >= 3), key=len, reverse=True)

    def _walk(self, obj: Any, found: set[str], key: str = "") -> None:
        if isinstance(obj, SimpleNamespace):
            obj = vars(obj)
        if isinstance(obj, dict):
            for k, v in obj.items():
                self._walk(v, found, str(k))
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                self._walk(v, found, key)
        elif isinstance(obj, str):
            if key and is_secret_key(key) and obj:
                found.add(obj)
            for m in URL_USERINFO.finditer(obj):
                userinfo = m.group(0)[len(m.group("scheme")):-1]
                found.add(userinfo)
                _, _, pw = userinfo.partition(":")
                if pw:
                    found.add(pw)

    def mask(self, s: str) -> str:
        s = redact_userinfo(s)
        for secret in self.secrets:
            if secret in s:
                s = s.replace(secret, "***")
        return s

    def mask_obj(self, obj: Any) -> Any:
        """`obj` (JSON-like) with every string value masked; keys are left alone, so
        the document keeps its shape."""
        if isinstance(obj, str):
            return self.mask(obj) if obj else obj
        if isinstance(obj, dict):
            return {k: self.mask_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.mask_obj(v) for v in obj]
        return obj


# --- what the pipeline looks like now ---------------------------------------------------

def process_start_time() -> float:
    """When this process started (epoch seconds): Linux's /proc, else this module's
    import. The status server's own start is later, and a reload starts it again."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/stat", "rb") as f:
            boot = next(int(ln.split()[1]) for ln in f if ln.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()


def process_info(started: float) -> dict[str, Any]:
    """RSS, CPU seconds, open descriptors of this process (Linux /proc, else rusage)."""
    rss = 0
    try:
        with open("/proc/self/statm", "rb") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = os.times()
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    return {"rss_bytes": rss, "cpu_seconds": t.user + t.system, "open_fds": fds,
            "start_time": started}


def _event_loop_name() -> str:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return ""
    return type(loop).__module__.split(".")[0]


class Snapshot:
    """Reads the running pipeline into plain data; shared by every endpoint."""

    def __init__(self, pipeline: Pipeline, tap: TapRegistry | None = None) -> None:
        self.pipeline = pipeline
        self.tap = tap
        self.started = process_start_time()
        # Uptime on the monotonic clock, from the process's start (a wall-clock jump
        # must not make it jump).
        self.started_mono = time.monotonic() - max(0.0, time.time() - self.started)
        h = pipeline.hekad
        self.degraded_after = float(getattr(h, "status_degraded_after", 30.0))
        # Failure counters (journal, disk buffer writes): last value, when it moved.
        self._failure_marks: dict[str, tuple[int, float]] = {}
        # Journaled positions of LogstreamerInput streams with no acknowledgement yet
        # in this run: read once per stream (the journal cannot move before an ack).
        self._journaled: dict[tuple[int, str], Any] = {}

    # health -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        p = self.pipeline
        now = time.monotonic()
        failing: list[str] = []
        degraded: list[str] = []
        if p.failed:
            failing.append(f"pipeline failed: {p.failed}")
        stale = max(RESTART_WINDOW, 2 * self.degraded_after)
        restart_window = max(RESTART_WINDOW, self.degraded_after)
        for category, ctx in self._contexts():
            st = ctx.stats
            if st.gave_up:
                failing.append(f"{category} {ctx.name!r} gave up after {st.restarts} "
                               f"restart(s) and is not running")
                continue
            if st.last_restart and now - st.last_restart < restart_window:
                degraded.append(f"{category} {ctx.name!r} restarted {st.restarts} time(s), "
                                f"last {now - st.last_restart:.0f} s ago")
            if category == "output":
                retrying = st.retrying_for(now, stale)
                if retrying is not None and retrying > self.degraded_after:
                    degraded.append(f"output {ctx.name!r} has retried for {retrying:.0f} s "
                                    "without storing a message (server unreachable or "
                                    "refusing)")
        # Failing writes of the state that keeps delivery exact: while they fail, a
        # restart would read or send again more than it should, and a full disk stalls.
        for plugin, ctx in p.inputs:
            errors = getattr(plugin, "counters", {}).get("journal_errors", 0)
            if self._recently_grew(f"journal:{ctx.name}", errors, now):
                degraded.append(f"input {ctx.name!r}: journal writes failing "
                                f"({errors} so far; see the log)")
        for name, buf in p.buffers.items():
            if self._recently_grew(f"buffer:{name}", buf.disk.write_failures, now):
                degraded.append(f"output {name!r}: disk buffer writes failing "
                                f"({buf.disk.write_failures} so far; full disk?)")
        for name, buf in p.buffers.items():
            cap = buf.disk.max_buffer_size
            if cap > 0 and buf.disk.size_bytes > BUFFER_DEGRADED * cap:
                degraded.append(f"output {name!r}: disk buffer "
                                f"{100 * buf.disk.size_bytes / cap:.0f}% full "
                                f"({buf.disk.size_bytes} of {cap} bytes)")
        if p.stopping.is_set() and not p.failed:
            degraded.append("stopping: draining queues")
        if failing:
            return {"status": "failing", "reasons": failing + degraded}
        if degraded:
            return {"status": "degraded", "reasons": degraded}
        return {"status": "ok"}

    def _recently_grew(self, key: str, value: int, now: float) -> bool:
        """Whether the failure counter `key` moved within the last RESTART_WINDOW
        seconds (as far as the health checks that saw it can tell)."""
        last_value, changed_at = self._failure_marks.get(key, (0, 0.0))
        if value > last_value:
            changed_at = now
        self._failure_marks[key] = (value, changed_at)
        return changed_at > 0 and now - changed_at < RESTART_WINDOW

    def _contexts(self) -> list[tuple[str, Any]]:
        p = self.pipeline
        return ([("input", c) for _, c in p.inputs] + [("filter", c) for _, c, _ in p.filters]
                + [("output", c) for _, c in p.outputs])

    # the whole picture ------------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        p = self.pipeline
        now = time.monotonic()
        stale = max(RESTART_WINDOW, 2 * self.degraded_after)
        queues: dict[str, list[dict]] = {}
        for name, role, q in p.queues():
            queues.setdefault(name, []).append({
                "queue": role, "batches": len(q), "messages": q.nmessages,
                "bytes": q.nbytes, "max_batches": q.max_batches, "max_bytes": q.max_bytes})
        plugins: list[dict[str, Any]] = []
        decoders: dict[str, dict[str, Any]] = {}
        for plugin, ctx in p.inputs:
            row = self._row(ctx, "input", ctx.spec.type_name)
            row["unacked_batches"] = ctx.tracker.in_flight
            row["unacked_bytes"] = ctx.tracker.in_flight_bytes
            row["window_batches"] = ctx.tracker.max_batches
            row["forced_flushes"] = ctx.forced_flushes
            if ctx.decoder is not None:
                row["decoder"] = ctx.decoder.name
            if ctx.spec.type_name == "LogstreamerInput":
                row["streams"] = self._streams(plugin)
            plugins.append(row)
            dec = ctx.decoder
            if dec is not None:
                d = decoders.get(dec.name)
                if d is None:
                    d = decoders[dec.name] = {
                        "name": dec.name, "type": type(dec).type_name, "category": "decoder",
                        **dict.fromkeys(COUNTERS, 0), "inputs": [], "gave_up": False}
                d["inputs"].append(ctx.name)
                st = ctx.stats
                d["messages_in"] += st.messages_in
                d["messages_out"] += st.messages_out
                d["bytes_in"] += st.bytes_out
                d["decode_failures"] += st.decode_failures
        plugins.extend(decoders.values())
        for _plugin, ctx, _q in p.filters:
            row = self._row(ctx, "filter", ctx.spec.type_name)
            row["queues"] = queues.get(ctx.name, [])
            plugins.append(row)
        encoders: dict[str, dict[str, Any]] = {}
        for _plugin, ctx in p.outputs:
            row = self._row(ctx, "output", ctx.spec.type_name)
            row["queues"] = queues.get(ctx.name, [])
            row["retrying_for"] = ctx.stats.retrying_for(now, stale) or 0.0
            row["unacked_batches"] = len(ctx.unacknowledged())
            buf = p.buffers.get(ctx.name)
            if buf is not None:
                d = buf.disk
                row["buffer"] = {"bytes": d.size_bytes, "max_bytes": d.max_buffer_size,
                                 "full_action": d.full_action, "dropped": d.dropped,
                                 "corrupt_bytes": d.corrupt_bytes}
            if ctx.encoder is not None:
                enc = ctx.encoder
                e = encoders.setdefault(enc.name, {"name": enc.name,
                                                   "type": type(enc).type_name,
                                                   "category": "encoder", "outputs": []})
                e["outputs"].append(ctx.name)
                row["encoder"] = enc.name
            plugins.append(row)
        tap = self.tap
        return {
            "version": __version__,
            "hot_path": compiled.summary(),
            "python": platform.python_version(),
            "event_loop": _event_loop_name(),
            "hostname": p.hekad.hostname,
            "pid": os.getpid(),
            "time": time.time(),
            "uptime": now - self.started_mono,
            "process": process_info(self.started),
            "router": {"messages": p.router.messages_routed,
                       "unmatched": p.router.messages_unmatched},
            "tap": {"viewers": len(tap.viewers) if tap else 0,
                    "dropped": tap.dropped() if tap else 0},
            "health": self.health(),
            "plugins": plugins,
            "encoders": list(encoders.values()),
        }

    @staticmethod
    def _row(ctx: Any, category: str, type_name: str) -> dict[str, Any]:
        st = ctx.stats
        return {"name": ctx.name, "type": type_name, "category": category,
                **st.as_dict(), "matcher_seconds": st.matcher_seconds,
                "gave_up": st.gave_up}

    def _streams(self, plugin: Any) -> list[dict[str, Any]]:
        """Per stream of a LogstreamerInput: read offset, acknowledged offset, lag."""
        out = []
        try:
            streams = dict(getattr(plugin, "_streams", {}))
            acked = getattr(plugin, "_acked", {})
            journal = getattr(plugin, "_journal", None)
            for name, s in streams.items():
                cur = s.reader.cur
                if cur is None:
                    continue
                read = cur.offset
                a = acked.get(name)
                acked_offset: int | None = None
                if a is not None:
                    _, f, seek, _h = a
                    acked_offset = seek
                    lag = read - seek if f is cur or f.path == cur.path else (
                        max(0, f.offset - seek) + read)
                else:
                    key = (id(plugin), name)
                    if key not in self._journaled:
                        try:
                            self._journaled[key] = journal.load(name) if journal else None
                        except Exception:
                            self._journaled[key] = None
                    pos = self._journaled[key]
                    if pos is not None and not pos.is_zero():
                        acked_offset = pos.seek
                        lag = read - pos.seek if pos.file_name == cur.path else read
                    elif plugin.cfg.initial_tail:
                        continue  # started at the end of the file: unknown start
                    else:
                        acked_offset = 0
                        lag = read
                out.append({"stream": name, "file": cur.path, "read_offset": read,
                            "acked_offset": acked_offset, "lag_bytes": max(0, lag)})
        except Exception as e:  # the tailer's internals moved: report nothing, not fail
            log.debug("cannot read LogstreamerInput streams: %s", e)
        return out


# --- renderings -------------------------------------------------------------------------

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
    return m.render()


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


# --- the server -------------------------------------------------------------------------

def _credentials(request: web.Request) -> bytes:
    """The user:password of a Basic Authorization header (b"" if none or malformed)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


class StatusServer:
    """The aiohttp app over one pipeline. `start()` binds (or logs why it cannot);
    `stop()` ends every tap stream and closes the socket."""

    def __init__(self, pipeline: Pipeline, config: Config) -> None:
        h = pipeline.hekad
        self.pipeline = pipeline
        self.address: str = h.status_address
        self.redactor = Redactor(config)
        self.tap = TapRegistry(pipeline.router)
        self.snapshot = Snapshot(pipeline, self.tap)
        self._auth = (f"{h.status_username}:{h.status_password}".encode()
                      if h.status_username else None)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._limited_log = RateLimitedLog(log)
        self.bound: tuple[str, int] | None = None
        self.listening = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/", self._index)
        r.add_get("/metrics", self._metrics)
        r.add_get("/health", self._health)
        r.add_get("/stats", self._stats)
        r.add_get("/heka.all-report", self._all_report)
        r.add_get("/heka/all-report.json", self._all_report)
        r.add_get("/tap", self._tap)
        return app

    async def start(self) -> bool:
        """Bind and serve; False (logged) when the address cannot be bound."""
        if not self.address:
            return False
        host, port = split_host_port(self.address)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            log.error("status server: cannot listen on %s (%s); running without it",
                      self.address, e.strerror or e)
            await self._runner.cleanup()
            self._runner = None
            return False
        sock = site._server.sockets[0] if site._server else None  # type: ignore[union-attr]
        name = sock.getsockname() if sock is not None else (host, port)
        self.bound = (name[0], name[1])
        shown = f"[{name[0]}]" if sock is not None and sock.family == socket.AF_INET6 \
            else name[0]
        log.info("status server on http://%s:%d (/metrics, /health, /heka.all-report, "
                 "/stats, /tap)%s", shown, name[1],
                 "; basic auth required" if self._auth else "")
        self.listening.set()
        return True

    async def stop(self) -> None:
        self._closing.set()
        for v in list(self.tap.viewers):
            v.wake.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- plumbing ----------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._auth is not None:
            if not hmac.compare_digest(_credentials(request), self._auth):
                self._limited_log(logging.WARNING, "status server: refused %s %s from %s: "
                                  "authentication failed", request.method, request.path,
                                  request.remote)
                return web.Response(status=401, text="unauthorized\n",
                                    headers={"WWW-Authenticate": 'Basic realm="hekapy"'})
        return await handler(request)

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        body = orjson.dumps(self.redactor.mask_obj(obj), option=orjson.OPT_INDENT_2) + b"\n"
        return web.Response(body=body, status=status, content_type="application/json")

    # --- endpoints ---------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="hekapy status server\n/metrics  Prometheus text\n"
                            "/health   ok | degraded | failing\n"
                            "/heka.all-report  Heka's all-report JSON\n"
                            "/stats    JSON snapshot (hekapy top)\n"
                            "/tap?match=EXPR&plugin=NAME&buffer=N  live NDJSON messages\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        text = render_metrics(self._snapshot())
        return web.Response(text=text, content_type="text/plain",
                            headers={"X-Content-Type": "version=0.0.4"}, charset="utf-8")

    async def _health(self, request: web.Request) -> web.Response:
        h = self.snapshot.health()
        return self._json(h, 503 if h["status"] == "failing" else 200)

    def _snapshot(self) -> dict[str, Any]:
        """The pipeline's state with every string masked (names, paths, reasons)."""
        return self.redactor.mask_obj(self.snapshot.collect())

    async def _stats(self, request: web.Request) -> web.Response:
        return self._json(self._snapshot())

    async def _all_report(self, request: web.Request) -> web.Response:
        return self._json(render_all_report(self._snapshot()))

    async def _tap(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        match = q.get("match", "TRUE") or "TRUE"
        try:
            pred = compile_matcher(match)
        except MatcherSyntaxError as e:
            return web.Response(status=400, text=self.redactor.mask(f"match: {e}\n"))
        try:
            capacity = min(MAX_BUFFER, max(1, int(q.get("buffer", DEFAULT_BUFFER))))
        except ValueError:
            return web.Response(status=400, text="buffer: expected a number\n")
        plugin = q.get("plugin", "")
        route = None
        if plugin:
            route = next((r for r in self.pipeline.router.routes if r.name == plugin), None)
            if route is None:
                names = ", ".join(r.name for r in self.pipeline.router.routes) or "none"
                return web.Response(status=404, text=f"plugin: no running filter or output "
                                    f"named {plugin!r}; taps are on the queues of: {names}\n")
        if self._closing.is_set() or self.pipeline.stopping.is_set():
            return web.Response(status=503, text="stopping\n")
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "Cache-Control": "no-store"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        viewer = TapViewer(pred, route, capacity)
        self.tap.attach(viewer)
        log.info("tap viewer attached from %s (match %r%s)", request.remote,
                 self.redactor.mask(match), f", plugin {plugin!r}" if plugin else "")
        mask = self.redactor.mask_obj
        end = "the collector is stopping"
        try:
            await resp.write(orjson.dumps(mask({"tap": {"match": match, "plugin": plugin,
                                                        "buffer": capacity}})) + b"\n")
            reported = (0, 0)
            while True:
                if not viewer.queue:
                    if self._closing.is_set() or self.pipeline.stopping.is_set():
                        break
                    viewer.wake.clear()
                    try:
                        await asyncio.wait_for(viewer.wake.wait(), 1.0)
                    except TimeoutError:
                        pass
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        end = ""
                        break
                parts = []
                drops = (viewer.dropped, viewer.unexamined)
                if drops != reported:
                    parts.append(orjson.dumps({"dropped": drops[0],
                                               "unexamined": drops[1]}) + b"\n")
                    reported = drops
                msgs = viewer.take(TAP_CHUNK)
                for m in msgs:
                    parts.append(orjson.dumps({"message": mask(m.as_dict())}) + b"\n")
                if parts:
                    await resp.write(b"".join(parts))
            if end:
                await resp.write(orjson.dumps({"end": end}) + b"\n")
                await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the viewer went away
        finally:
            self.tap.detach(viewer)
            log.info("tap viewer from %s detached (%d messages shown, %d dropped, %d not "
                     "examined)", request.remote, viewer.delivered, viewer.dropped,
                     viewer.unexamined)
        return resp
