"""HekapyStatsInput: hekapy's own counters as metric messages, so that the collector
monitors itself through the series it ships (to InfluxDB with the rest), as LMA's
collectors wrote their `hekad_*` series. It reads the running pipeline's counters (the
ones the status server shows) every `ticker_interval` seconds.

Every tick, one multi-value metric message per point (Type `metric`, Logger
`hekapy_stats`, `Fields[value_fields]` naming the value fields, every value a DOUBLE,
tags hostname, collector, plus those below, and the deployment tags the pipeline adds
to every input's messages). Counters are cumulative since the start (dashboards take
the derivative):

- `hekapy_plugin`, per plugin (tags plugin, plugin_type, category = input, decoder,
  filter or output): messages_in, messages_out, bytes_in, bytes_out, decode_failures,
  dropped, retried, dead_lettered, errors, restarts, injected, up (0 once it gave up
  for good); inputs also unacked_batches, unacked_bytes; outputs also unacked_batches,
  retrying_seconds (how long it has retried without storing a message); filters and
  outputs matcher_seconds. A decoder counts what the inputs it serves handed it.
- `hekapy_queue`, per filter or output queue (tags plugin, queue = input or buffer-in):
  batches, messages, bytes, capacity_batches, capacity_bytes, fill_ratio (0-1, of
  whichever bound is nearer).
- `hekapy_buffer`, per output with `use_buffering` (tag plugin): bytes, max_bytes,
  fill_ratio (0 when unlimited), dropped, corrupt_bytes.
- `hekapy_collector`, the process: rss_bytes, cpu_seconds, open_fds, uptime_seconds,
  routed_messages, unmatched_messages, plugins_gave_up.

`collector` tells apart the collectors of one node (LMA's log_collector and
metric_collector): it defaults to the last component of `[hekad] base_dir`, which two
collectors on one node never share.

Keys: ticker_interval (10 s), collector.

    [hekapy_stats]
    type = "HekapyStatsInput"
    ticker_interval = 10
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from hekapy.collector.engine.message import DOUBLE, STRING, Field, Message
from hekapy.collector.engine.plugin import Input, Option, OptionError, register
from hekapy.collector.engine.stats import COUNTERS

if TYPE_CHECKING:
    from hekapy.collector.engine.contexts import InputContext
    from hekapy.collector.engine.pipeline import Pipeline

LOGGER = "hekapy_stats"
# What /health also uses: an output that has not retried for this long is not retrying.
RETRY_STALE_MIN = 60.0

Point = tuple[str, dict[str, str], dict[str, float]]


def _started() -> float:
    """When this process started (epoch seconds), from /proc; else this module's import."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/stat", "rb") as f:
            boot = next(int(ln.split()[1]) for ln in f if ln.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _ratio(used: int, bound: int) -> float:
    return used / bound if bound > 0 else 0.0


def _counters(stats: Any) -> dict[str, float]:
    return {key: float(getattr(stats, key)) for key in COUNTERS}


def pipeline_points(pipeline: Pipeline, started: float) -> list[Point]:
    """(measurement, tags, values) of every point one tick reports."""
    now = time.monotonic()
    stale = max(RETRY_STALE_MIN,
                2 * float(getattr(pipeline.hekad, "status_degraded_after", 30.0)))
    points: list[Point] = []
    decoders: dict[str, tuple[str, dict[str, float]]] = {}

    def plugin(name: str, type_name: str, category: str, values: dict[str, float],
               gave_up: bool) -> None:
        values["up"] = 0.0 if gave_up else 1.0
        points.append(("hekapy_plugin", {"plugin": name, "plugin_type": type_name,
                                         "category": category}, values))

    gave_up = 0
    for _input, ictx in pipeline.inputs:
        st = ictx.stats
        values = _counters(st)
        values["unacked_batches"] = float(ictx.tracker.in_flight)
        values["unacked_bytes"] = float(ictx.tracker.in_flight_bytes)
        plugin(ictx.name, ictx.spec.type_name, "input", values, st.gave_up)
        gave_up += st.gave_up
        dec = ictx.decoder
        if dec is not None:
            # A decoder shared by several inputs is one plugin: what they handed it.
            _, d = decoders.setdefault(dec.name, (type(dec).type_name,
                                                  dict.fromkeys(COUNTERS, 0.0)))
            d["messages_in"] += st.messages_in
            d["messages_out"] += st.messages_out
            d["bytes_in"] += st.bytes_out
            d["decode_failures"] += st.decode_failures
    for name, (type_name, values) in decoders.items():
        plugin(name, type_name, "decoder", values, False)  # a decoder never gives up
    for _filter, fctx, _queue in pipeline.filters:
        values = _counters(fctx.stats)
        values["matcher_seconds"] = fctx.stats.matcher_seconds
        plugin(fctx.name, fctx.spec.type_name, "filter", values, fctx.stats.gave_up)
        gave_up += fctx.stats.gave_up
    for _output, octx in pipeline.outputs:
        st = octx.stats
        values = _counters(st)
        values["matcher_seconds"] = st.matcher_seconds
        values["retrying_seconds"] = st.retrying_for(now, stale) or 0.0
        values["unacked_batches"] = float(len(octx.unacknowledged()))
        plugin(octx.name, octx.spec.type_name, "output", values, st.gave_up)
        gave_up += st.gave_up
    for name, role, q in pipeline.queues():
        points.append(("hekapy_queue", {"plugin": name, "queue": role}, {
            "batches": float(len(q)), "messages": float(q.nmessages),
            "bytes": float(q.nbytes), "capacity_batches": float(q.max_batches),
            "capacity_bytes": float(q.max_bytes),
            "fill_ratio": max(_ratio(len(q), q.max_batches), _ratio(q.nbytes, q.max_bytes))}))
    for name, buf in pipeline.buffers.items():
        disk = buf.disk
        points.append(("hekapy_buffer", {"plugin": name}, {
            "bytes": float(disk.size_bytes), "max_bytes": float(disk.max_buffer_size),
            "fill_ratio": _ratio(disk.size_bytes, disk.max_buffer_size),
            "dropped": float(disk.dropped), "corrupt_bytes": float(disk.corrupt_bytes)}))
    cpu = os.times()
    points.append(("hekapy_collector", {}, {
        "rss_bytes": float(_rss_bytes()), "cpu_seconds": cpu.user + cpu.system,
        "open_fds": float(_open_fds()), "uptime_seconds": max(0.0, time.time() - started),
        "routed_messages": float(pipeline.router.messages_routed),
        "unmatched_messages": float(pipeline.router.messages_unmatched),
        "plugins_gave_up": float(gave_up)}))
    return points


def point_message(name: str, tags: dict[str, str], values: dict[str, float],
                  timestamp: int, hostname: str) -> Message:
    """One multi-value metric message (outputs/influxdb's line protocol reads it)."""
    fields = [Field("name", [name], STRING), Field("value_fields", list(values), STRING)]
    fields += [Field(k, [float(v)], DOUBLE) for k, v in values.items()]
    fields += [Field(k, [v], STRING) for k, v in tags.items()]
    fields.append(Field("tag_fields", list(tags), STRING))
    return Message(timestamp=timestamp, type="metric", logger=LOGGER, severity=6,
                   hostname=hostname, fields=fields)


@register
class HekapyStatsInput(Input):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "collector": Option("str", "", doc="collector tag (default: base_dir's last part)"),
    }
    defaults: ClassVar[dict[str, Any]] = {"ticker_interval": 10}

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if cfg.ticker_interval <= 0:
            raise OptionError("must be more than 0", key="ticker_interval")
        self.started = _started()

    def tick(self, ctx: InputContext) -> list[Message]:
        collector = self.cfg.collector or PurePath(ctx.hekad.base_dir).name or "hekapy"
        host = ctx.hostname
        common = {"hostname": host, "collector": collector}
        now = time.time_ns()
        return [point_message(name, {**common, **tags}, values, now, host)
                for name, tags, values in pipeline_points(ctx.pipeline, self.started)]

    async def run(self, ctx: InputContext) -> None:
        while not ctx.stopping.is_set():
            msgs = self.tick(ctx)
            ctx.stats.messages_in += len(msgs)
            await ctx.deliver(msgs)
            try:
                await asyncio.wait_for(ctx.stopping.wait(), self.cfg.ticker_interval)
            except TimeoutError:
                pass
