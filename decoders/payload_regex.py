"""PayloadRegexDecoder: parse a text Payload with an RE2 regex (Heka's
plugins/payload/payloadregex_decoder.go, payload_decoder_helper.go,
pipeline/message_template.go, message/date_helpers.go).

Timestamps are parsed with Go reference-time layouts ("02/Jan/2006:15:04:05 -0700").
Each layout is compiled once into an anchored Python regex plus a list of
(slot, converter) pairs, so a parse is one `fullmatch` and a few `int()` calls.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, date, datetime, tzinfo
from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Decoder, Option, OptionError, register
from hekapy.collector.engine.regex import compile_regex
from hekapy.collector.engine.stats import RateLimitedLog
from hekapy.collector.engine.wallclock import load_location

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT_RE = re.compile(r"[+-]?[0-9]+")


def _parse_int32(s: str) -> int | None:
    """Go's strconv.ParseInt(s, 10, 32): optional sign, ASCII digits, int32 range."""
    if _INT_RE.fullmatch(s) is None:
        return None
    v = int(s)
    return v if _INT32_MIN <= v <= _INT32_MAX else None


# ---------------------------------------------------------------------------------------
# Go time layouts
# ---------------------------------------------------------------------------------------

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
        namespace = dict(_PARSER_GLOBALS, _fullmatch=self.pattern.fullmatch)
        exec(compile(self.source, f"<Go layout {layout!r}>", "exec"), namespace)
        self.parse = namespace["parse"]


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

    def _to_ns(self, g: GoLayout, r: tuple) -> int:
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


# ---------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------

_VAR_RE = re.compile(r"%([0-9A-Za-z_]+)%")  # Go's %\w+% (ASCII \w)
_UUID_RE = re.compile(r"(?i)(?:urn:uuid:)?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-"
                      r"([0-9a-f]{4})-([0-9a-f]{12})")

(_SET_TYPE, _SET_LOGGER, _SET_PAYLOAD, _SET_HOSTNAME, _SET_PID, _SET_SEVERITY, _SET_UUID,
 _ADD_FIELD) = range(8)
_HEADER_KEYS = {"Type": _SET_TYPE, "Logger": _SET_LOGGER, "Payload": _SET_PAYLOAD,
                "Hostname": _SET_HOSTNAME, "Pid": _SET_PID, "Severity": _SET_SEVERITY,
                "Uuid": _SET_UUID}


def _compile_template(template: str, captures: dict[str, int]) -> str | int | tuple:
    """`%Name%` interpolation compiled against the regex's capture names: a constant
    string, a capture index, or a tuple of strings and capture indexes. An unknown name
    renders as "<Name>"; so does `%Severity%`, which Heka deletes from the captures once
    it has set the Severity header."""
    parts: list[str | int] = []
    pos = 0
    for m in _VAR_RE.finditer(template):
        if m.start() > pos:
            parts.append(template[pos:m.start()])
        name = m.group(1)
        idx = captures.get(name) if name != "Severity" else None
        parts.append(f"<{name}>" if idx is None else idx)
        pos = m.end()
    if pos < len(template):
        parts.append(template[pos:])
    merged: list[str | int] = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    if not merged:
        return ""
    if len(merged) == 1:
        return merged[0]
    return tuple(merged)


def _make_matcher(rx: Any) -> Any:
    """`match(text)` → list of the capture texts ("" for a group that did not take part)
    or None. Uses google-re2's C++ `Match` on UTF-8 bytes directly when available: the
    Python-level wrapper maps byte offsets to str offsets in Python and is ~4x slower."""
    try:
        import re2
        low_match = rx._regexp.Match
        anchor = re2._re2.RE2.Anchor.UNANCHORED
    except (AttributeError, ImportError):
        low_match = None

    if low_match is None:
        def match_slow(text: str) -> list[str] | None:
            try:
                m = rx.search(text)
            except UnicodeEncodeError:  # lone surrogates
                m = rx.search(text.encode("utf-8", "replace").decode("utf-8"))
            return None if m is None else list(m.groups(""))
        return match_slow

    def match(text: str) -> list[str] | None:
        try:
            b = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates become "?"
            text = text.encode("utf-8", "replace").decode("utf-8")
            b = text.encode("utf-8")
        spans = low_match(anchor, b, 0, len(b))
        if spans[0][0] < 0:
            return None
        if len(b) == len(text):  # ASCII: byte offsets are str offsets
            return [text[s:e] if s >= 0 else "" for s, e in spans[1:]]
        return [b[s:e].decode("utf-8", "replace") if s >= 0 else "" for s, e in spans[1:]]
    return match


