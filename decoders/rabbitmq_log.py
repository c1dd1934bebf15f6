"""RabbitmqLogDecoder: RabbitMQ's log (LMA's rabbitmq.lua; docs/compatibility.md, "LMA decoders").

Records are cut by a RegexSplitter (`delimiter = '\\n\\n(=[^=]+====)'`,
`delimiter_eol = false`, as LMA configured it) and look like
`=ERROR REPORT==== 7-Dec-2026::18:04:51 ===\\n<body>`: Timestamp from the header,
Payload = the body minus one trailing newline, Severity INFO 6, WARNING 4, ERROR 3,
CRASH 2 (CRITICAL), anything else (SUPERVISOR, PROGRESS, …) 5 (NOTICE).

RabbitMQ 3.7+ writes lager/logger lines instead:
`2024-01-02 03:04:05.123 [info] <0.123.0> message` (3.7/3.8) or
`2024-01-02 03:04:05.123456+01:00 [info] <0.123.0> message` (3.9+); the level gives the
severity, continuation lines stay in the Payload. Fields programname = rabbitmq and
severity_label; the Logger stays the input's (`rabbitmq.<node>`).

Keys: tz ("Local"). Sample:

    [rabbitmq_decoder]
    type = "RabbitmqLogDecoder"
"""

from __future__ import annotations

import re

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, register
from hekapy.decoders.base import LogDecoder, fraction_ns, month_number, parse_offset

_REPORT_RE = re.compile(
    r"\n*=(\w+) REPORT==== (\d{1,2})-([A-Za-z]{3})-(\d{4})::(\d\d):(\d\d):(\d\d) ===\n?(.*)",
    re.DOTALL)
_LAGER_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)? "
    r"\[(\w+)\] (.*)", re.DOTALL)
_REPORT_SEVERITY = {"INFO": (6, "INFO"), "WARNING": (4, "WARNING"), "ERROR": (3, "ERROR"),
                    "CRASH": (2, "CRITICAL")}
_LAGER_SEVERITY = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3,
                   "critical": 2, "alert": 1, "emergency": 0}
_PROGRAM = Field("programname", ["rabbitmq"], STRING)


@register
class RabbitmqLogDecoder(LogDecoder):
    __doc__ = __doc__

    def decode(self, msg: Message) -> Message:
        record = msg.payload
        try:
            m = _REPORT_RE.match(record)
            if m is not None:
                kind, day, mon, year, hh, mm, ss, body = m.groups()
                month = month_number(mon)
                if not month:
                    raise DecodeError(f"bad month {mon!r}")
                ts = self.clock.to_ns(int(year), month, int(day), int(hh), int(mm), int(ss))
                severity, label = _REPORT_SEVERITY.get(kind, (5, "NOTICE"))
                payload = body[:-1] if body.endswith("\n") else body
            else:
                m = _LAGER_RE.match(record)
                if m is None:
                    raise DecodeError("neither '=LEVEL REPORT==== date ===' nor "
                                      "'date time [level] message'")
                y, mo, d, h, mi, s, frac, off, level, body = m.groups()
                ts = self.clock.to_ns(int(y), int(mo), int(d), int(h), int(mi), int(s),
                                      fraction_ns(frac or ""),
                                      None if off is None else parse_offset(off))
                severity = _LAGER_SEVERITY.get(level.lower(), 5)
                label = ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE",
                         "INFO", "DEBUG")[severity]
                payload = body[:-1] if body.endswith("\n") else body
        except ValueError as e:
            raise DecodeError(f"bad timestamp: {e}") from None
        msg.type = "log"
        msg.timestamp = ts
        msg.severity = severity
        msg.payload = payload
        msg.fields += (Field("severity_label", [label], STRING), _PROGRAM)
        return msg
