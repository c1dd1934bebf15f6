"""What the pipeline looks like now, as plain data: the one reading of the running
pipeline that every status endpoint renders (`Snapshot.collect`), and its health.

`/health` is `{"status": "ok"}` (200); `{"status": "degraded", "reasons": [...]}` (200)
when an output has retried without storing a single message for longer than
`status_degraded_after` (its server is unreachable or refusing everything), a disk buffer
is over 80% of its max_buffer_size, a plugin restarted in the last
max(60 s, status_degraded_after), journal or disk-buffer writes failed in the last 60 s
(read-only or full file system), a LogstreamerInput's file_match picked up something
that is not a text log (a FIFO or other special file, skipped; a stream with NUL bytes
or records over max_message_size in the last 60 s), or hekapy is stopping;
`{"status": "failing", ...}` (503)
when a plugin gave up for good (its [X.retries] are exhausted) or the pipeline failed (a
plugin that may not exit failed, a full disk buffer with full_action = "shutdown"). An
output counts as retrying until it stores or dead-letters a message, or until it has not
retried for max(60 s, 2 * status_degraded_after).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import time
from typing import TYPE_CHECKING, Any

from hekapy.collector import __version__, compiled
from hekapy.collector.engine.report import (
    plugin_rows,
    process_info,
    process_start_time,
    queue_rows,
)
from hekapy.collector.engine.tap import TapRegistry

if TYPE_CHECKING:
    from hekapy.collector.engine.pipeline import Pipeline

log = logging.getLogger("hekapy.status")

BUFFER_DEGRADED = 0.8
RESTART_WINDOW = 60.0
# A LogstreamerInput stream's problems that make /health degraded (for a minute after
# each): what a file that is not a text log does when file_match picks it up.
PROBLEMS = {"binary": "binary data (NUL bytes): not a text log?",
            "oversized": "records over max_message_size dropped"}


def stream_problems(stream: Any) -> dict[str, int]:
    """A stream's problem counters, with its file truncations (copytruncate, or a file
    rewritten in place: not a fault by itself, so /metrics only)."""
    out = dict(getattr(stream, "problems", {}))
    truncations = stream.reader.counters.get("truncations", 0)
    if truncations:
        out["truncated"] = truncations
    return out


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
        # Files file_match picked up that are not logs: skipped, or read and refused.
        for plugin, ctx in p.inputs:
            for skipped in getattr(plugin, "skipped_files", ()):
                degraded.append(f"input {ctx.name!r}: {skipped}")
            for name, s in list(getattr(plugin, "_streams", {}).items()):
                for problem, n in getattr(s, "problems", {}).items():
                    if self._recently_grew(f"stream:{ctx.name}:{name}:{problem}", n, now):
                        degraded.append(f"input {ctx.name!r} stream {name!r}: "
                                        f"{PROBLEMS.get(problem, problem)} ({n} so far)")
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
        for q in queue_rows(p):
            queues.setdefault(q.pop("plugin"), []).append(q)
        plugins = plugin_rows(p, stale, now)
        encoders: dict[str, dict[str, Any]] = {}
        for row in plugins:
            plugin, ctx = row.pop("plugin", None), row.pop("context", None)
            if row["category"] in ("filter", "output"):
                row["queues"] = queues.get(row["name"], [])
            if row["type"] == "LogstreamerInput":
                row["streams"] = self._streams(plugin)
                row["skipped_files"] = list(getattr(plugin, "skipped_files", ()))
            if ctx is not None and row["category"] == "output" and ctx.encoder is not None:
                enc = ctx.encoder
                e = encoders.setdefault(enc.name, {"name": enc.name,
                                                   "type": type(enc).type_name,
                                                   "category": "encoder", "outputs": []})
                e["outputs"].append(row["name"])
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
            # A reconnect loop that leaks tasks shows here first (the soak watches it).
            "asyncio_tasks": len(asyncio.all_tasks()),
            "router": {"messages": p.router.messages_routed,
                       "unmatched": p.router.messages_unmatched},
            "tap": {"viewers": len(tap.viewers) if tap else 0,
                    "dropped": tap.dropped() if tap else 0},
            "health": self.health(),
            "plugins": plugins,
            "encoders": list(encoders.values()),
        }

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
                    # (stream, file, offset, ...): the input may carry more after those.
                    _, f, seek, *_ = a
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
                            "acked_offset": acked_offset, "lag_bytes": max(0, lag),
                            "problems": stream_problems(s)})
        except Exception as e:  # the tailer's internals moved: report nothing, not fail
            log.debug("cannot read LogstreamerInput streams: %s", e)
        return out
