"""Heka metric messages → InfluxDB line protocol, exactly as LMA's influxdb.lua and
influxdb_accumulator.lua wrote it (docs/compatibility.md, "InfluxDB line protocol"; vectors
in tests/data/lma/influxdb_encoder.json):

    name,tag1=v1,tag2=v2 value=1.000000 1000000

- tags sorted by key; empty keys or values skipped; spaces, commas (and, unlike LMA,
  "=", which InfluxDB would otherwise misread) escaped with a backslash; a measurement,
  tag or field key ending in a backslash gets a space after it (else InfluxDB reads the
  separator as escaped and refuses the line);
- numbers always with six decimals (so every series is a float series, as LMA's);
  strings double-quoted with `"` and `\\` escaped; booleans as quoted strings;
- the timestamp is floor(ns / unit) for the precision.

A metric message (LMA's convention, docs/compatibility.md, "LMA metrics"): `Fields[name]`, and
`Fields[value]` or `Fields[value_fields]` naming the fields that hold the values;
tags are the common tag fields present (deployment_id, environment_label, tenant_id,
user_id by default) plus every field named in `Fields[tag_fields]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hekapy.collector.engine.message import Message

PRECISION_DIVISORS = {"ns": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
# LMA escaped spaces and commas only; "=", newlines and tabs are escaped too here, as
# InfluxDB's own client does, so no name can break a line.
_CONTROL = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_MEASUREMENT_ESCAPES = str.maketrans({" ": "\\ ", ",": "\\,", **_CONTROL})
_TAG_ESCAPES = str.maketrans({" ": "\\ ", ",": "\\,", "=": "\\=", **_CONTROL})


def _trailing(out: str) -> str:
    """InfluxDB reads a separator right after a backslash as escaped and refuses the
    line: a text ending in one gets a space (read back as a space), as InfluxDB's own
    client does for tag values; measurements and field keys need it as much."""
    return out + " " if out.endswith("\\") else out


def _name(text: str) -> str:
    """A measurement, escaped."""
    return _trailing(text.translate(_MEASUREMENT_ESCAPES))


def _tag(text: str) -> str:
    """A tag key, tag value or field key, escaped."""
    return _trailing(text.translate(_TAG_ESCAPES))
DEFAULT_TAG_FIELDS = ("deployment_id", "environment_label", "tenant_id", "user_id")


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return '"true"' if value else '"false"'
    if isinstance(value, (int, float)):
        return f"{value:.6f}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def encode_point(timestamp_ns: int, name: str | None, value: Any,
                 tags: dict[str, Any] | None = None, precision: str = "ms") -> str:
    """One line (no newline); "" for a point without a name (as LMA) or with a name
    InfluxDB would read as a comment (a leading "#")."""
    if not name or str(name).startswith("#"):
        return ""
    out = [_name(str(name))]
    if tags:
        for k in sorted(tags):
            v = tags[k]
            if k == "" or v is None or v == "":
                continue
            out.append(f",{_tag(str(k))}={_tag(str(v))}")
    if isinstance(value, dict):
        fields = ",".join(f"{_tag(str(k))}={format_value(v)}"
                          for k, v in sorted(value.items()))
    else:
        fields = "value=" + format_value(value)
    ts = int(timestamp_ns) // PRECISION_DIVISORS[precision]
    out.append(f" {fields} {ts}")
    return "".join(out)


def _first(msg: Message, name: str) -> Any:
    f = msg.find_field(name)
    return f.values[0] if f is not None and f.values else None


def _all(msg: Message, name: str) -> list[Any]:
    f = msg.find_field(name)
    return list(f.values) if f is not None else []


def message_points(msg: Message, common_tags: Iterable[str] = DEFAULT_TAG_FIELDS,
                   precision: str = "ms") -> list[str]:
    """The line(s) of one metric message; [] when it is no metric (no Fields[name], or
    no value)."""
    name = _first(msg, "name")
    if not name or str(name).startswith("#"):
        return []
    value_fields = _all(msg, "value_fields")
    if value_fields:
        value: Any = {}
        for vf in value_fields:
            v = _first(msg, vf)
            if v is not None:
                value[vf] = v
        if not value:
            return []
    else:
        value = _first(msg, "value")
        if value is None:
            return []
    tags: dict[str, Any] = {}
    for t in common_tags:
        v = _first(msg, t)
        if v is not None:
            tags[t] = v
    for t in _all(msg, "tag_fields"):
        v = _first(msg, t)
        if v is not None:
            tags[t] = v
    return [encode_point(msg.timestamp, name, value, tags, precision)]
