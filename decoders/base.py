"""What every log-family decoder shares: severity labels, wall-clock time in a zone, the
`tz` option, and field building.

The LMA decoders (spec/lma.md §2.0) produce `Type = log` messages with a
`severity_label` string field and Syslog severities; timestamps without an offset are
wall-clock time in the node's zone (LMA's `tz` config, bug 1633074). Unlike LMA, a
timestamp that carries its own offset keeps it (LMA re-zoned it, which was a bug).

A decoder that holds messages back (a traceback waiting for its last line) implements
`Decoder.flush`; the input runner acknowledges the records it holds only once the held
message has been delivered (collector/pipeline.py).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from hekapy.collector.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.plugin import Decoder, Option, OptionError

# Syslog severities by label (spec/lma.md §2.0); AUDIT and TRACE are oslo.log's extras.
SEVERITY_BY_LABEL: dict[str, int] = {
    "EMERGENCY": 0, "ALERT": 1, "CRITICAL": 2, "ERROR": 3, "WARNING": 4, "NOTICE": 5,
    "INFO": 6, "DEBUG": 7, "AUDIT": 7, "TRACE": 7,
}
LABEL_BY_SEVERITY: tuple[str, ...] = (
    "EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}


def month_number(abbrev: str) -> int:
    """"Jan" → 1 (case-insensitive); 0 when not a month."""
    return _MONTHS.get(abbrev[:3].lower(), 0) if len(abbrev) == 3 else 0


def load_location(name: str) -> tzinfo:
    """Go's time.LoadLocation: "" and "UTC" are UTC, "Local" the host's zone (TZ, else
    /etc/localtime), anything else an IANA name. Raises ValueError for an unknown zone."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        tz = os.environ.get("TZ", "").lstrip(":")
        try:
            if tz:
                return ZoneInfo(tz)
            with open("/etc/localtime", "rb") as f:
                return ZoneInfo.from_file(f, key="Local")
        except Exception:
            return UTC
    try:
        return ZoneInfo(name)
    except Exception as e:  # ZoneInfoNotFoundError, ValueError, OSError, ...
        raise ValueError(f"unknown time zone {name!r} ({type(e).__name__})") from None


class WallClock:
    """Converts wall-clock date and time read in one zone to Unix nanoseconds (UTC).

    The zone's offset is looked up once per wall-clock hour and remembered: log lines
    arrive in order, so nearly every line hits the remembered hour. (Zones whose offset
    changes at a half hour are looked up per minute.)
    """

    __slots__ = ("_day_key", "_day_secs", "_hour_key", "_hour_off", "_step", "tz", "utc")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.utc = tz is UTC
        self._day_key = (0, 0, 0)
        self._day_secs = 0
        self._hour_key = -1
        self._hour_off = 0
        self._step = 60 if _has_odd_transitions(tz) else 3600

    def day_seconds(self, year: int, month: int, day: int) -> int:
        """Seconds from the epoch to 00:00 of that date (UTC calendar arithmetic)."""
        key = (year, month, day)
        if key != self._day_key:
            self._day_secs = (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * 86400
            self._day_key = key
        return self._day_secs

    def to_ns(self, year: int, month: int, day: int, hour: int, minute: int, second: int,
              nanos: int = 0, offset: int | None = None) -> int:
        """Nanoseconds since the epoch; `offset` (seconds east of UTC) when the text had
        one, else the zone's offset at that wall-clock time. Raises ValueError for a
        date that does not exist."""
        local = self.day_seconds(year, month, day) + hour * 3600 + minute * 60 + second
        if offset is None:
            if self.utc:
                offset = 0
            else:
                key = local // self._step
                if key != self._hour_key:
                    dt = datetime(year, month, day, hour, minute if self._step == 60 else 0)
                    self._hour_off = int(self.tz.utcoffset(dt).total_seconds())  # type: ignore[union-attr]
                    self._hour_key = key
                offset = self._hour_off
        return (local - offset) * 1_000_000_000 + nanos


def _has_odd_transitions(tz: tzinfo) -> bool:
    """True for zones with offsets that are not whole hours (India, Nepal, Lord Howe):
    their transitions may fall off the hour."""
    if tz is UTC:
        return False
    for month in (1, 7):
        off = tz.utcoffset(datetime(2024, month, 15))
        if off is not None and off.total_seconds() % 3600:
            return True
    return False


def parse_offset(text: str) -> int:
    """"+0200", "+02:00", "-05", "Z" → seconds east of UTC."""
    if text in ("Z", "z"):
        return 0
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    return sign * (hours * 3600 + minutes * 60)


def fraction_ns(digits: str) -> int:
    """".306" digits → nanoseconds ("306" → 306_000_000); more than 9 digits truncated."""
    if not digits:
        return 0
    return int(digits[:9].ljust(9, "0"))


def str_field(name: str, value: str) -> Field:
    return Field(name, [value], STRING)


def int_field(name: str, value: int) -> Field:
    return Field(name, [value], INTEGER)


def float_field(name: str, value: float) -> Field:
    return Field(name, [value], DOUBLE)


def number_field(name: str, text: str) -> Field:
    """A number the way LMA's Lua decoders keep it (Lua numbers are doubles): integral
    text becomes an INTEGER field, anything else a DOUBLE."""
    if text.isdigit():
        return Field(name, [int(text)], INTEGER)
    return Field(name, [float(text)], DOUBLE)


CACHE_MAX = 4096  # distinct values remembered per kind of cached field


class FieldCache(dict):
    """Field objects for values that repeat (modules, user ids, HTTP methods): built once
    and shared by the messages. Fields are never mutated in place (Message.set_field
    replaces them), so sharing is safe; the cache stops growing at CACHE_MAX."""

    __slots__ = ("name", "value_type")

    def __init__(self, name: str, value_type: int = STRING) -> None:
        super().__init__()
        self.name = name
        self.value_type = value_type

    def __missing__(self, value: Any) -> Field:
        f = Field(self.name, [value], self.value_type)
        if len(self) < CACHE_MAX:
            self[value] = f
        return f


class LogDecoder(Decoder):
    """Base of the log-family decoders: the `tz` option and the wall clock.

    Keys:
      tz: zone of timestamps that carry no offset; "Local" (the default) is the node's
          zone (TZ, else /etc/localtime), "UTC" or an IANA name.
    """

    options: ClassVar[dict[str, Option]] = {
        "tz": Option("str", "Local", doc="zone of timestamps without an offset "
                     "(IANA name, UTC, or Local = the node's)"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        try:
            self.clock = WallClock(load_location(cfg.tz))
        except ValueError as e:
            raise OptionError(str(e), key="tz") from None

    def timestamp_ns(self, y: str, mo: str, d: str, h: str, mi: str, s: str,
                     frac: str | None = None, off: str | None = None) -> int:
        """Nanoseconds for the date and time groups of a line (fraction and offset
        optional: without an offset the time is read in `tz`); DecodeError if the date
        does not exist."""
        from hekapy.collector.plugin import DecodeError
        try:
            return self.clock.to_ns(int(y), int(mo), int(d), int(h), int(mi), int(s),
                                    fraction_ns(frac or ""),
                                    None if off is None else parse_offset(off))
        except ValueError as e:
            raise DecodeError(f"bad timestamp: {e}") from None

    @staticmethod
    def set_log_headers(msg: Message, severity: int, label: str) -> None:
        """Type log, the severity and its label: what every LMA log decoder sets."""
        msg.type = "log"
        msg.severity = severity
        msg.fields.append(Field("severity_label", [label], STRING))