def _check_severity_map(v: dict) -> dict:
    for k, code in v.items():
        if isinstance(code, bool) or not isinstance(code, int):
            raise OptionError(f"severity_map.{k}: expected an integer, got {code!r}",
                              key="severity_map")
        if not _INT32_MIN <= code <= _INT32_MAX:
            raise OptionError(f"severity_map.{k}: {code} is out of range",
                              key="severity_map")
    return v


def _check_message_fields(v: dict) -> dict:
    for k, tmpl in v.items():
        if not isinstance(tmpl, str):
            raise OptionError(f"message_fields.{k}: expected a string, got {tmpl!r}",
                              key="message_fields")
    return v


@register
class PayloadRegexDecoder(Decoder):
    r"""Matches an RE2 regex against the Payload and rebuilds the message from the
    captures (Heka's PayloadRegexDecoder). No match is a decode failure (with
    log_errors = false the record is dropped silently instead, as in Heka).

    Keys:
      match_regex (required)  RE2 syntax; needs at least one capture group. Named
                              groups (?P<Name>...) can be used in message_fields;
                              unnamed ones are %1%, %2%, ...
      [X.severity_map]        capture text → severity number, e.g. WARNING = 4
      [X.message_fields]      what to set: Type, Logger, Payload, Hostname, Pid,
                              Severity and Uuid set those headers; any other key
                              (EnvVersion too) adds a STRING field, "Name|repr" adds
                              representation "repr". Values interpolate %Name% with a
                              capture; an unknown name gives "<Name>". Only keys listed
                              here become fields: captures are not added by themselves.
      timestamp_layout ("")   Go reference-time layout for the capture "Timestamp",
                              e.g. "2006-01-02 15:04:05.000" or "02/Jan/2006:15:04:05
                              -0700", or Epoch, EpochMilli, EpochMicro, EpochNano. When
                              it does not fit, Go's predefined layouts (RFC3339,
                              RFC1123Z, Stamp, Kitchen, ...) are tried. No year ⇒
                              current year, no date ⇒ today. Unparseable ⇒ error
                              logged, Timestamp unchanged.
      timestamp_location ("UTC")  IANA zone of timestamps without an offset.
      log_errors (true)       false: records that do not match are dropped quietly.

    A capture named "Severity" sets the Severity header through severity_map or as a
    number. %Severity% itself is not available to message_fields (Heka quirk).

        [oslo_decoder]
        type = "PayloadRegexDecoder"
        match_regex = '^(?P<Timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (?P<Pid>\d+) (?P<Severity>[A-Z]+) (?P<Module>\S+) (?:\[(?P<Context>[^\]]*)\] )?(?P<Message>.*)'
        timestamp_layout = "2006-01-02 15:04:05.000"
        timestamp_location = "UTC"

        [oslo_decoder.severity_map]
        DEBUG = 7
        INFO = 6
        WARNING = 4
        ERROR = 3
        CRITICAL = 2

        [oslo_decoder.message_fields]
        Type = "oslo.log"
        Pid = "%Pid%"
        Payload = "%Message%"
        python_module = "%Module%"
        request_context = "%Context%"
    """  # noqa: E501

    options = {
        "match_regex": Option("regex", required=True, doc="RE2 regex with capture groups"),
        "severity_map": Option("table", {}, check=_check_severity_map,
                               doc="[X.severity_map] capture text → severity"),
        "message_fields": Option("table", {}, check=_check_message_fields,
                                 doc="[X.message_fields] header or field → template"),
        "timestamp_layout": Option("str", "", doc="Go time layout or Epoch*"),
        "timestamp_location": Option("str", "UTC", doc="IANA time zone"),
        "log_errors": Option("bool", True, doc="false: drop non-matching records quietly"),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        pattern = cfg.match_regex
        if not isinstance(pattern, str) or not pattern:
            raise OptionError("match_regex is required", key="match_regex")
        try:
            rx = compile_regex(pattern)
        except ValueError as e:
            raise OptionError(f"regex {pattern!r} does not compile: {e}",
                              key="match_regex") from None
        ngroups = rx.groups
        if ngroups == 0:
            raise OptionError("match_regex must contain capture groups", key="match_regex")
        names = {idx: n for n, idx in rx.groupindex.items()}
        captures: dict[str, int] = {}
        for i in range(1, ngroups + 1):  # later groups win a name, as in Go
            captures[names.get(i, str(i))] = i - 1
        self._match = _make_matcher(rx)
        self._ts_index = captures.get("Timestamp")
        self._sev_index = captures.get("Severity")

        self._severity_map = dict(_check_severity_map(dict(cfg.severity_map or {})))
        fields = _check_message_fields(dict(cfg.message_fields or {}))
        actions = []
        for key, tmpl in fields.items():
            kind = _HEADER_KEYS.get(key, _ADD_FIELD)
            fname, _, rep = key.partition("|")
            actions.append((kind, fname, rep, _compile_template(tmpl, captures)))
        self._actions = tuple(actions)

        try:
            location = load_location(cfg.timestamp_location)
        except ValueError as e:
            raise OptionError(str(e), key="timestamp_location") from None
        try:
            self.timestamp_parser = TimestampParser(cfg.timestamp_layout or "", location)
        except ValueError as e:
            raise OptionError(str(e), key="timestamp_layout") from None
        self._log_errors = bool(cfg.log_errors)
        self.log = RateLimitedLog(logging.getLogger(f"hekapy.{name}"))

    def decode(self, msg: Message) -> Message | None:
        caps = self._match(msg.payload)
        if caps is None:
            if self._log_errors:
                raise DecodeError("no match")
            return None

        i = self._ts_index
        if i is not None:
            ts = self.timestamp_parser(caps[i])
            if ts is None:
                self.log(logging.ERROR, "Don't recognize Timestamp: %r", caps[i])
            else:
                msg.timestamp = ts

        i = self._sev_index
        if i is not None:
            text = caps[i]
            sev = self._severity_map.get(text)
            if sev is None:
                sev = _parse_int32(text)
            if sev is None:
                self.log(logging.ERROR, "Don't recognize severity: %r", text)
            else:
                msg.severity = sev

        for kind, fname, rep, tmpl in self._actions:
            cls = tmpl.__class__
            if cls is int:
                val = caps[tmpl]
            elif cls is str:
                val = tmpl
            else:
                val = "".join([p if p.__class__ is str else caps[p] for p in tmpl])
            if kind == _ADD_FIELD:
                msg.fields.append(Field(fname, [val], STRING, rep))
            elif kind == _SET_TYPE:
                msg.type = val
            elif kind == _SET_LOGGER:
                msg.logger = val
            elif kind == _SET_PAYLOAD:
                msg.payload = val
            elif kind == _SET_HOSTNAME:
                msg.hostname = val
            elif kind == _SET_PID:
                pid = _parse_int32(val.split(".", 1)[0])
                if pid is None:
                    raise DecodeError(f"invalid Pid {val!r}")
                msg.pid = pid
            elif kind == _SET_SEVERITY:
                sev = _parse_int32(val)
                if sev is None:
                    raise DecodeError(f"invalid Severity {val!r}")
                msg.severity = sev
            else:
                msg.uuid = _parse_uuid(val)
        msg.raw = None  # the message no longer matches any raw record bytes
        return msg


def _parse_uuid(val: str) -> bytes:
    """Heka: 16 bytes are taken as the raw Uuid, else the 36-character text form (an
    optional "urn:uuid:" prefix allowed)."""
    raw = val.encode("utf-8", "surrogatepass")
    if len(raw) == 16:
        return raw
    m = _UUID_RE.fullmatch(val)
    if m is None:
        raise DecodeError(f"invalid Uuid {val!r}")
    return bytes.fromhex("".join(m.groups()))


__all__ = ["GO_BASIC_LAYOUTS", "GoLayout", "PayloadRegexDecoder", "TimestampParser",
           "load_location"]
