"""Go reference-time layouts ("02/Jan/2006:15:04:05 -0700") and Heka's forgiving
timestamp parsing, for PayloadRegexDecoder's `timestamp_layout`.

Go's layouts are described at https://pkg.go.dev/time#pkg-constants and its parser is
https://go.dev/src/time/format.go; Heka's use of them (ForgivingTimeParse: the layout,
then Go's predefined layouts; the year and date filled in from "now") is
message/date_helpers.go in https://github.com/mozilla-services/heka.

Each layout is compiled once into an anchored Python regex plus a small generated
function, so a parse is one `fullmatch` and a few `int()` calls.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import Any

# What a layout parse gives: year, month, day, hour, minute, second, nanosecond, offset
# in seconds east of UTC (None: the text had none), zone abbreviation (None: none).
LayoutFields = tuple[int, int, int, int, int, int, int, int | None, str | None]

# Token kinds (Go's std* constants, minus day-of-year which Heka-era Go did not have).
(_LONG_MONTH, _MONTH, _NUM_MONTH, _ZERO_MONTH, _LONG_WEEKDAY, _WEEKDAY, _DAY, _UNDER_DAY,
 _ZERO_DAY, _HOUR, _HOUR12, _ZERO_HOUR12, _MINUTE, _ZERO_MINUTE, _SECOND, _ZERO_SECOND,
 _LONG_YEAR, _YEAR, _PM, _LOWER_PM, _TZ, _ISO_TZ, _ISO_SECONDS_TZ, _ISO_SHORT_TZ,
 _ISO_COLON_TZ, _ISO_COLON_SECONDS_TZ, _NUM_TZ, _NUM_SECONDS_TZ, _NUM_SHORT_TZ,
 _NUM_COLON_TZ, _NUM_COLON_SECONDS_TZ, _FRAC0, _FRAC9) = range(33)

_ZERO_X = (_ZERO_MONTH, _ZERO_DAY, _ZERO_HOUR12, _ZERO_MINUTE, _ZERO_SECOND, _YEAR)
_OFFSET_TOKENS = (
    ("-070000", _NUM_SECONDS_TZ), ("-07:00:00", _NUM_COLON_SECONDS_TZ), ("-0700", _NUM_TZ),
    ("-07:00", _NUM_COLON_TZ), ("-07", _NUM_SHORT_TZ),
)
_ISO_TOKENS = (
    ("Z070000", _ISO_SECONDS_TZ), ("Z07:00:00", _ISO_COLON_SECONDS_TZ), ("Z0700", _ISO_TZ),
    ("Z07:00", _ISO_COLON_TZ), ("Z07", _ISO_SHORT_TZ),
)


def _std_at(layout: str, i: int) -> tuple[int, int, int] | None:
    """The layout element starting at `i` as (kind, length, fraction digits), following
    the rules of Go's nextStdChunk; None when layout[i] is literal text."""
    c = layout[i]
    rest = layout[i:]
    nxt = layout[i + 1] if i + 1 < len(layout) else ""
    if c == "J":
        if rest.startswith("January"):
            return _LONG_MONTH, 7, 0
        if rest.startswith("Jan") and not layout[i + 3:i + 4].islower():
            return _MONTH, 3, 0
    elif c == "M":
        if rest.startswith("Monday"):
            return _LONG_WEEKDAY, 6, 0
        if rest.startswith("Mon") and not layout[i + 3:i + 4].islower():
            return _WEEKDAY, 3, 0
        if rest.startswith("MST"):
            return _TZ, 3, 0
    elif c == "0":
        if nxt and "1" <= nxt <= "6":
            return _ZERO_X[int(nxt) - 1], 2, 0
    elif c == "1":
        return (_HOUR, 2, 0) if nxt == "5" else (_NUM_MONTH, 1, 0)
    elif c == "2":
        return (_LONG_YEAR, 4, 0) if rest.startswith("2006") else (_DAY, 1, 0)
    elif c == "_":
        # "_2006" is a literal "_" followed by the year.
        if nxt == "2" and not rest.startswith("_2006"):
            return _UNDER_DAY, 2, 0
    elif c == "3":
        return _HOUR12, 1, 0
    elif c == "4":
        return _MINUTE, 1, 0
    elif c == "5":
        return _SECOND, 1, 0
    elif c == "P":
        if nxt == "M":
            return _PM, 2, 0
    elif c == "p":
        if nxt == "m":
            return _LOWER_PM, 2, 0
    elif c == "-":
        for text, kind in _OFFSET_TOKENS:
            if rest.startswith(text):
                return kind, len(text), 0
    elif c == "Z":
        for text, kind in _ISO_TOKENS:
            if rest.startswith(text):
                return kind, len(text), 0
    elif c in ".,":
        if nxt in ("0", "9") and nxt:
            j = i + 1
            while j < len(layout) and layout[j] == nxt:
                j += 1
            if j >= len(layout) or not layout[j].isdigit():
                return (_FRAC0 if nxt == "0" else _FRAC9), j - i, j - i - 1
    return None


