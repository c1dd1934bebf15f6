"""PayloadRegexDecoder: parse a text Payload with an RE2 regex, as Heka's did (Heka 0.10,
https://hekad.readthedocs.io/; its source, plugins/payload/payloadregex_decoder.go and
pipeline/message_template.go in https://github.com/mozilla-services/heka).

Timestamps are parsed with Go reference-time layouts (decoders/go_time.py); the
`[X.message_fields]` table is read as decoders/message_fields.py says.
"""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Decoder, Option, OptionError, register
from hekapy.collector.engine.regex import compile_regex
from hekapy.collector.engine.stats import RateLimitedLog
from hekapy.collector.engine.wallclock import load_location
from hekapy.decoders.go_time import TimestampParser
from hekapy.decoders.message_fields import (
    HEADER_NAMES,
    INT32_MAX,
    INT32_MIN,
    check_message_fields,
    parse_int32,
    parse_pid,
    parse_uuid,
)

_VAR_RE = re.compile(r"%([0-9A-Za-z_]+)%")  # Go's %\w+% (ASCII \w)

(_SET_TYPE, _SET_LOGGER, _SET_PAYLOAD, _SET_HOSTNAME, _SET_PID, _SET_SEVERITY, _SET_UUID,
 _ADD_FIELD) = range(8)
_HEADER_KEYS = dict(zip(HEADER_NAMES, (_SET_TYPE, _SET_LOGGER, _SET_PAYLOAD, _SET_HOSTNAME,
                                       _SET_PID, _SET_SEVERITY, _SET_UUID), strict=True))


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
        if not INT32_MIN <= code <= INT32_MAX:
            raise OptionError(f"severity_map.{k}: {code} is out of range",
                              key="severity_map")
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
        "message_fields": Option("table", {}, check=check_message_fields,
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
        fields = check_message_fields(dict(cfg.message_fields or {}))
        # The template is dispatched on its class in decode (str, int or tuple).
        actions: list[tuple[int, str, str, Any]] = []
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
                sev = parse_int32(text)
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
                pid = parse_pid(val)
                if pid is None:
                    raise DecodeError(f"invalid Pid {val!r}")
                msg.pid = pid
            elif kind == _SET_SEVERITY:
                sev = parse_int32(val)
                if sev is None:
                    raise DecodeError(f"invalid Severity {val!r}")
                msg.severity = sev
            else:
                msg.uuid = parse_uuid(val)
        msg.raw = None  # the message no longer matches any raw record bytes
        return msg


__all__ = ["PayloadRegexDecoder"]
