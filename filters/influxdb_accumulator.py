"""InfluxdbAccumulatorFilter: LMA's influxdb_accumulator.lua, natively, for configurations
that send metrics to InfluxDB the way LMA did: this filter turns metric messages into
InfluxDB line protocol and injects them in batches (Type heka.sandbox-output,
payload_type "txt", payload_name "influxdb"), which an HttpOutput with a
PayloadEncoder posts to /write. hekapy's own InfluxdbOutput does all of that in one
plugin (conf/lma_metric_collector.toml uses it); this is for a SandboxFilter section
naming influxdb_accumulator.lua, which becomes this.

Each metric: measurement Fields[name], tags the `tag_fields` present plus the fields
Fields[tag_fields] lists, value Fields[value] (as `value`) or the fields
Fields[value_fields] lists; a message whose Type matches the Lua pattern
`bulk_metric_type_matcher` carries a JSON list of points ({name, value or values,
tags}) instead. Written as LMA's influxdb.lua wrote them: tags sorted, spaces and
commas escaped with a backslash, numbers with six decimals, strings double-quoted,
booleans as "true"/"false", the timestamp in `time_precision`. A batch goes out at
each tick (LMA: 1 s) when it has points, or as soon as it has more than
`flush_count`.

Keys: flush_count (100), flush_interval (5; LMA's key, whose check compared
nanoseconds with seconds and so flushed at every tick: accepted, no effect),
time_precision ("ns"; s, ms, us, m, h), payload_name ("influxdb"),
bulk_metric_type_matcher ("bulk_metric$"), tag_fields (names separated by spaces),
ticker_interval (1), message_matcher (Fields[aggregator] == NIL && Type =~ /metric$/).

    [influxdb_accumulator_filter]
    type = "InfluxdbAccumulatorFilter"
    flush_count = 400
    time_precision = "ms"
    tag_fields = "deployment_id environment_label tenant_id user_id"
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any, ClassVar

from hekapy.collector.engine.alarm_status import lua_tostring
from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.metrics import metric_value
from hekapy.collector.engine.plugin import Filter, Option, OptionError, register
from hekapy.filters.alarming.matching import ExpressionError, lua_pattern

DIVISORS = {"s": 1e9, "ms": 1e6, "us": 1e3, "m": 60e9, "h": 3600e9}


def _escape(text: Any) -> str:
    return lua_tostring(text).replace(" ", "\\ ").replace(",", "\\,")


def _value(value: Any) -> str | None:
    if isinstance(value, bool):
        return '"true"' if value else '"false"'
    if isinstance(value, (int, float)):
        return f"{value:.6f}"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return None


def encode_point(ts: int, name: Any, value: Any, tags: dict[str, Any], precision: str) -> str:
    """One line as influxdb.lua wrote it; "" for a point it would not write."""
    if not isinstance(name, str) or value is None:
        return ""
    if isinstance(value, dict):
        parts = [f"{_escape(k)}={v}" for k, v in sorted(
            (k, _value(v)) for k, v in value.items()) if v is not None]
        fields = ",".join(parts)
    else:
        encoded = _value(value)
        if encoded is None:
            return ""
        fields = "value=" + encoded
    # LMA read the Timestamp as a Lua number (a double) and floored it.
    stamp = int(float(ts)) if precision == "ns" else math.floor(float(ts) / DIVISORS[precision])
    tag_items = sorted(f"{_escape(k)}={_escape(v)}" for k, v in tags.items()
                       if k != "" and v is not None and v != "")
    head = _escape(name) + ("," + ",".join(tag_items) if tag_items else "")
    return f"{head} {fields} {stamp}"


@register
class InfluxdbAccumulatorFilter(Filter):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "flush_count": Option("int", 100),
        "flush_interval": Option("float", 5.0, doc="LMA's key; no effect"),
        "time_precision": Option("str", "ns", choices=("ns", "us", "ms", "s", "m", "h")),
        "payload_name": Option("str", "influxdb"),
        "bulk_metric_type_matcher": Option("str", "bulk_metric$", doc="a Lua pattern"),
        "tag_fields": Option("str", "", doc="common tags, separated by spaces"),
    }
    defaults: ClassVar[dict[str, Any]] = {
        "message_matcher": "Fields[aggregator] == NIL && Type =~ /metric$/",
        "ticker_interval": 1}

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        try:
            self.bulk_type = lua_pattern(cfg.bulk_metric_type_matcher)
        except ExpressionError as e:
            raise OptionError(str(e), key="bulk_metric_type_matcher") from None
        self.common_tags = cfg.tag_fields.split()
        self.lines: list[str] = []

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        for m in messages:
            problem = self._bulk(m) if self.bulk_type.search(m.type) else self._single(m)
            if problem:
                ctx.stats.errors += 1
                ctx.limited_log(30, "%s (Type %r, Logger %r)", problem, m.type, m.logger)
            if len(self.lines) > self.cfg.flush_count:
                self._flush(ctx)

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        self._flush(ctx)

    def _tags(self, m: Message) -> dict[str, Any]:
        return {t: m.get_field(t) for t in self.common_tags if m.get_field(t) is not None}

    def _single(self, m: Message) -> str | None:
        name = m.get_field("name")
        if name is None:
            return "Fields[name] is missing"
        value = metric_value(m)
        if value is None:
            return "Fields[value] is missing"
        tags = self._tags(m)
        listed = m.find_field("tag_fields")
        for t in listed.values if listed is not None else ():
            v = m.get_field(t)
            if v is not None:
                tags[t] = v
        self._append(encode_point(m.timestamp, name, value, tags, self.cfg.time_precision))
        return None

    def _bulk(self, m: Message) -> str | None:
        try:
            points = json.loads(m.payload)
        except ValueError:
            return "Invalid payload value for bulk metric"
        if not isinstance(points, list):
            return "Invalid payload value for bulk metric"
        common = self._tags(m)
        for p in points:
            if not isinstance(p, dict):
                continue
            own = p.get("tags")
            tags = {**common, **(own if isinstance(own, dict) else {})}
            value = p.get("value") if p.get("value") is not None else p.get("values")
            self._append(encode_point(m.timestamp, p.get("name"), value, tags,
                                      self.cfg.time_precision))
        return None

    def _append(self, line: str) -> None:
        if line:
            self.lines.append(line)

    def _flush(self, ctx: FilterContext) -> None:
        if not self.lines:
            return
        body = "\n".join(self.lines) + "\n"
        self.lines = []
        ctx.inject(Message(type="heka.sandbox-output", logger=self.name,
                           hostname=ctx.hostname, payload=body,
                           fields=[Field("payload_type", ["txt"], STRING, "file-extension"),
                                   Field("payload_name", [self.cfg.payload_name], STRING)]))
