"""PacemakerLogDecoder: /var/log/pacemaker.log (LMA's pacemaker_log.lua;
docs/compatibility.md, "LMA decoders").

Syslog lines (NOTICE and above arrive through rsyslog) are decoded as syslog; the
others are pacemaker's own format `Mon dd HH:MM:SS [pid] host prog: level: message`
→ Timestamp, Pid, Severity from the upper-cased level (unknown labels → 7, as LMA),
Payload = message (newline kept, as LMA kept it), Fields programname, severity_label.
The Logger stays the input's (`pacemaker`).

Keys: tz ("Local"). Sample:

    [pacemaker_decoder]
    type = "PacemakerLogDecoder"
"""

from __future__ import annotations

import re

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, register
from hekapy.collector.engine.severity import SEVERITY_BY_LABEL
from hekapy.decoders.base import LogDecoder, month_number
from hekapy.decoders.syslog import apply_syslog, parse_syslog, year_for

_NATIVE_RE = re.compile(
    r"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) \[(\d+)\] (\S+) +([^\s:]+): +"
    r"([A-Za-z]+): ?(.*)", re.DOTALL)
_SEVERITIES = {**SEVERITY_BY_LABEL, "WARN": 4, "ERR": 3, "CRIT": 2, "EMERG": 0}
del _SEVERITIES["AUDIT"], _SEVERITIES["TRACE"]  # LMA's map had neither: they give 7


@register
class PacemakerLogDecoder(LogDecoder):
    __doc__ = __doc__

    def decode(self, msg: Message) -> Message:
        line = msg.payload
        if line[:1] == "<":
            apply_syslog(msg, parse_syslog(line, self.clock))
            return msg
        m = _NATIVE_RE.match(line)
        if m is None:
            try:
                apply_syslog(msg, parse_syslog(line, self.clock))
                return msg
            except DecodeError:
                raise DecodeError("neither a syslog line nor pacemaker's "
                                  "'Mon dd HH:MM:SS [pid] host prog: level: msg'") from None
        mon, day, hh, mm, ss, pid, _host, prog, level, text = m.groups()
        month = month_number(mon)
        if not month:
            raise DecodeError(f"bad month {mon!r}")
        d, h, mi, s = int(day), int(hh), int(mm), int(ss)
        try:
            year = year_for(self.clock, month, d, h, mi, s)
            msg.timestamp = self.clock.to_ns(year, month, d, h, mi, s)
        except ValueError as e:
            raise DecodeError(f"bad timestamp: {e}") from None
        label = level.upper()
        msg.type = "log"
        msg.pid = int(pid)
        msg.severity = _SEVERITIES.get(label, 7)
        msg.payload = text
        msg.fields += (Field("severity_label", [label], STRING),
                       Field("programname", [prog], STRING))
        return msg
