"""What every log-family decoder shares: severity labels, wall-clock time in a zone, the
`tz` option, and field building.

The LMA decoders (docs/compatibility.md, "LMA decoders") produce `Type = log` messages with a
`severity_label` string field and Syslog severities; timestamps without an offset are
wall-clock time in the node's zone (LMA's `tz` config, bug 1633074). Unlike LMA, a
timestamp that carries its own offset keeps it (LMA re-zoned it, which was a bug).

A decoder that holds messages back (a traceback waiting for its last line) implements
`Decoder.flush`; the input runner acknowledges the records it holds only once the held
message has been delivered (collector/engine/hold_window.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import Decoder, Option, OptionError
from hekapy.collector.engine.wallclock import WallClock, load_location

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}


def month_number(abbrev: str) -> int:
    """"Jan" → 1 (case-insensitive); 0 when not a month."""
    return _MONTHS.get(abbrev[:3].lower(), 0) if len(abbrev) == 3 else 0


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
        from hekapy.collector.engine.plugin import DecodeError
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
