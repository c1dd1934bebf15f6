"""InfluxdbAnnotationFilter: LMA's influxdb_annotation.lua, natively. Turns the changes of
a global cluster's status (GseFilter's cluster_status messages) into Grafana
annotations: a metric `annotations` (Type heka.sandbox.metric, Severity 6, the status
message's Timestamp) with the string values `title` ("General status is CRITICAL" the
first time a cluster is seen not OKAY, "General status OKAY -> WARN" on a change),
`tags` (the cluster) and `text` (its alarms, one per line, joined by "<br />"), tag
`cluster`, field source = influxdb_annotation. A cluster first seen OKAY, or a status
that did not change, gives nothing. InfluxdbOutput writes it as
`annotations,cluster=nova tags="nova",text="…",title="…"`.

Keys: measurement_name ("annotations"), serie_name (LMA's Puppet key, which its script
never read: accepted, no effect), preserve_data (false: the last status of each
cluster is saved to <base_dir>/alarm_state/<name>.json, so a restart does not announce
them again), message_matcher (Type == 'heka.sandbox.gse_cluster_metric' && Fields[aggregator]
== NIL: not the copies the aggregator client sends back to the aggregator).

    [influxdb_annotation_filter]
    type = "InfluxdbAnnotationFilter"
    preserve_data = true
"""

from __future__ import annotations

from typing import Any, ClassVar

from hekapy.collector.engine.alarm_status import (
    OKAY,
    STATUS_LABELS,
    alarms_for_human,
    decode_alarms,
    status_of,
)
from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.metrics import metric_message
from hekapy.collector.engine.plugin import Filter, Option, register
from hekapy.filters.alarming.state_file import load_state, save_state


@register
class InfluxdbAnnotationFilter(Filter):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "measurement_name": Option("str", "annotations"),
        "serie_name": Option("str", "", doc="LMA's key; no effect"),
        "preserve_data": Option("bool", False),
    }
    defaults: ClassVar[dict[str, Any]] = {
        "message_matcher": "Type == 'heka.sandbox.gse_cluster_metric' && "
                           "Fields[aggregator] == NIL"}

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.statuses: dict[str, int] = {}  # cluster → the last status announced

    def init(self, ctx: FilterContext) -> None:
        if self.cfg.preserve_data:
            state = load_state(ctx.hekad.base_dir, self.name, ctx.log) or {}
            self.statuses = {k: v for k, v in state.items() if v in STATUS_LABELS}

    def shutdown(self, ctx: FilterContext) -> None:
        if self.cfg.preserve_data:
            save_state(ctx.hekad.base_dir, self.name, self.statuses, ctx.log)

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        for m in messages:
            cluster = m.get_field("cluster_name")
            status = status_of(m.get_field("value"))
            alarms = decode_alarms(m.payload)
            if cluster is None or status is None or alarms is None:
                ctx.stats.errors += 1
                ctx.limited_log(30, "not a cluster status (cluster_name, value 0..4 and "
                                "alarms needed): Type %r, Logger %r", m.type, m.logger)
                continue
            annotation = self.annotation(str(cluster), status, alarms, m, ctx.hostname)
            if annotation is not None:
                ctx.inject(annotation)

    def annotation(self, cluster: str, status: int, alarms: list[dict[str, Any]],
                   m: Message, hostname: str) -> Message | None:
        previous = self.statuses.get(cluster)
        if previous is None and status == OKAY:
            return None  # a new cluster that is fine: nothing to tell
        if previous is None:
            title = f"General status is {STATUS_LABELS[status]}"
        elif previous != status:
            title = f"General status {STATUS_LABELS[previous]} -> {STATUS_LABELS[status]}"
        else:
            return None
        self.statuses[cluster] = status
        text = "<br />".join(alarms_for_human(alarms))
        msg = metric_message(self.cfg.measurement_name,
                             {"title": title, "tags": cluster, "text": text},
                             {"cluster": cluster}, m.timestamp, self.name, hostname)
        msg.type = "heka.sandbox.metric"
        msg.add_field("source", "influxdb_annotation")
        return msg
