"""Wall-clock time read in a zone, as decoders and the sandbox's `tz` option need it:
Go's time.LoadLocation, and date-times converted to Unix nanoseconds with the zone's
offset looked up once an hour."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


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
