"""SyslogDecoder: system log files as rsyslog writes them (LMA's generic_syslog.lua;
docs/compatibility.md, "LMA decoders"), plus RFC 5424 lines.

Formats recognised, with or without a leading `<PRI>`:
- rsyslog's traditional file format (RFC 3164 time, no year):
  `<30>Nov  4 10:01:02 node-1 ntpd[2211]: message`
- rsyslog's high-precision format (RFC 3339 time):
  `<30>2024-11-04T10:01:02.123456+01:00 node-1 ntpd[2211]: message`
- RFC 5424: `<30>1 2024-11-04T10:01:02.123Z node-1 ntpd 2211 - [sd] message`

Output: Type log, Logger = the input Logger minus a trailing ".log" (system.kern.log →
system.kern), Hostname from the line, Pid from `tag[pid]` (else 0), Severity = PRI % 8
(7 without a PRI), Payload = the message without the trailing newline (lines after the
first, if the record has several, stay in it), Fields programname, syslogfacility (only
with a PRI) and severity_label.

Time: RFC 3164 has no year: the current year in `tz`, or the previous one when that
would put the line more than a day in the future (December lines read in January).
Times without an offset are read in `tz`; an offset in the line wins.

`parse_syslog()` is the reusable part (MySQL, Pacemaker and HAProxy decoders use it).

Keys: tz ("Local"). Sample:

    [system_decoder]
    type = "SyslogDecoder"
    tz = "Europe/Paris"
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from hekapy.collector.engine.message import INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, register
from hekapy.collector.engine.severity import LABEL_BY_SEVERITY
from hekapy.collector.engine.wallclock import WallClock
from hekapy.decoders.base import LogDecoder, fraction_ns, month_number, parse_offset

_PRI = r"(?:<(\d{1,3})>)?"
_TAG = r"([^\s:\[]{1,128})(?:\[([^\]\s]*)\])?:?"
# The host is optional: a program logging straight to a socket (HAProxy) sends none; a
# token that looks like `tag[pid]:` is the tag, not a host.
_HOST = r"(?:(?![^\s\[:]+(?:\[[^\]\s]*\])?: )(\S+) )?"
_RFC3164_RE = re.compile(
    _PRI + r"([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) " + _HOST + _TAG + r" *(.*)",
    re.DOTALL)
_ISO = r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?"
_RFC3339_RE = re.compile(_PRI + _ISO + r" " + _HOST + _TAG + r" *(.*)", re.DOTALL)
_RFC5424_RE = re.compile(
    r"<(\d{1,3})>1 (?:-|" + _ISO + r") (\S+) (\S+) (\S+) (\S+) "
    r"(-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(.*)", re.DOTALL)
_DAY_NS = 86_400 * 1_000_000_000


@dataclass(slots=True)
class SyslogParts:
    """One parsed syslog line. `pri` is None when the line had none."""

    timestamp: int
    hostname: str
    programname: str
    pid: int
    pri: int | None
    message: str


def _pid(text: str | None) -> int:
    return int(text) if text and text.isdigit() and len(text) < 10 else 0


def year_for(clock: WallClock, month: int, day: int, hour: int, minute: int, second: int,
              now_ns: int | None = None) -> int:
    """RFC 3164 gives no year: this year, unless that is more than a day ahead."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    year = time.gmtime(now_ns // 1_000_000_000).tm_year
    try:
        ts = clock.to_ns(year, month, day, hour, minute, second)
    except ValueError:  # Feb 29 of a common year: it was last leap year's
        return year - 1
    return year - 1 if ts > now_ns + _DAY_NS else year


_year_cache: dict[tuple[int, int, int, int], tuple[int, int]] = {}


def _cached_year(clock: WallClock, month: int, day: int, hour: int, now_ns: int | None) -> int:
    """year_for, remembered per (zone, month, day, hour) for a minute of wall time:
    lines of the same hour share it."""
    if now_ns is not None:
        return year_for(clock, month, day, hour, 59, 59, now_ns)
    key = (id(clock), month, day, hour)
    now = time.monotonic_ns()
    hit = _year_cache.get(key)
    if hit is not None and now - hit[1] < 60_000_000_000:
        return hit[0]
    year = year_for(clock, month, day, hour, 59, 59)
    if len(_year_cache) > 1024:
        _year_cache.clear()
    _year_cache[key] = (year, now)
    return year


