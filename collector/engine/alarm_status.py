"""LMA's alarm statuses and the alarm payloads of its status metrics, shared by the alarm
filters (filters/afd.py, filters/gse.py, filters/influxdb_annotation.py) and the Nagios
encoder (outputs/encoders/nagios.py). docs/alarms.md describes the messages.

A status is the `value` of a node_status, service_status, cluster_*_status or
cluster_status metric: 0 OKAY, 1 WARN, 2 UNKNOWN, 3 CRITICAL, 4 DOWN (Grafana colours
0 green, 1 and 2 orange, 3 and 4 red). The Payload is `{"alarms": [...]}`, each alarm
a table of severity, function, metric, fields, tags, operator, value, threshold,
window, periods and message, written the way Lua's cjson wrote it (numbers as "%.14g",
"/" escaped), so a payload reads the same to whatever parsed LMA's.
"""

from __future__ import annotations

import json
import math
from typing import Any

OKAY, WARN, UNKW, CRIT, DOWN = 0, 1, 2, 3, 4

STATUS_LABELS = {OKAY: "OKAY", WARN: "WARN", UNKW: "UNKNOWN", CRIT: "CRITICAL", DOWN: "DOWN"}

# How definitions name them (an alarm's severity and no_data_policy, a policy's status).
SEVERITY_NAMES = {"okay": OKAY, "warning": WARN, "unknown": UNKW, "critical": CRIT,
                  "down": DOWN}

# Which of two statuses wins: UNKNOWN loses even to OKAY.
_WEIGHTS = {UNKW: 0, OKAY: 1, WARN: 2, CRIT: 3, DOWN: 4}

EMPTY_PAYLOAD = '{"alarms":[]}'


def worst(a: int | None, b: int | None) -> int | None:
    """The status of more weight (None: no status yet)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _WEIGHTS[a] > _WEIGHTS[b] else b


def status_of(value: Any) -> int | None:
    """A status field's value (a number 0..4), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value in STATUS_LABELS else None


def lua_number(value: float | int) -> str:
    """A number as Lua's tostring and cjson print it."""
    if isinstance(value, float) and math.isnan(value):
        return "nan" if math.copysign(1.0, value) > 0 else "-nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.14g}"


def lua_tostring(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return lua_number(value)
    return "nil" if value is None else str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f",
                 "\n": "\\n", "\r": "\\r", "\t": "\\t", "\x7f": "\\u007f"}
_JSON_ESCAPES.update({chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _JSON_ESCAPES})
_JSON_TABLE = str.maketrans(_JSON_ESCAPES)


class NotEncodable(ValueError):
    """A value cjson refused (NaN or an infinity): LMA then sent no message."""


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise NotEncodable(f"cannot encode {value!r}")
        out.append(f"{value:.14g}")
    elif isinstance(value, str):
        out.append('"' + value.translate(_JSON_TABLE) + '"')
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append('"' + str(k).translate(_JSON_TABLE) + '":')
            _encode(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:  # cjson cannot tell an empty array from an empty object
            out.append("{}")
            return
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _encode(v, out)
        out.append("]")
    else:
        raise NotEncodable(f"cannot encode a {type(value).__name__}")


def encode_payload(alarms: list[dict[str, Any]]) -> str:
    """`{"alarms":[...]}`; NotEncodable when an alarm holds NaN or an infinity."""
    if not alarms:
        return EMPTY_PAYLOAD
    out: list[str] = []
    _encode({"alarms": alarms}, out)
    return "".join(out)


def decode_alarms(payload: str) -> list[dict[str, Any]] | None:
    """The alarms of a status metric's Payload; None when it has none to give."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    alarms = doc.get("alarms") if isinstance(doc, dict) else None
    if isinstance(alarms, dict) and not alarms:
        return []  # `{}`: cjson's empty table
    if not isinstance(alarms, list) or not all(isinstance(a, dict) for a in alarms):
        return None
    return alarms


def alarm_for_human(alarm: dict[str, Any]) -> str:
    """One line, as LMA's operators read it in Nagios and Grafana annotations:
    `CPU too high (WARN, rule='avg(cpu_idle[cpu="0"])<=5', current=3.10, host=node-1)`."""
    fields = alarm.get("fields")
    metric = lua_tostring(alarm.get("metric"))
    if isinstance(fields, dict) and fields:
        # Sorted: Lua walked them in hash order, which no reader could rely on.
        metric += "[" + ",".join(f'{k}="{lua_tostring(v)}"'
                                 for k, v in sorted(fields.items())) + "]"
    value = alarm.get("value")
    current = f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(
        value, bool) else lua_tostring(value)
    host = f", host={lua_tostring(alarm['hostname'])}" if alarm.get("hostname") else ""
    return (f"{lua_tostring(alarm.get('message'))} ({lua_tostring(alarm.get('severity'))}, "
            f"rule='{lua_tostring(alarm.get('function'))}({metric})"
            f"{lua_tostring(alarm.get('operator'))}{lua_tostring(alarm.get('threshold'))}', "
            f"current={current}{host})")


def alarms_for_human(alarms: list[dict[str, Any]]) -> list[str]:
    """The alarms' lines, the direct ones first, then "Other related alarms:" and the
    hints (alarms of clusters this one depends on)."""
    direct: list[str] = []
    hints: list[str] = []
    for a in alarms:
        tags = a.get("tags")
        is_hint = isinstance(tags, dict) and tags.get("dependency_level") == "hint"
        (hints if is_hint else direct).append(alarm_for_human(a))
    if hints:
        direct.append("Other related alarms:")
    return direct + hints
