"""LibvirtLogDecoder: /var/log/libvirt/libvirtd.log (LMA's libvirt_log.lua;
docs/compatibility.md, "LMA decoders").

`2015-03-26 17:24:52.126+0000: 5263: error : virNetSocketReadWire:1454 : message` →
Timestamp (the offset in the line; `tz` for a line without one), Pid, Severity from the
level (debug 7, info 6, warning 4, error 3), Payload = the rest (newline kept, as LMA),
Fields severity_label (upper-case) and programname = libvirt. The Logger stays the
input's (`libvirt`).

Keys: tz ("Local"). Sample:

    [libvirt_decoder]
    type = "LibvirtLogDecoder"
"""

from __future__ import annotations

import re

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, register
from hekapy.decoders.base import LogDecoder

_LINE_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?([+-]\d{4}|Z)?: (\d+): "
    r"(debug|info|warning|error) : (.*)", re.DOTALL)
_LEVELS = {name: (sev, Field("severity_label", [name.upper()], STRING))
           for name, sev in (("debug", 7), ("info", 6), ("warning", 4), ("error", 3))}
_PROGRAM = Field("programname", ["libvirt"], STRING)


@register
class LibvirtLogDecoder(LogDecoder):
    __doc__ = __doc__

    def decode(self, msg: Message) -> Message:
        m = _LINE_RE.match(msg.payload)
        if m is None:
            raise DecodeError("not 'date time: pid: level : message' (libvirt)")
        y, mo, d, h, mi, s, frac, off, pid, level, text = m.groups()
        msg.timestamp = self.timestamp_ns(y, mo, d, h, mi, s, frac, off)
        severity, label = _LEVELS[level]
        msg.type = "log"
        msg.pid = int(pid)
        msg.severity = severity
        msg.payload = text
        msg.fields += (label, _PROGRAM)
        return msg
