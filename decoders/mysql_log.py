"""MysqlLogDecoder: MySQL / Galera logs through syslog (LMA's mysql_log.lua;
docs/compatibility.md, "LMA decoders").

The line is read as syslog (decoders/syslog.py); then a message starting with MySQL's
own `YYMMDD H:MM:SS [Level] ` (5.x) or `YYYY-MM-DDTHH:MM:SS.ffffffZ N [Level] ` (8.x)
loses that prefix, and severity_label becomes the bracketed level upper-cased (NOTE,
WARNING, ERROR, SYSTEM); the numeric Severity stays the syslog one, as in LMA. The
Logger stays the input's (`mysql`).

Keys: tz ("Local"). Sample:

    [mysql_decoder]
    type = "MysqlLogDecoder"
"""

from __future__ import annotations

import re

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import register
from hekapy.decoders.base import LogDecoder
from hekapy.decoders.syslog import apply_syslog, parse_syslog

_INNER_RE = re.compile(
    r"(?:\d{6} {1,2}\d{1,2}:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z? \d+) "
    r"\[(\w+)\] (?:\[[^\]]*\] )*")


@register
class MysqlLogDecoder(LogDecoder):
    __doc__ = __doc__

    def decode(self, msg: Message) -> Message:
        parts = parse_syslog(msg.payload, self.clock)
        apply_syslog(msg, parts)
        m = _INNER_RE.match(msg.payload)
        if m is not None:
            msg.payload = msg.payload[m.end():]
            label = m.group(1).upper()
            fields = msg.fields
            for i, f in enumerate(fields):
                if f.name == "severity_label":
                    fields[i] = Field("severity_label", [label], STRING)
        return msg
