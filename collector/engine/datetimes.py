"""Date-times as OpenStack writes them in notifications and APIs ('2015-11-30
08:39:10.123456', ISO 8601 with or without an offset): Unix nanoseconds, and LMA's
normalised text form."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
                       r"(?:(Z|z)|([+-])(\d\d):?(\d\d))?")

def _parse(text: Any) -> tuple[datetime, int, str, int, int] | None:
    """(naive date-time, nanoseconds, offset sign, offset hours, offset minutes)."""
    if not isinstance(text, str):
        return None
    m = _DATETIME.fullmatch(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, _z, sign, oh, om = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    except ValueError:
        return None
    ns = int(frac[:9].ljust(9, "0")) if frac else 0
    if sign is None:
        return dt, ns, "+", 0, 0
    if int(oh) > 23 or int(om) > 59:
        return None
    return dt, ns, sign, int(oh), int(om)


_EPOCH = datetime(1970, 1, 1)


def parse_timestamp_ns(text: Any) -> int | None:
    """Unix nanoseconds of an oslo/ISO date-time ('2015-11-30 08:39:10.123456',
    '2015-11-30T08:38:59+00:00', '...+0000', '...Z'); no offset means UTC. None when
    the text is not such a date-time."""
    parsed = _parse(text)
    if parsed is None:
        return None
    dt, ns, sign, oh, om = parsed
    offset = (oh * 3600 + om * 60) * (-1 if sign == "-" else 1)
    delta = dt - _EPOCH
    secs = delta.days * 86400 + delta.seconds - offset
    return secs * 1_000_000_000 + ns


def format_datetime(text: Any) -> str | None:
    """LMA's format_datetime: 'YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM' (the offset kept as
    written, +00:00 when there is none); None when the text is not a date-time."""
    parsed = _parse(text)
    if parsed is None:
        return None
    dt, ns, sign, oh, om = parsed
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ns // 1000:06d}{sign}{oh:02d}:{om:02d}"
