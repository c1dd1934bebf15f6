"""HddErrorsCounterFilter: hard-disk errors from the kernel log, as LMA's
hdd_errors_counter.lua computed them (docs/compatibility.md, "LMA metrics"): every
`ticker_interval` (10 s) one `hdd_errors_rate` metric per device (errors per second
since the previous tick), tag `device` only (LMA's points carry no hostname tag). A line
counts for the first of `patterns` that matches it, its first capture being the device
(`sdd2` → `sdd`). As in LMA: a device once seen is reported every tick (zeros included);
nothing is sent for the first interval that had errors (its length is unknown); a line
older than the previous tick (or than the start) by more than `grace_interval` is
skipped.

Keys: patterns (LMA's form: Lua patterns between slashes, separated by spaces),
grace_interval (10 s), ticker_interval (10).

    [hdd_errors_counter_filter]
    type = "HddErrorsCounterFilter"
    message_matcher = "Type == 'log' && Logger == 'system.kern'"
    patterns = "/error%s.+([sv]d[a-z][a-z]?)%d?/ /([sv]d[a-z][a-z]?)%d?.+%serror/"
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.metrics import metric_message
from hekapy.collector.engine.plugin import Filter, Option, OptionError, register

LMA_PATTERNS = "/error%s.+([sv]d[a-z][a-z]?)%d?/ /([sv]d[a-z][a-z]?)%d?.+%serror/"

# Lua's character classes (lower case; upper case is the complement).
_LUA_CLASSES = {"a": "A-Za-z", "d": "0-9", "l": "a-z", "s": r" \t\n\r\f\v", "u": "A-Z",
                "w": "A-Za-z0-9", "x": "A-Fa-f0-9", "p": re.escape("!\"#$%&'()*+,-./:;<=>?@"
                                                                     "[\\]^_`{|}~"),
                "c": r"\x00-\x1f\x7f"}


def lua_pattern(pattern: str) -> re.Pattern[str]:
    """A Lua 5.1 pattern as a Python regex (classes, sets, `.`, `*` `+` `-` `?`,
    anchors, captures); %b and %f, which LMA's patterns do not use, are refused. As in
    Lua, `*`, `+`, `-` and `?` repeat only a single character class; elsewhere they are
    plain characters."""
    out: list[str] = []
    i, n = 0, len(pattern)
    single = False  # the last item was one character class: a quantifier may follow
    while i < n:
        c = pattern[i]
        if c in "*+-?" and single:
            out.append("*?" if c == "-" else c)  # '-' is Lua's lazy repetition
            single = False
            i += 1
            continue
        single = True
        if c == "%":
            if i + 1 >= n:
                raise ValueError("pattern ends with '%'")
            e = pattern[i + 1]
            i += 2
            if e.lower() in _LUA_CLASSES:
                cls = _LUA_CLASSES[e.lower()]
                out.append(f"[{cls}]" if e.islower() else f"[^{cls}]")
            elif e in "bf":
                raise ValueError(f"%{e} is not supported")
            elif e.isalnum():
                raise ValueError(f"unknown class %{e}")
            else:
                out.append(re.escape(e))
        elif c == "[":
            j = i + 1
            body = []
            if j < n and pattern[j] == "^":
                body.append("^")
                j += 1
            first = True
            while j < n and (pattern[j] != "]" or first):
                ch = pattern[j]
                first = False
                if ch == "%" and j + 1 < n:
                    e = pattern[j + 1]
                    if e.lower() in _LUA_CLASSES:
                        if e.isupper():
                            raise ValueError(f"%{e} inside a set is not supported")
                        body.append(_LUA_CLASSES[e])
                    else:
                        body.append(re.escape(e))
                    j += 2
                    continue
                body.append("\\" + ch if ch in "\\[" else ch)
                j += 1
            if j >= n:
                raise ValueError("unfinished set '['")
            out.append("[" + "".join(body) + "]")
            i = j + 1
        elif c == ".":
            out.append(".")
            i += 1
        elif c in "()":
            out.append(c)
            single = False
            i += 1
        elif c == "^" and i == 0:
            out.append(r"\A")
            single = False
            i += 1
        elif c == "$" and i == n - 1:
            out.append(r"\Z")
            single = False
            i += 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _check_patterns(value: Any) -> str:
    text = str(value)
    if not re.findall(r"/(\S+)/", text):
        raise OptionError("no pattern: expected Lua patterns between slashes, e.g. "
                          "\"/error%s.+([sv]d[a-z][a-z]?)%d?/\"")
    return text


@register
class HddErrorsCounterFilter(Filter):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "patterns": Option("str", LMA_PATTERNS, check=_check_patterns),
        "grace_interval": Option("duration", "10s"),
    }
    defaults: ClassVar[dict[str, Any]] = {
        "message_matcher": "Type == 'log' && Logger == 'system.kern'",
        "ticker_interval": 10,
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        if cfg.ticker_interval <= 0:
            raise OptionError("must be more than 0", key="ticker_interval")
        self.patterns = []
        _check_patterns(cfg.patterns)
        for p in re.findall(r"/(\S+)/", cfg.patterns):
            try:
                self.patterns.append(lua_pattern(p))
            except (ValueError, re.error) as e:
                raise OptionError(f"invalid pattern {p!r}: {e}", key="patterns") from None
        self.counts: dict[str, int] = {}
        self.last_tick: int | None = None  # LMA's enter_at
        self.start_ns = time.time_ns()
        self.skipped = 0

    def init(self, ctx: FilterContext) -> None:
        if ctx.message_time:  # replay: no wall-clock start to compare the lines with
            self.start_ns = 0

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        oldest = max(self.last_tick or 0, self.start_ns) - int(self.cfg.grace_interval * 1e9)
        counts = self.counts
        for m in messages:
            if m.timestamp < oldest:
                self.skipped += 1
                continue
            payload = m.payload
            for pattern in self.patterns:
                found = pattern.search(payload)
                if found is not None:
                    device = found.group(1) if pattern.groups else found.group(0)
                    counts[device] = counts.get(device, 0) + 1
                    break

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        if not self.counts:
            return  # as LMA: before any error, the interval keeps growing
        previous = self.last_tick
        for device, n in self.counts.items():
            if previous is not None:
                seconds = (now_ns - previous) / 1e9
                ctx.inject(metric_message("hdd_errors_rate", n / seconds if seconds > 0
                                          else 0.0, {"device": device}, now_ns, self.name,
                                          ctx.hostname))
            self.counts[device] = 0
        self.last_tick = now_ns
