"""NagiosEncoder: LMA's status_nagios.lua, natively. Renders an AFD or GSE status message
as a Nagios passive service check for Nagios' cmd.cgi (PROCESS_SERVICE_CHECK_RESULT),
the form body an HttpOutput posts (Content-Type application/x-www-form-urlencoded):

    cmd_typ=30&cmd_mod=2&host=node-1&service=controller.cpu&plugin_state=2
    &plugin_output=controller.cpu+CRITICAL%5Cn...&performance_data=

`service` is `service_template` with `%{name}` replaced by the message's header or
field of that name; `plugin_state` maps the status: OKAY 0, WARN 1, CRITICAL and DOWN
2, UNKNOWN 3; `plugin_output` is "<service> <STATUS>" then the alarms, one per line
(or "no details"), the lines joined by the two characters \\n as Nagios wants them and
cut at the last whole line within `truncate_size` bytes. Values are URL-encoded as
LMA's (letters, digits, "-", "_", ".", "~" kept, spaces as "+"). A message without a
status, alarms or a service name is an encoding error (counted, skipped).

Keys: service_template (required, e.g. "%{node_role}.%{source}"), nagios_host (the
Nagios host the checks belong to; "" leaves `host` out), truncate_size (3072).

    [nagios_afd_nodes_encoder]
    type = "NagiosEncoder"
    nagios_host = "node-1"
    service_template = "%{node_role}.%{source}"
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any, ClassVar

from hekapy.collector.engine.alarm_status import (
    CRIT,
    DOWN,
    OKAY,
    STATUS_LABELS,
    UNKW,
    WARN,
    alarms_for_human,
    decode_alarms,
    lua_tostring,
    status_of,
)
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Encoder, Option, OptionError, register

NAGIOS_STATES = {OKAY: 0, WARN: 1, UNKW: 3, CRIT: 2, DOWN: 2}
LINE_BREAK = "\\n"  # the two characters: Nagios' plugin_output line separator
_PLACEHOLDER = re.compile(r"%\{(.*?)\}")
_HEADERS = {"Type": "type", "Hostname": "hostname", "Pid": "pid", "Logger": "logger",
            "EnvVersion": "env_version", "Severity": "severity"}
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.~")


def url_encode(text: str) -> str:
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}"
                   for b in text.encode("utf-8")).replace(" ", "+")


def truncate(text: str, limit: int, delimiter: str) -> str:
    """`text` cut after the last whole `delimiter`-separated line within `limit` bytes,
    or at `limit` when even the first line is longer (LMA's lma_utils.truncate)."""
    data, sep = text.encode("utf-8"), delimiter.encode("utf-8")
    if len(data) <= limit:
        return text
    pos = 0  # bytes kept
    while True:
        found = data.find(sep, pos)
        if found == -1 or found > limit:
            keep = pos - len(sep) if pos else limit
            if keep < 1:
                keep = limit
            return data[:keep].decode("utf-8", "ignore")
        pos = found + len(sep)


def interpolate(template: str, msg: Message) -> str:
    """Heka's msg_interpolate: %{Header}, %{field}, else a strftime format of now."""
    def one(m: re.Match[str]) -> str:
        key = m.group(1)
        if key == "UUID":
            return msg.uuid_text
        header = _HEADERS.get(key)
        if header is not None:
            value = getattr(msg, header)
            return lua_tostring(0 if value is None else value)
        field = msg.get_field(key)
        if field is not None:
            return lua_tostring(field)
        if "%" in key:
            formatted = time.strftime(key)
            if formatted != key:
                return formatted
        return m.group(0)
    return _PLACEHOLDER.sub(one, template)


@register
class NagiosEncoder(Encoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "service_template": Option("str", "", doc="required, e.g. %{node_role}.%{source}"),
        "nagios_host": Option("str", ""),
        "truncate_size": Option("int", 3072),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if not cfg.service_template:
            raise OptionError("is required (e.g. \"%{node_role}.%{source}\")",
                              key="service_template")
        if cfg.truncate_size < 1:
            raise OptionError("must be at least 1", key="truncate_size")

    def encode(self, msg: Message) -> bytes:
        service = interpolate(self.cfg.service_template, msg)
        status = status_of(msg.get_field("value"))
        alarms = decode_alarms(msg.payload)
        if status is None or alarms is None:
            raise ValueError(f"not a status message (Type {msg.type!r}): "
                             f"{'no status' if status is None else 'no alarms'}")
        lines = [f"{service} {STATUS_LABELS[status]}"]
        lines += alarms_for_human(alarms) or ["no details"]
        output = truncate(LINE_BREAK.join(lines), self.cfg.truncate_size, LINE_BREAK)
        params: list[tuple[str, Any]] = [("cmd_typ", "30"), ("cmd_mod", "2")]
        if self.cfg.nagios_host:
            params.append(("host", self.cfg.nagios_host))
        params += [("service", service), ("plugin_state", str(NAGIOS_STATES[status])),
                   ("plugin_output", output), ("performance_data", "")]
        return "&".join(f"{k}={url_encode(v)}" for k, v in params).encode("ascii")
