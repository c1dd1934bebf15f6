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

from hekapy.collector.engine.memo import BoundedMemo
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


# Measurements, tag keys, tag values and field keys repeat from point to point (a
# metric has few series): each distinct one is escaped once.
ESCAPED_LIMIT = 10_000


def _tag_pair_start(key: str) -> str:
    return f",{_tag(key)}="


def _field_start(key: str) -> str:
    return f"{_tag(key)}="


class PointEncoder:
    """Metric messages -> line protocol, one line per message (LMA's convention,
    docs/compatibility.md, "LMA metrics"): `Fields[name]`, and `Fields[value]` or
    `Fields[value_fields]` naming the fields that hold the values; tags are the
    `common_tags` present plus every field named in `Fields[tag_fields]`; a field's
    first occurrence counts. The text is encode_point's for the same point
    (tests/outputs/test_influxdb_encoding.py holds it to that, byte for byte).

    Per point it builds one dict of the message's fields by name and looks every name
    up there (rather than scanning the fields once per name), escapes each distinct
    measurement, tag key, tag value and field key once (BoundedMemo), and formats floats
    and ints without a detour through format_value."""

    def __init__(self, common_tags: Iterable[str] = DEFAULT_TAG_FIELDS,
                 precision: str = "ms") -> None:
        self.common_tags = tuple(dict.fromkeys(common_tags))
        self.divisor = PRECISION_DIVISORS[precision]
        self.measurements = BoundedMemo(_name, ESCAPED_LIMIT)
        self.tag_values = BoundedMemo(_tag, ESCAPED_LIMIT)
        self.tag_starts = BoundedMemo(_tag_pair_start, ESCAPED_LIMIT)  # ",key="
        self.field_starts = BoundedMemo(_field_start, ESCAPED_LIMIT)  # "key="

    def line(self, msg: Message) -> str:
        """One message's line, newline included; "" when it is no metric (no usable
        Fields[name]: missing, empty or starting with "#"; or no value)."""
        by_name: dict[Any, list[Any]] = {}
        for f in reversed(msg.fields):  # the first field of a name wins
            by_name[f.name] = f.values
        values = by_name.get("name")
        if not values:
            return ""
        name = values[0]
        if not name:
            return ""
        if type(name) is not str:
            name = str(name)
        if name.startswith("#"):
            return ""
        # The fields: those Fields[value_fields] names, sorted by key; or Fields[value].
        names = by_name.get("value_fields")
        if names:
            starts = self.field_starts
            parts = []
            for key in sorted(by_name.keys() & names):
                values = by_name[key]
                if not values:
                    continue
                value = values[0]
                if value is None:
                    continue
                start = starts[key] if type(key) is str else _field_start(str(key))
                if type(value) is float or type(value) is int:
                    parts.append(f"{start}{value:.6f}")
                else:
                    parts.append(start + format_value(value))
            if not parts:
                return ""
            fields = ",".join(parts)
        else:
            values = by_name.get("value")
            if not values:
                return ""
            value = values[0]
            if value is None:
                return ""
            if type(value) is float or type(value) is int:
                fields = f"value={value:.6f}"
            else:
                fields = "value=" + format_value(value)
        # The series: the measurement, then the tags present with a value, by key.
        head = self.measurements[name]
        keys = [k for k in self.common_tags if k in by_name]
        names = by_name.get("tag_fields")
        if names:
            keys += [k for k in names if k in by_name]
        if keys:
            keys.sort()
            starts, texts = self.tag_starts, self.tag_values
            series = [head]
            previous = None
            for key in keys:
                if key == previous:  # named twice: sorted, so the twins are together
                    continue
                previous = key
                values = by_name[key]
                if not values or key == "":
                    continue
                value = values[0]
                if value is None or value == "":
                    continue
                series.append(starts[key] if type(key) is str else _tag_pair_start(str(key)))
                series.append(texts[value] if type(value) is str else _tag(str(value)))
            head = "".join(series)
        ts = msg.timestamp
        if type(ts) is not int:
            ts = int(ts)
        return f"{head} {fields} {ts // self.divisor}\n"

    def encode(self, messages: Iterable[Message], out: list[bytes]
               ) -> list[tuple[Message, Exception | None]]:
        """Append each message's line, as UTF-8, to `out`; return the messages that
        gave none: (message, None) for no metric, (message, error) for one that could
        not be encoded (a malformed metric skips one message, never the rest)."""
        refused: list[tuple[Message, Exception | None]] = []
        line = self.line
        append = out.append
        for m in messages:
            try:
                text = line(m)
            except Exception as e:
                refused.append((m, e))
                continue
            if text:
                append(text.encode())
            else:
                refused.append((m, None))
        return refused


def message_points(msg: Message, common_tags: Iterable[str] = DEFAULT_TAG_FIELDS,
                   precision: str = "ms") -> list[str]:
    """The line(s) of one metric message, without newline; [] when it is no metric
    (no Fields[name], or no value)."""
    line = PointEncoder(common_tags, precision).line(msg)
    return [line[:-1]] if line else []
