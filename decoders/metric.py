"""MetricDecoder: what the metric_collector's TcpInput from the log_collector decodes with,
as LMA's metric.lua did (docs/compatibility.md, "LMA metrics").

Each record is a Heka protobuf message (a HekaFramingSplitter record, decoded as
ProtobufDecoder does). A message whose Type ends with `bulk_metric` and whose Logger is one
of `deserialize_bulk_metric_for_loggers` carries a JSON Payload, a list of points
`{"name": ..., "value": v}` or `{"name": ..., "values": {field: v, ...}}`, each with
optional `"tags": {tag: value, ...}`, as LMA's filters made them (lma_utils'
add_to_bulk_metric / inject_bulk_metric). It is exploded into one message per point:

- Type `metric` with Fields[value] (a point with a `value`), or `multivalue_metric`
  with one field per entry of `values` and Fields[value_fields] listing them;
- every tag copied into a field of its own, the tag names listed in Fields[tag_fields];
- Fields[name] = the point's name, Fields[hostname] = the bulk message's Hostname (a
  tag called hostname gets that value too; a point that had no hostname tag does not
  get hostname listed in tag_fields, so LMA's hdd_errors_rate stays without one);
- Timestamp, Hostname, Severity and Logger of the bulk message, an empty Payload.

Numbers become DOUBLE fields, as Lua numbers did (InfluxDB gets them as floats either
way); strings STRING, booleans BOOL, arrays of those multi-value fields. Where names
collide, the later assignment of metric.lua wins: the values, then value_fields, the
tags, tag_fields, name, hostname. An empty tag list gives no tag_fields field. The
exploded messages get Uuids derived from the bulk message's Uuid and their position,
so a bulk message received twice (a sender's resend) explodes into the same messages.

Every other message (single metrics, multi-value metrics, bulk metrics of other
Loggers) passes through unchanged, its wire bytes included. The input adds the
deployment tags to all of them, as metric.lua's inject_tags did.

Unlike metric.lua, which terminated its sandbox on a malformed point (a point that is
not a JSON object, one with neither `value` nor `values`), the whole bulk message is a
decode failure and the decoder goes on with the next record; a `value` of JSON null
counts as absent. A Payload that is not JSON or not a list is a decode failure too (an
empty list explodes into nothing).

Keys: deserialize_bulk_metric_for_loggers (Loggers whose bulk metrics are exploded,
space-separated as in LMA's TOML, or an array; default none, as metric.lua without the
key).

    [metric_decoder]
    type = "SandboxDecoder"
    filename = "/usr/share/lma_collector/decoders/metric.lua"
      [metric_decoder.config]
      # LMA's TOML gives the same as one space-separated string
      deserialize_bulk_metric_for_loggers = ["aggregated_http_metrics_filter",
          "hdd_errors_counter_filter", "logs_counter_filter"]

    [metric_tcpinput]
    type = "TcpInput"
    address = "127.0.0.1:5567"
    splitter = "HekaFramingSplitter"
    decoder = "metric_decoder"

or, without the SandboxDecoder section, `type = "MetricDecoder"` with the key at the
section's top level.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import orjson

from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Decoder, Option, OptionError, register
from hekapy.decoders.protobuf import decode_record


def _loggers(value: Any) -> frozenset[str]:
    """LMA's space-separated list (or a TOML array) of Logger names."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise OptionError(f"expected Logger names separated by spaces (or an array of "
                      f"strings), got {value!r}")


def _field(name: str, value: Any) -> Field:
    """A field as Lua's inject_message made it from a cjson value: numbers DOUBLE,
    strings STRING, booleans BOOL, an array of one of those a multi-value field."""
    values = value if isinstance(value, list) else [value]
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            kinds.add(BOOL)
        elif isinstance(v, (int, float)):
            kinds.add(DOUBLE)
        elif isinstance(v, str):
            kinds.add(STRING)
        else:
            raise DecodeError(f"field {name!r}: unsupported value {v!r}")
    if len(kinds) != 1:
        raise DecodeError(f"field {name!r}: empty or mixed array {values!r}")
    kind = kinds.pop()
    if kind == DOUBLE:
        values = [float(v) for v in values]
    return Field(name, list(values), kind)


def explode_point(point: Any, bulk: Message, index: int) -> Message:
    """One metric message for point `index` of the bulk message `bulk` (metric.lua's
    loop body); DecodeError for a point it cannot make a metric of."""
    if not isinstance(point, dict):
        raise DecodeError(f"point {index}: expected a JSON object, got {point!r}")
    # Assignments in metric.lua's order, so that a later one replaces an earlier one
    # of the same name; "name" is reserved first only to come first in the message.
    fields: dict[str, Any] = {"name": None}
    value = point.get("value")
    if value is not None and value is not False:
        kind = "metric"
        fields["value"] = value
    else:
        values = point.get("values")
        if not isinstance(values, dict) or not values:
            raise DecodeError(f"point {index}: neither a value nor a table of values")
        kind = "multivalue_metric"
        fields.update(values)
        fields["value_fields"] = list(values)
    tags = point.get("tags")
    if tags is None:
        tags = {}
    elif not isinstance(tags, dict):
        raise DecodeError(f"point {index}: tags must be a JSON object, got {tags!r}")
    fields.update(tags)
    fields["tag_fields"] = list(tags) or None
    fields["name"] = point.get("name")
    fields["hostname"] = bulk.hostname or None
    out = [_field(k, v) for k, v in fields.items() if v is not None]
    uid = None
    if len(bulk.uuid) == 16:
        uid = uuid.uuid5(uuid.UUID(bytes=bulk.uuid), str(index)).bytes
    return Message(uuid=uid, timestamp=bulk.timestamp, type=kind, logger=bulk.logger,
                   severity=bulk.severity, hostname=bulk.hostname, fields=out)


def explode_bulk(bulk: Message) -> list[Message]:
    """Every point of a bulk metric message as a metric message (DecodeError for a
    Payload that is not a JSON list of points)."""
    try:
        points = orjson.loads(bulk.payload)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"bulk metric payload is not JSON: {e}") from None
    if not isinstance(points, list):
        raise DecodeError("bulk metric payload is not a JSON array")
    return [explode_point(p, bulk, i) for i, p in enumerate(points)]


@register
class MetricDecoder(Decoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "deserialize_bulk_metric_for_loggers": Option(
            "any", "", check=_loggers,
            doc="Loggers whose bulk metrics are exploded (space-separated)"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.loggers: frozenset[str] = cfg.deserialize_bulk_metric_for_loggers
        self.exploded = 0  # bulk messages exploded
        self.points = 0  # messages made of their points

    def decode(self, msg: Message) -> Message | list[Message] | None:
        decoded = decode_record(msg)
        if not decoded.type.endswith("bulk_metric") or decoded.logger not in self.loggers:
            return decoded
        points = explode_bulk(decoded)
        self.exploded += 1
        self.points += len(points)
        return points
