"""Metric messages as LMA's filters and decoders made them (docs/compatibility.md, "LMA
metrics"), for every plugin that makes or reads them (filters, inputs, the alarm chain):
`Fields[name]`, `Fields[value]` or `Fields[value_fields]` listing the value fields, the
tags as fields listed in `Fields[tag_fields]`. InfluxdbOutput turns them into LMA's
series (outputs/influxdb/line_protocol.py)."""

from __future__ import annotations

from typing import Any

from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message


def _value_field(name: str, value: Any) -> Field:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Field(name, [str(value)], STRING)
    return Field(name, [value], INTEGER if isinstance(value, int) else DOUBLE)


def metric_message(name: str, value: Any, tags: dict[str, str], timestamp: int,
                   logger: str, hostname: str, msg_type: str = "") -> Message:
    """A single-value metric (Type heka.sandbox.metric) or, for a dict of values, a
    multi-value one (heka.sandbox.multivalue_metric); `msg_type` instead of those."""
    fields = [Field("name", [name], STRING)]
    if isinstance(value, dict):
        kind = "heka.sandbox.multivalue_metric"
        fields.append(Field("value_fields", list(value), STRING))
        fields += [_value_field(k, v) for k, v in value.items()]
    else:
        kind = "heka.sandbox.metric"
        fields.append(_value_field("value", value))
    fields += [Field(k, [str(v)], STRING) for k, v in tags.items()]
    if tags:
        fields.append(Field("tag_fields", list(tags), STRING))
    return Message(type=msg_type or kind, logger=logger, hostname=hostname,
                   timestamp=timestamp, severity=6, fields=fields)


def metric_value(m: Message) -> Any:
    """A metric message's value: Fields[value], or {name: value} of the fields that
    Fields[value_fields] lists (LMA's lma_utils.get_values_from_metric); None if none."""
    listed = m.find_field("value_fields")
    if listed is not None:
        values = {}
        for f in listed.values:
            v = m.get_field(f)
            if v is not None:
                values[f] = v
        return values or None
    return m.get_field("value")
