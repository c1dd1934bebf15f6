"""OvsLogDecoder: Open vSwitch logs (LMA's ovs_log.lua; docs/compatibility.md, "LMA decoders").

`2016-02-25T08:20:06.145Z|00023|bridge|INFO|message` → Logger `ovs`, Timestamp, Pid =
the sequence column (as LMA), Severity from the level, Payload = `module: message`,
Fields programname (the input Logger: ovs-vswitchd or ovsdb-server) and severity_label.

Deviation from LMA, on purpose: LMA matched levels with syslog keywords, so OVS's own
`DBG` and `EMER` lines were dropped; here DBG is DEBUG (7) and EMER is EMERGENCY (0).

Keys: tz ("Local"; OVS writes UTC with a Z, so it rarely matters). Sample:

    [ovs_decoder]
    type = "OvsLogDecoder"
"""

from __future__ import annotations

import re

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, register
from hekapy.decoders.base import LogDecoder

_LINE_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?"
    r"\|(\d+)\|([^|]*)\|([A-Z]+)\|(.*)", re.DOTALL)
_LEVELS = {ovs: (sev, Field("severity_label", [label], STRING)) for ovs, sev, label in (
    ("EMER", 0, "EMERGENCY"), ("EMERG", 0, "EMERGENCY"), ("ALERT", 1, "ALERT"),
    ("CRIT", 2, "CRITICAL"), ("ERR", 3, "ERROR"), ("WARN", 4, "WARNING"),
    ("NOTICE", 5, "NOTICE"), ("INFO", 6, "INFO"), ("DBG", 7, "DEBUG"),
    ("DEBUG", 7, "DEBUG"))}


@register
class OvsLogDecoder(LogDecoder):
    __doc__ = __doc__

    def decode(self, msg: Message) -> Message:
        m = _LINE_RE.match(msg.payload)
        if m is None:
            raise DecodeError("not 'time|seq|module|LEVEL|message' (Open vSwitch)")
        y, mo, d, h, mi, s, frac, off, seq, module, level, text = m.groups()
        lv = _LEVELS.get(level)
        if lv is None:
            raise DecodeError(f"unknown Open vSwitch level {level!r}")
        msg.timestamp = self.timestamp_ns(y, mo, d, h, mi, s, frac, off)
        program = msg.logger
        msg.type = "log"
        msg.logger = "ovs"
        msg.pid = int(seq)
        msg.severity = lv[0]
        msg.payload = f"{module}: {text[:-1] if text.endswith(chr(10)) else text}"
        msg.fields += (lv[1], Field("programname", [program], STRING))
        return msg