def _tokenize(layout: str) -> list[str | tuple[int, int]]:
    """Literal strings and (kind, fraction digits) elements, in layout order."""
    out: list[str | tuple[int, int]] = []
    i = lit = 0
    while i < len(layout):
        std = _std_at(layout, i)
        if std is None:
            i += 1
            continue
        if i > lit:
            out.append(layout[lit:i])
        kind, length, ndigits = std
        out.append((kind, ndigits))
        i += length
        lit = i
    if lit < len(layout):
        out.append(layout[lit:])
    return out


_SHORT_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_LONG_MONTHS = {m: i + 1 for i, m in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august",
     "september", "october", "november", "december"))}
_SHORT_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_LONG_DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _year2(v: str) -> int:
    y = int(v)
    return y + 1900 if y >= 69 else y + 2000


def _frac(v: str) -> int:
    """Fraction digits → nanoseconds (truncated past 9 digits, like Go)."""
    return int(v[:9].ljust(9, "0"))


def _offset(v: str) -> int:
    """"Z" or ±hh[[:]mm[[:]ss]] → seconds east of UTC."""
    if v == "Z":
        return 0
    digits = v[1:].replace(":", "")
    hh, mm, ss = int(digits[0:2]), int(digits[2:4] or 0), int(digits[4:6] or 0)
    if hh > 24 or mm > 60 or ss > 60:
        raise ValueError("time zone offset out of range")
    off = (hh * 60 + mm) * 60 + ss
    return -off if v[0] == "-" else off


def _alt(words: Any) -> str:
    return "(?i:" + "|".join(words) + ")"


_NUM12 = r"([0-9]{1,2})"
_NUM2 = r"([0-9]{2})"
_TZ_NAME = (r"(UTC|ChST|MeST|GMT(?:[+-][0-9]{1,2})?|[+-][0-9]{1,2}|[A-Z]{4}T(?![A-Z])"
            r"|WIT[A-Z](?![A-Z])|[A-Z]{3}T(?![A-Z])|[A-Z]{3}(?![A-Z]))")
_OFF_RX = {
    _NUM_TZ: r"[+-][0-9]{4}", _NUM_SECONDS_TZ: r"[+-][0-9]{6}",
    _NUM_SHORT_TZ: r"[+-][0-9]{2}", _NUM_COLON_TZ: r"[+-][0-9]{2}:[0-9]{2}",
    _NUM_COLON_SECONDS_TZ: r"[+-][0-9]{2}:[0-9]{2}:[0-9]{2}",
}
_ISO_TO_NUM = {_ISO_TZ: _NUM_TZ, _ISO_SECONDS_TZ: _NUM_SECONDS_TZ,
               _ISO_SHORT_TZ: _NUM_SHORT_TZ, _ISO_COLON_TZ: _NUM_COLON_TZ,
               _ISO_COLON_SECONDS_TZ: _NUM_COLON_SECONDS_TZ}

# Result slots of a layout parse (names of the generated parser's locals).
_SLOTS = ("year", "month", "day", "hour", "minute", "sec", "nsec", "ampm", "off", "zone")
_Y, _MO, _D, _H, _MI, _S, _NS, _AMPM, _OFF, _ZN = _SLOTS
_FRAC_OPTIONAL = r"(?:[.,]([0-9]+))?"

