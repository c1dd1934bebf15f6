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
import time
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.metrics import metric_message
from hekapy.collector.engine.plugin import Input, Option, OptionError, register
from hekapy.collector.engine.report import (
    plugin_rows,
    process_info,
    process_start_time,
    queue_rows,
)
from hekapy.collector.engine.stats import COUNTERS

if TYPE_CHECKING:
    from hekapy.collector.engine.contexts import InputContext
    from hekapy.collector.engine.pipeline import Pipeline

LOGGER = "hekapy_stats"
# What /health also uses: an output that has not retried for this long is not retrying.
RETRY_STALE_MIN = 60.0

Point = tuple[str, dict[str, str], dict[str, float]]
# The value fields of hekapy_plugin: the counters, and per category what it adds.
_PLUGIN_VALUES = (*COUNTERS, "matcher_seconds", "unacked_batches", "unacked_bytes")


def _ratio(used: int, bound: int) -> float:
    return used / bound if bound > 0 else 0.0


def pipeline_points(pipeline: Pipeline, started: float) -> list[Point]:
    """(measurement, tags, values) of every point one tick reports."""
    stale = max(RETRY_STALE_MIN,
                2 * float(getattr(pipeline.hekad, "status_degraded_after", 30.0)))
    points: list[Point] = []
    gave_up = 0
    for row in plugin_rows(pipeline, stale):
        category = row["category"]
        values = {k: float(row[k]) for k in _PLUGIN_VALUES
                  if k in row and not (k == "matcher_seconds" and category == "input")}
        if category == "output":
            values["retrying_seconds"] = float(row["retrying_for"])
        values["up"] = 0.0 if row["gave_up"] else 1.0
        gave_up += bool(row["gave_up"])
        points.append(("hekapy_plugin", {"plugin": row["name"], "plugin_type": row["type"],
                                         "category": category}, values))
        buf = row.get("buffer")
        if buf is not None:
            points.append(("hekapy_buffer", {"plugin": row["name"]}, {
                "bytes": float(buf["bytes"]), "max_bytes": float(buf["max_bytes"]),
                "fill_ratio": _ratio(buf["bytes"], buf["max_bytes"]),
                "dropped": float(buf["dropped"]), "corrupt_bytes": float(buf["corrupt_bytes"])}))
    for q in queue_rows(pipeline):
        points.append(("hekapy_queue", {"plugin": q["plugin"], "queue": q["queue"]}, {
            "batches": float(q["batches"]), "messages": float(q["messages"]),
            "bytes": float(q["bytes"]), "capacity_batches": float(q["max_batches"]),
            "capacity_bytes": float(q["max_bytes"]),
            "fill_ratio": max(_ratio(q["batches"], q["max_batches"]),
                              _ratio(q["bytes"], q["max_bytes"]))}))
    proc = process_info(started)
    points.append(("hekapy_collector", {}, {
        "rss_bytes": float(proc["rss_bytes"]), "cpu_seconds": float(proc["cpu_seconds"]),
        "open_fds": float(proc["open_fds"]), "uptime_seconds": max(0.0, time.time() - started),
        "routed_messages": float(pipeline.router.messages_routed),
        "unmatched_messages": float(pipeline.router.messages_unmatched),
        "plugins_gave_up": float(gave_up)}))
    return points


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
        self.started = process_start_time()

    def tick(self, ctx: InputContext) -> list[Message]:
        collector = self.cfg.collector or PurePath(ctx.hekad.base_dir).name or "hekapy"
        host = ctx.hostname
        common = {"hostname": host, "collector": collector}
        now = time.time_ns()
        return [metric_message(name, values, {**common, **tags}, now, LOGGER, host,
                               msg_type="metric")
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
