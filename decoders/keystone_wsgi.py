"""KeystoneWsgiDecoder: Keystone's Apache access logs (LMA's keystone_wsgi_log.lua;
docs/compatibility.md, "LMA decoders").

The Apache `LogFormat` is the `apache_log_pattern` key (LMA's default below); each
directive becomes a regex group once, at start. Output: Type log, Logger
openstack.keystone, Severity 6, Timestamp from `%t` (its offset), Payload = the line,
Fields programname (the input Logger: keystone-wsgi-main / keystone-wsgi-admin),
severity_label INFO, http_status, http_response_time (`%D` µs or `%T` s, in seconds),
http_method, http_url, http_version (from `%r`). LMA kept no size, client or ids.

Directives understood: %h %a %A %l %u %t %r %m %U %q %H %>s %s %b %B %D %T %p %v %V
%{Name}i %{Name}o %{Name}e %{Name}n %% and literal text.

Keys: apache_log_pattern, tz ("Local"; used only if `%t` had no offset). Sample:

    [keystone_wsgi_decoder]
    type = "KeystoneWsgiDecoder"
    apache_log_pattern = '%h %l %u %t "%r" %>s %b %D "%{Referer}i" "%{User-Agent}i"'
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Option, OptionError, register
from hekapy.decoders.base import LogDecoder, month_number, parse_offset

DEFAULT_PATTERN = ('%{X-Forwarded-For}i %l %u %t "%r" %>s %b %D "%{Referer}i" '
                   '"%{User-Agent}i"')
_DIRECTIVE_RE = re.compile(r"%(?:\{([^}]*)\})?(>?)([a-zA-Z%])")
_SIMPLE = {
    "h": r"\S+", "a": r"\S+", "A": r"\S+", "l": r"\S+", "u": r"\S*", "m": r"[A-Z]+",
    "U": r"\S*", "q": r"\S*", "H": r"\S+", "s": r"\d{3}|-", "b": r"\d+|-", "B": r"\d+",
    "D": r"\d+", "T": r"\d+(?:\.\d+)?", "p": r"\d+", "v": r"\S+", "V": r"\S+",
    "i": r"[^\"]*?", "o": r"[^\"]*?", "e": r"[^\"]*?", "n": r"[^\"]*?",
}
_TIME_RE = re.compile(r"(\d\d)/([A-Za-z]{3})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})")
_REQUEST_RE = re.compile(r"([A-Z]+) (\S+) HTTP/(\d(?:\.\d)?)")
_INFO = Field("severity_label", ["INFO"], STRING)


def compile_log_format(pattern: str) -> re.Pattern:
    """Apache LogFormat → anchored regex with groups t, r, s, D, T (those used)."""
    out = []
    pos = 0
    seen: set[str] = set()
    for m in _DIRECTIVE_RE.finditer(pattern):
        out.append(re.escape(pattern[pos:m.start()]))
        pos = m.end()
        _name, _gt, d = m.groups()
        if d == "%":
            out.append("%")
            continue
        if d not in _SIMPLE and d not in "tr":
            raise OptionError(f"unsupported directive %{d} in {pattern!r}",
                              key="apache_log_pattern")
        group = {"t": "t", "r": "r", "s": "s", "D": "D", "T": "T"}.get(d)
        if group and group not in seen:
            seen.add(group)
            body = {"t": r"\[[^\]]+\]", "r": r"[^\"]*"}.get(d, _SIMPLE.get(d))
            out.append(f"(?P<{group}>{body})")
        else:
            body = r"\[[^\]]+\]" if d == "t" else _SIMPLE.get(d, r"[^\"]*")
            out.append(f"(?:{body})")
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + r"\n?\Z", re.DOTALL)


@register
class KeystoneWsgiDecoder(LogDecoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "apache_log_pattern": Option("str", DEFAULT_PATTERN, doc="Apache LogFormat"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.line_re = compile_log_format(cfg.apache_log_pattern)
        self._programs: dict[str, Field] = {}

    def decode(self, msg: Message) -> Message:
        m = self.line_re.match(msg.payload)
        if m is None:
            raise DecodeError("does not match apache_log_pattern")
        g = m.groupdict()
        fields = msg.fields
        program = self._programs.get(msg.logger)
        if program is None:
            program = self._programs.setdefault(
                msg.logger, Field("programname", [msg.logger], STRING))
        fields += (program, _INFO)
        stamp = g.get("t")
        if stamp:
            t = _TIME_RE.search(stamp)
            if t is None:
                raise DecodeError(f"bad %t time {stamp!r}")
            day, mon, year, hh, mm, ss, off = t.groups()
            try:
                msg.timestamp = self.clock.to_ns(int(year), month_number(mon), int(day),
                                                 int(hh), int(mm), int(ss), 0,
                                                 parse_offset(off))
            except ValueError as e:
                raise DecodeError(f"bad %t time {stamp!r}: {e}") from None
        status = g.get("s")
        if status and status != "-":
            fields.append(Field("http_status", [int(status)], INTEGER))
        if g.get("D"):
            fields.append(Field("http_response_time", [int(g["D"]) / 1e6], DOUBLE))
        elif g.get("T"):
            fields.append(Field("http_response_time", [float(g["T"])], DOUBLE))
        request = g.get("r")
        if request:
            r = _REQUEST_RE.fullmatch(request)
            if r is not None:
                fields += (Field("http_method", [r.group(1)], STRING),
                           Field("http_url", [r.group(2)], STRING),
                           Field("http_version", [r.group(3)], STRING))
        msg.type = "log"
        msg.logger = "openstack.keystone"
        msg.severity = 6
        return msg
