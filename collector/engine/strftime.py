"""Fast strftime of nanosecond timestamps, for encoders and index names.

`time.strftime` per message is slow; most formats only change once a second (or once a
day for index names), so the formatted text is cached per whole second.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def compile_strftime(fmt: str, utc: bool = True) -> Callable[[int], str]:
    """A function ns → text formatted with `fmt` (in UTC, or local time)."""
    convert = time.gmtime if utc else time.localtime
    # None, not -1: second -1 (1969-12-31T23:59:59) is a timestamp like any other, and
    # a sentinel it can equal rendered it as "" on the first call.
    cache_sec: int | None = None
    cache_text = ""

    def render(ns: int) -> str:
        nonlocal cache_sec, cache_text
        sec = ns // 1_000_000_000
        if sec != cache_sec:
            cache_text = time.strftime(fmt, convert(sec))
            cache_sec = sec
        return cache_text

    return render