# kind → (regex, slot, conversion expression of the captured text {g}); slot None = the
# element is checked but not captured (weekday names).
_ELEMENTS: dict[int, tuple[str, str | None, str]] = {
    _LONG_YEAR: (r"([0-9]{4})", _Y, "int({g})"),
    _YEAR: (_NUM2, _Y, "_year2({g})"),
    _MONTH: ("(" + _alt(_SHORT_MONTHS) + ")", _MO, "_SHORT_MONTHS[{g}.lower()]"),
    _LONG_MONTH: ("(" + _alt(_LONG_MONTHS) + ")", _MO, "_LONG_MONTHS[{g}.lower()]"),
    _NUM_MONTH: (_NUM12, _MO, "int({g})"),
    _ZERO_MONTH: (_NUM2, _MO, "int({g})"),
    _WEEKDAY: (_alt(_SHORT_DAYS), None, ""),
    _LONG_WEEKDAY: (_alt(_LONG_DAYS), None, ""),
    _DAY: (_NUM12, _D, "int({g})"),
    _UNDER_DAY: (" ?" + _NUM12, _D, "int({g})"),
    _ZERO_DAY: (_NUM2, _D, "int({g})"),
    _HOUR: (_NUM12, _H, "int({g})"),
    _HOUR12: (_NUM12, _H, "int({g})"),
    _ZERO_HOUR12: (_NUM2, _H, "int({g})"),
    _MINUTE: (_NUM12, _MI, "int({g})"),
    _ZERO_MINUTE: (_NUM2, _MI, "int({g})"),
    _SECOND: (_NUM12, _S, "int({g})"),
    _ZERO_SECOND: (_NUM2, _S, "int({g})"),
    _PM: ("(AM|PM)", _AMPM, "{g}"),
    _LOWER_PM: ("(am|pm)", _AMPM, "{g}"),
    _TZ: (_TZ_NAME, _ZN, "{g}"),
    _FRAC9: (_FRAC_OPTIONAL, _NS, "_frac({g})"),
}
for _k, _rx in _OFF_RX.items():
    _ELEMENTS[_k] = ("(" + _rx + ")", _OFF, "_offset({g})")
for _k, _num in _ISO_TO_NUM.items():
    _ELEMENTS[_k] = ("(Z|" + _OFF_RX[_num] + ")", _OFF, "_offset({g})")

_DATE_KINDS = frozenset((_LONG_MONTH, _MONTH, _NUM_MONTH, _ZERO_MONTH, _DAY, _UNDER_DAY,
                         _ZERO_DAY))
_PARSER_GLOBALS = {"_year2": _year2, "_frac": _frac, "_offset": _offset,
                   "_SHORT_MONTHS": _SHORT_MONTHS, "_LONG_MONTHS": _LONG_MONTHS,
                   "_DAYS_IN_MONTH": _DAYS_IN_MONTH}


class GoLayout:
    """One Go reference-time layout compiled for parsing.

    `parse(text)` returns (year, month, day, hour, minute, second, nanosecond,
    offset_seconds | None, zone_abbreviation | None) or None when the text does not fit
    (Go's time.Parse error cases: shape, ranges, day of month). Year 0 means the layout
    had no year. Differences from Go: numbers may backtrack (a little more lenient),
    day-of-year elements ("002", "__2") are literal text, as in Heka-era Go.

    The layout becomes one anchored regex and a small generated Python function (one
    `fullmatch`, then straight-line conversions), built once per layout.
    """

    __slots__ = ("has_date", "layout", "parse", "pattern", "source")

    def __init__(self, layout: str) -> None:
        self.layout = layout
        tokens = _tokenize(layout)
        parts: list[str] = []
        # (slot, conversion expression, group may be absent)
        steps: list[tuple[str, str, bool]] = []
        self.has_date = False
        max_hour = 23
        has_ampm = has_zone = False
        for n, tok in enumerate(tokens):
            if isinstance(tok, str):
                # A run of spaces in the layout matches a run of spaces in the text (Go's
                # skip); at the very end of the layout it may match nothing.
                chunks = [c for c in re.split(r"( +)", tok) if c]
                for j, chunk in enumerate(chunks):
                    if chunk[0] != " ":
                        parts.append(re.escape(chunk))
                    elif n == len(tokens) - 1 and j == len(chunks) - 1:
                        parts.append(" *")
                    else:
                        parts.append(" +")
                continue
            kind, ndigits = tok
            if kind == _FRAC0:
                parts.append(f"[.,]([0-9]{{{ndigits}}})")
                steps.append((_NS, f"int({{g}}) * {10 ** (9 - ndigits)}" if ndigits <= 9
                              else "int({g}[:9])", False))
                continue
            rx, slot, expr = _ELEMENTS[kind]
            parts.append(rx)
            if slot is not None:
                steps.append((slot, expr, kind == _FRAC9))
            if kind in _DATE_KINDS:
                self.has_date = True
            if kind in (_HOUR12, _ZERO_HOUR12):
                max_hour = 12
            has_ampm = has_ampm or slot == _AMPM
            has_zone = has_zone or slot == _ZN
            if kind in (_SECOND, _ZERO_SECOND):
                # Go accepts a fraction after the seconds even when the layout has none.
                nxt = tokens[n + 1] if n + 1 < len(tokens) else None
                if not (isinstance(nxt, tuple) and nxt[0] in (_FRAC0, _FRAC9)):
                    parts.append(_FRAC_OPTIONAL)
                    steps.append((_NS, "_frac({g})", True))
        self.pattern = re.compile("".join(parts))

        lines = ["def parse(text):",
                 "    m = _fullmatch(text)",
                 "    if m is None:",
                 "        return None",
                 "    year, month, day, hour, minute, sec, nsec = 0, 1, 1, 0, 0, 0, 0",
                 "    ampm = off = zone = None"]
        if steps:
            lines.append("    " + "".join(f"g{i}, " for i in range(len(steps)))
                         + "= m.groups()")
            lines.append("    try:")
            for i, (slot, expr, optional) in enumerate(steps):
                assign = f"{slot} = {expr.format(g=f'g{i}')}"
                if optional:
                    lines.append(f"        if g{i} is not None:")
                    lines.append(f"            {assign}")
                else:
                    lines.append(f"        {assign}")
            lines += ["    except (ValueError, KeyError):",
                      "        return None"]
        lines += ["    if not 1 <= month <= 12 or minute >= 60 or sec >= 60 "
                  f"or hour > {max_hour}:",
                  "        return None"]
        if has_ampm:
            lines += ["    if ampm is not None:",
                      "        if ampm[0] in 'Pp':",
                      "            if hour < 12:",
                      "                hour += 12",
                      "        elif hour == 12:",
                      "            hour = 0"]
        lines += ["    if day < 1 or day > (29 if month == 2 and year % 4 == 0 and "
                  "(year % 100 != 0 or year % 400 == 0) else _DAYS_IN_MONTH[month]):",
                  "        return None"]
        if has_zone:
            lines += ["    if off is None and zone == 'UTC':",
                      "        off = 0"]
        lines.append("    return year, month, day, hour, minute, sec, nsec, off, zone")
        self.source = "\n".join(lines)
        namespace: dict[str, Any] = dict(_PARSER_GLOBALS, _fullmatch=self.pattern.fullmatch)
        exec(compile(self.source, f"<Go layout {layout!r}>", "exec"), namespace)
        self.parse: Callable[[str], LayoutFields | None] = namespace["parse"]