def parse_syslog(line: str, clock: WallClock, now_ns: int | None = None) -> SyslogParts:
    """Parse one syslog line (see the module docstring); DecodeError if it is none."""
    text = line[:-1] if line.endswith("\n") else line
    try:
        m = _RFC3164_RE.match(text)
        if m is not None:
            pri, mon, day, hh, mm, ss, host, prog, pid, msg = m.groups()
            month = month_number(mon)
            if not month:
                raise DecodeError(f"bad month {mon!r}")
            dd, hour, minute, sec = int(day), int(hh), int(mm), int(ss)
            year = _cached_year(clock, month, dd, hour, now_ns)
            ts = clock.to_ns(year, month, dd, hour, minute, sec)
            return SyslogParts(ts, host or "", prog, _pid(pid), _pri(pri), msg)
        if text[:1] == "<":
            m = _RFC5424_RE.match(text)
            if m is not None:
                (pri, y, mo, d, h, mi, s, frac, off, host, app, procid, _msgid, _sd,
                 msg) = m.groups()
                ts = (clock.to_ns(int(y), int(mo), int(d), int(h), int(mi), int(s),
                                  fraction_ns(frac or ""),
                                  None if off is None else parse_offset(off))
                      if y else time.time_ns())
                if msg.startswith("\ufeff"):  # RFC 5424's BOM before a UTF-8 message
                    msg = msg[1:]
                return SyslogParts(ts, "" if host == "-" else host,
                                   "" if app == "-" else app, _pid(procid), _pri(pri), msg)
        m = _RFC3339_RE.match(text)
        if m is not None:
            pri, y, mo, d, h, mi, s, frac, off, host, prog, pid, msg = m.groups()
            ts = clock.to_ns(int(y), int(mo), int(d), int(h), int(mi), int(s),
                             fraction_ns(frac or ""), None if off is None else parse_offset(off))
            return SyslogParts(ts, host or "", prog, _pid(pid), _pri(pri), msg)
    except ValueError as e:  # an impossible date, a PRI over 191
        raise DecodeError(f"bad syslog header: {e}") from None
    raise DecodeError("not a syslog line (RFC 3164, RFC 3339 or RFC 5424 header expected)")


def _pri(text: str | None) -> int | None:
    if text is None:
        return None
    pri = int(text)
    if pri > 191:
        raise ValueError(f"PRI {pri} is over 191")
    return pri


def apply_syslog(msg: Message, parts: SyslogParts, logger: str | None = None) -> None:
    """Fill `msg` the way LMA's syslog decoders did."""
    msg.type = "log"
    msg.timestamp = parts.timestamp
    if parts.hostname:
        msg.hostname = parts.hostname
    msg.pid = parts.pid
    if logger is not None:
        msg.logger = logger
    msg.payload = parts.message
    severity = 7 if parts.pri is None else parts.pri & 7
    msg.severity = severity
    fields = msg.fields
    fields.append(Field("programname", [parts.programname], STRING))
    if parts.pri is not None:
        fields.append(Field("syslogfacility", [parts.pri >> 3], INTEGER))
    fields.append(Field("severity_label", [LABEL_BY_SEVERITY[severity]], STRING))


@register
class SyslogDecoder(LogDecoder):
    __doc__ = __doc__

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self._loggers: dict[str, str] = {}

    def logger_for(self, raw: str) -> str:
        out = self._loggers.get(raw)
        if out is None:
            out = raw[:-4] if raw.endswith(".log") else raw
            if len(self._loggers) < 4096:
                self._loggers[raw] = out
        return out

    def decode(self, msg: Message) -> Message:
        parts = parse_syslog(msg.payload, self.clock)
        apply_syslog(msg, parts, self.logger_for(msg.logger))
        return msg
