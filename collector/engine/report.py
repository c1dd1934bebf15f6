"""The one reading of a running pipeline's counters: per plugin, per queue, per disk
buffer, and the process. The status server renders it (collector/app/status/),
HekapyStatsInput ships it as metric messages, and Heka's report
(collector/engine/heka_report.py) is made of it; all see the same numbers.

A decoder shared by several inputs is one plugin: its counters are what those inputs
handed it. An output counts as retrying until it stores or dead-letters a message, or
until it has not retried for `stale` seconds.
"""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Any

from hekapy.collector.engine.stats import COUNTERS

if TYPE_CHECKING:
    from hekapy.collector.engine.pipeline import Pipeline

_IMPORTED = time.time()


def process_start_time() -> float:
    """When this process started (epoch seconds): Linux's /proc, else when this module
    was imported. A status server's own start is later, and a reload starts it again."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/stat", "rb") as f:
            boot = next(int(ln.split()[1]) for ln in f if ln.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


def process_info(started: float) -> dict[str, Any]:
    """RSS, CPU seconds, open descriptors of this process (Linux /proc, else rusage)."""
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


def _row(ctx: Any, category: str, plugin: Any) -> dict[str, Any]:
    st = ctx.stats
    return {"name": ctx.name, "type": ctx.spec.type_name, "category": category,
            **st.as_dict(), "matcher_seconds": st.matcher_seconds, "gave_up": st.gave_up,
            "process_ns": st.process_ns, "process_samples": st.process_samples,
            "timer_ns": st.timer_ns, "timer_samples": st.timer_samples,
            "heka_report": _plugin_report(plugin)}


def _plugin_report(plugin: Any) -> dict[str, tuple[Any, str]]:
    """What the plugin adds to Heka's report (Plugin.heka_report); a plugin that fails
    to say reports nothing rather than failing the whole report."""
    try:
        return dict(plugin.heka_report())
    except Exception:
        return {}


def _merge_report(into: dict[str, tuple[Any, str]], more: dict[str, tuple[Any, str]]
                  ) -> None:
    """A decoder's instances (one per input) as one: the Max* fields the largest, the
    others summed."""
    for key, (value, rep) in more.items():
        have = into.get(key)
        if have is None:
            into[key] = (value, rep)
        elif isinstance(value, (int, float)) and isinstance(have[0], (int, float)):
            into[key] = (max(have[0], value) if key.startswith("Max")
                         else have[0] + value, rep)


def plugin_rows(pipeline: Pipeline, stale: float, now: float | None = None
                ) -> list[dict[str, Any]]:
    """One dict per input, decoder, filter and output: name, type, category, the
    counters of collector/engine/stats.py, gave_up, the timings (process_ns and
    process_samples, timer_ns and timer_samples) and the plugin's own Heka report
    fields (heka_report: name → (value, representation)); inputs add their
    acknowledgement window (unacked_batches, unacked_bytes, window_batches,
    forced_flushes, decoder), outputs how long they have retried (retrying_for),
    unacked_batches, their disk buffer (buffer), encoder (encoder) and its Heka report
    fields (encoder_report). `plugin` and `context` hold the objects, for readers that
    want more (they are not part of the data)."""
    now = time.monotonic() if now is None else now
    rows: list[dict[str, Any]] = []
    decoders: dict[str, dict[str, Any]] = {}
    for plugin, ctx in pipeline.inputs:
        row = _row(ctx, "input", plugin)
        row.update(plugin=plugin, context=ctx, unacked_batches=ctx.tracker.in_flight,
                   unacked_bytes=ctx.tracker.in_flight_bytes,
                   window_batches=ctx.tracker.max_batches,
                   forced_flushes=ctx.forced_flushes)
        rows.append(row)
        dec = ctx.decoder
        if dec is None:
            continue
        row["decoder"] = dec.name
        d = decoders.get(dec.name)
        if d is None:
            d = decoders[dec.name] = {
                "name": dec.name, "type": type(dec).type_name, "category": "decoder",
                **dict.fromkeys(COUNTERS, 0), "inputs": [], "gave_up": False,
                "process_ns": 0, "process_samples": 0, "heka_report": {}}
        d["inputs"].append(ctx.name)
        st = ctx.stats
        d["messages_in"] += st.messages_in
        d["messages_out"] += st.messages_out
        d["bytes_in"] += st.bytes_out
        d["decode_failures"] += st.decode_failures
        d["process_ns"] += st.process_ns
        d["process_samples"] += st.process_samples
        _merge_report(d["heka_report"], _plugin_report(dec))
    rows.extend(decoders.values())
    for filter_plugin, fctx, _queue in pipeline.filters:
        row = _row(fctx, "filter", filter_plugin)
        row.update(plugin=filter_plugin, context=fctx)
        rows.append(row)
    for output_plugin, octx in pipeline.outputs:
        row = _row(octx, "output", output_plugin)
        row.update(plugin=output_plugin, context=octx,
                   retrying_for=octx.stats.retrying_for(now, stale) or 0.0,
                   unacked_batches=len(octx.unacknowledged()))
        buf = pipeline.buffers.get(octx.name)
        if buf is not None:
            disk = buf.disk
            row["buffer"] = {"bytes": disk.size_bytes, "max_bytes": disk.max_buffer_size,
                             "full_action": disk.full_action, "dropped": disk.dropped,
                             "corrupt_bytes": disk.corrupt_bytes}
        if octx.encoder is not None:
            row["encoder"] = octx.encoder.name
            row["encoder_report"] = _plugin_report(octx.encoder)
        rows.append(row)
    return rows


def queue_rows(pipeline: Pipeline) -> list[dict[str, Any]]:
    """One dict per filter or output queue: plugin, queue (its role), batches,
    messages, bytes and their bounds."""
    return [{"plugin": name, "queue": role, "batches": len(q), "messages": q.nmessages,
             "bytes": q.nbytes, "max_batches": q.max_batches, "max_bytes": q.max_bytes}
            for name, role, q in pipeline.queues()]