# Go's predefined layouts: ForgivingTimeParse tries them all when timestamp_layout fails.
GO_BASIC_LAYOUTS = (
    "Mon Jan _2 15:04:05 2006",             # ANSIC
    "Mon Jan _2 15:04:05 MST 2006",         # UnixDate
    "Mon Jan 02 15:04:05 -0700 2006",       # RubyDate
    "02 Jan 06 15:04 MST",                  # RFC822
    "02 Jan 06 15:04 -0700",                # RFC822Z
    "Monday, 02-Jan-06 15:04:05 MST",       # RFC850
    "Mon, 02 Jan 2006 15:04:05 MST",        # RFC1123
    "Mon, 02 Jan 2006 15:04:05 -0700",      # RFC1123Z
    "2006-01-02T15:04:05Z07:00",            # RFC3339
    "2006-01-02T15:04:05.999999999Z07:00",  # RFC3339Nano
    "3:04PM",                               # Kitchen
    "Jan _2 15:04:05",                      # Stamp
    "Jan _2 15:04:05.000",                  # StampMilli
    "Jan _2 15:04:05.000000",               # StampMicro
    "Jan _2 15:04:05.000000000",            # StampNano
)
_BASIC_COMPILED: tuple[GoLayout, ...] = ()

_EPOCH_DIGITS = {"Epoch": 9, "EpochMilli": 6, "EpochMicro": 3, "EpochNano": 0}
_EPOCH_RE = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_INT64_MAX = 2**63 - 1
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class TimestampParser:
    """Heka's ForgivingTimeParse plus the year/date filling of DecodeTimestamp.

    `parser(text)` → Unix nanoseconds, or None when nothing parses. Tries `layout`, then
    Go's predefined layouts. Year 0 (no year in the layout) becomes the current year in
    the location; a layout with no date at all gets today's date there.
    """

    def __init__(self, layout: str, location: tzinfo, clock: Any = time.time) -> None:
        global _BASIC_COMPILED
        self.layout = layout
        self.tz = location
        self.clock = clock
        self._utc = location is UTC
        self._epoch_digits = _EPOCH_DIGITS.get(layout)
        if layout.startswith("Epoch") and self._epoch_digits is None:
            raise ValueError(f"unrecognized Epoch layout {layout!r} (use Epoch, EpochMilli, "
                             "EpochMicro or EpochNano)")
        if not _BASIC_COMPILED:
            _BASIC_COMPILED = tuple(GoLayout(x) for x in GO_BASIC_LAYOUTS)
        # An empty layout parses only empty text in Go; treated as "no layout" here.
        self._primary = GoLayout(layout) if layout and self._epoch_digits is None else None
        self._fallbacks = [g for g in _BASIC_COMPILED if g.layout != layout]
        self._today: tuple[int, int, int] = (0, 0, 0)
        self._today_until = 0.0
        self._abbrevs: dict[str, int] | None = None
        self._off_key = -1
        self._off_value = 0

    def __call__(self, text: str) -> int | None:
        if self._epoch_digits is not None:
            return self._epoch(text, self._epoch_digits)
        if not text:
            return None
        g = self._primary
        if g is not None:
            r = g.parse(text)
            if r is not None:
                return self._to_ns(g, r)
        fallbacks = self._fallbacks
        for i, g in enumerate(fallbacks):
            r = g.parse(text)
            if r is not None:
                if i:  # try the layout that worked last time first next time
                    fallbacks.insert(0, fallbacks.pop(i))
                return self._to_ns(g, r)
        return None

    @staticmethod
    def _epoch(text: str, digits: int) -> int | None:
        m = _EPOCH_RE.fullmatch(text)
        if m is None:
            return None
        ip, fp = m.group(1), m.group(2) or ""
        if not ip and not fp:
            return None
        ns = int(ip or "0") * 10**digits
        if digits and fp:
            ns += int(fp[:digits].ljust(digits, "0"))
        return ns if ns <= _INT64_MAX else None

    def today(self) -> tuple[int, int, int]:
        """(year, month, day) now in the location; cached until the next whole second
        (local midnight always falls on a whole second)."""
        now = self.clock()
        if not self._today_until - 1.0 <= now < self._today_until:
            d = datetime.fromtimestamp(now, self.tz)
            self._today = (d.year, d.month, d.day)
            self._today_until = float(int(now) + 1)
        return self._today

    def _to_ns(self, g: GoLayout, r: LayoutFields) -> int:
        year, month, day, hour, minute, sec, nsec, off, zone = r
        if year == 0:
            ty, tm, td = self.today()
            if g.has_date:
                year = ty
            else:
                year, month, day = ty, tm, td
        # Day overflow (Feb 29 moved to a common year) rolls over like Go's AddDate.
        ordinal = date(year, month, 1).toordinal() + day - 1
        if off is None:
            if zone is not None:
                off = self._zone_offset(ordinal, hour, minute, sec, zone)
            elif self._utc:
                off = 0
            else:
                # The location's offset for this wall-clock minute; log lines come in
                # order, so one remembered minute saves most zone look-ups.
                key = ordinal * 1440 + hour * 60 + minute
                if key == self._off_key:
                    off = self._off_value
                else:
                    off = self._zone_offset(ordinal, hour, minute, sec, None)
                    self._off_key, self._off_value = key, off
        secs = (ordinal - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60 + sec - off
        return secs * 1_000_000_000 + nsec

    def _zone_offset(self, ordinal: int, hour: int, minute: int, sec: int,
                     zone: str | None) -> int:
        dt = datetime.fromordinal(ordinal).replace(hour=hour, minute=minute, second=sec)
        tz = self.tz
        if zone is None:
            return int(tz.utcoffset(dt).total_seconds())  # type: ignore[union-attr]
        # A zone abbreviation: the location's offset if it uses that name (Go's
        # lookupName), "GMT+N" as N hours, anything else counts as UTC (like Go).
        for fold in (0, 1):
            d = dt.replace(fold=fold)
            if tz.tzname(d) == zone:
                return int(tz.utcoffset(d).total_seconds())  # type: ignore[union-attr]
        if self._abbrevs is None:
            self._abbrevs = self._collect_abbrevs()
        if zone in self._abbrevs:
            return self._abbrevs[zone]
        if len(zone) > 3 and zone.startswith("GMT"):
            return int(zone[3:]) * 3600
        return 0

    def _collect_abbrevs(self) -> dict[str, int]:
        out: dict[str, int] = {}
        this_year = datetime.now(UTC).year
        for y in range(this_year - 10, this_year + 2):
            for mo in (1, 4, 7, 10):
                d = datetime(y, mo, 15, 12)
                name = self.tz.tzname(d)
                delta = self.tz.utcoffset(d)
                if name and delta is not None:
                    out[name] = int(delta.total_seconds())
        return out


__all__ = ["GO_BASIC_LAYOUTS", "GoLayout", "LayoutFields", "TimestampParser"]
