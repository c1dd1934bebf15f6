"""What Heka's two Elasticsearch bulk encoders share (ESJsonEncoder in es_json.py,
ESLogstashV0Encoder in es_logstash_v0.py): JSON escaping as Go wrote it, the index,
type and id interpolations, and the bulk action line."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import orjson

from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, Message
from hekapy.collector.engine.plugin import Encoder, Option, OptionError
from hekapy.collector.engine.strftime import compile_strftime

HEADERS = ("Uuid", "Timestamp", "Type", "Logger", "Severity", "Payload", "EnvVersion",
           "Pid", "Hostname")
DEFAULT_FIELDS = [*HEADERS, "DynamicFields"]
_CANONICAL = {n.lower(): n for n in (*HEADERS, "DynamicFields")}
_CANONICAL["fields"] = "DynamicFields"  # Heka's legacy alias

# Heka's document string escaping: control characters, quote and backslash as \u00xx
# (lower-case hex); everything else, non-ASCII included, raw.
_DOC_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)}
_DOC_ESCAPES[ord('"')] = "\\u0022"
_DOC_ESCAPES[ord("\\")] = "\\u005c"
# Action-line strings: Go strconv.Quote for what index names contain, JSON-valid for
# the rest.
_NAME_ESCAPES = {c: f"\\u{c:04x}" for c in (*range(0x20), 0x7F)}
_NAME_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n",
                      ord("\t"): "\\t", ord("\r"): "\\r"})


def doc_string(text: str) -> str:
    """A JSON string literal the way Heka's encoder writes document strings."""
    # Most strings need no escape but quotes and a final newline (log payloads end so).
    # Quotes become \\u0022 first; for ASCII text, orjson (C, about 1 ns a character)
    # then tells whether anything else needs an escape: it doubles the backslash of each
    # \\u0022 and escapes any control character, so the length of its output says.
    # str.isprintable() costs four times as much.
    if "\\" not in text:
        if text[-1:] == "\n":
            inner, end = text[:-1], '\\u000a"'
        else:
            inner, end = text, '"'
        quoted = inner.replace('"', "\\u0022") if '"' in inner else inner
        if inner.isascii():
            quotes = (len(quoted) - len(inner)) // 5  # each added 5 characters
            plain = len(orjson.dumps(quoted)) == len(quoted) + 2 + quotes
        else:
            plain = inner.isprintable()  # every control character is unprintable
        if plain:
            return f'"{quoted}{end}'
    return '"' + text.translate(_DOC_ESCAPES) + '"'


def plain_string(text: str) -> bool:
    """Whether `text` needs no escape in a document, in Heka's way or orjson's (no
    control character, quote or backslash)."""
    if text.isascii():
        return len(orjson.dumps(text)) == len(text) + 2
    return '"' not in text and "\\" not in text and text.isprintable()


def json_value(text: str) -> Any:
    """`text` as the fast path gives it to orjson: as it is when orjson writes it as
    Heka would, else already escaped in Heka's way (orjson's short escapes, \\n and
    \\", are not Heka's \\u000a and \\u0022)."""
    return text if plain_string(text) else orjson.Fragment(doc_string(text))


def name_string(text: str) -> str:
    if '"' not in text and "\\" not in text and text.isprintable():
        return '"' + text + '"'
    return '"' + text.translate(_NAME_ESCAPES) + '"'


def go_float(x: float) -> str:
    """Go's strconv.FormatFloat(x, 'g', -1, 64): shortest round-trip digits, exponent
    form when the decimal exponent is < -4 or >= 6 (two-digit signed exponent)."""
    if math.isnan(x) or math.isinf(x):
        return "null"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    r = repr(x)
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    if "e" in r:
        mant, e = r.split("e")
        ip, _, fp = mant.partition(".")
        digits = ip + fp
        dp = len(ip) + int(e)
    else:
        ip, _, fp = r.partition(".")
        if ip == "0":
            stripped = fp.lstrip("0")
            dp = len(stripped) - len(fp)
            digits = stripped
        else:
            digits = ip + fp
            dp = len(ip)
    digits = digits.rstrip("0") or "0"
    exp = dp - 1
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def _bytes_text(b: Any) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def field_value(values: list, value_type: int, raw: bool = False) -> str:
    """One dynamic field's JSON value: a scalar, or an array for several."""
    if value_type == INTEGER:
        parts = [str(int(v)) for v in values]
    elif value_type == DOUBLE:
        parts = [go_float(float(v)) for v in values]
    elif value_type == BOOL:
        parts = ["true" if v else "false" for v in values]
    elif value_type == BYTES:
        if raw:
            parts = [_bytes_text(v) for v in values]
        elif len(values) == 1:
            parts = [doc_string(_bytes_text(values[0]))]
        else:  # Heka's quirk: several BYTES values are base64 strings
            parts = ['"' + base64.b64encode(bytes(v)).decode() + '"' for v in values]
    else:
        parts = [str(v) for v in values] if raw else [doc_string(str(v)) for v in values]
    if len(parts) == 1:
        return parts[0]
    return "[" + ",".join(parts) + "]"


class Interpolation:
    """`%{…}` in index, type_name and id, compiled once."""

    _HEADERS: ClassVar[dict[str, Callable[[Message], str]]] = {
        "Type": lambda m: m.type,
        "Hostname": lambda m: m.hostname,
        "Pid": lambda m: str(m.pid or 0),
        "UUID": lambda m: m.uuid_text,
        "Logger": lambda m: m.logger,
        "EnvVersion": lambda m: m.env_version,
        "Severity": lambda m: str(m.severity),
    }

    def __init__(self, template: str, from_timestamp: bool) -> None:
        self.template = template
        self.from_timestamp = from_timestamp
        self.parts: list[str | tuple[str, Any]] = []
        pos = 0
        while True:
            i = template.find("%{", pos)
            j = template.find("}", i + 2) if i >= 0 else -1
            if i < 0 or j < 0:
                self.parts.append(template[pos:])
                break
            self.parts.append(template[pos:i])
            key = template[i + 2:j]
            header = self._HEADERS.get(key)
            if header is not None:
                self.parts.append(("header", header))
            else:
                self.parts.append(("field", (key, compile_strftime(key))))
            pos = j + 1
        self.constant = all(isinstance(p, str) for p in self.parts)
        # "%{Type}-%{%Y.%m.%d}" with es_index_from_timestamp: the result depends on the
        # message's second and headers only, so it is rendered once per change of those.
        # A key with "%" in it is a strftime format, not a field name anyone uses: the
        # field lookup is skipped for those (it costs a scan of the fields per message).
        self.per_second = from_timestamp and all(
            isinstance(p, str) or p[0] == "header" or "%" in p[1][0] for p in self.parts)
        self.key_headers = [p[1] for p in self.parts
                             if not isinstance(p, str) and p[0] == "header"]
        # "%{UUID}" and friends alone: the header itself.
        only = [p for p in self.parts if p != ""]
        self._single_header = only[0][1] if (
            len(only) == 1 and not isinstance(only[0], str) and only[0][0] == "header") \
            else None
        self._cache_key: Any = None
        self._cache = ("", True)

    def render(self, msg: Message) -> tuple[str, bool]:
        """(text, ok); not ok when some `%{X}` resolved to nothing (Heka's error)."""
        if self.constant:
            return self.template, True
        if self._single_header is not None:
            return self._single_header(msg), True
        if self.per_second:
            sec = msg.timestamp // 1_000_000_000
            headers = self.key_headers
            if not headers:
                key: Any = sec
            elif len(headers) == 1:
                key = (sec, headers[0](msg))
            else:
                key = (sec, *[h(msg) for h in headers])
            if key != self._cache_key:
                self._cache = self._render(msg, strftime_only=True)
                self._cache_key = key
            return self._cache
        return self._render(msg)

    def _render(self, msg: Message, strftime_only: bool = False) -> tuple[str, bool]:
        out = []
        ok = True
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            kind, what = p
            if kind == "header":
                out.append(what(msg))
                continue
            key, fmt = what
            f = None if strftime_only else msg.find_field(key)
            if f is not None and f.values:
                v = f.values[0]
                out.append(_bytes_text(v) if f.value_type in (0, BYTES) else str(v))
                continue
            ns = msg.timestamp if self.from_timestamp else time.time_ns()
            text = fmt(ns)
            if text == key:  # not a strftime format either
                ok = False
            out.append(text)
        return "".join(out), ok


def _field_list(names: list[str]) -> list[str]:
    out = []
    for n in names:
        canon = _CANONICAL.get(n.lower())
        if canon is None:
            raise OptionError(f"unknown field {n!r}; valid: {', '.join(DEFAULT_FIELDS)}",
                              key="fields")
        out.append(canon)
    return out


COMMON_OPTIONS: dict[str, Option] = {
    "type_name": Option("str", "message", doc='"" omits _type (Elasticsearch 8+)'),
    "id": Option("str", "", doc='e.g. "%{UUID}" for idempotent writes'),
    "es_index_from_timestamp": Option("bool", False),
    "fields": Option("strlist", DEFAULT_FIELDS),
    "timestamp": Option("str", "%Y-%m-%dT%H:%M:%S", doc="strftime, UTC"),
    "dynamic_fields": Option("strlist", []),
    "raw_bytes_fields": Option("strlist", []),
    "replace_dots_with": Option("str", "."),
    "field_mappings": Option("table", {}),
}


class ESEncoder(Encoder):
    """What both Heka ES encoders share: the action line and the interpolations."""

    default_index: ClassVar[str] = ""

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self.index = Interpolation(cfg.index, cfg.es_index_from_timestamp)
        self.doc_type = Interpolation(cfg.type_name, cfg.es_index_from_timestamp)
        self.id = Interpolation(cfg.id, cfg.es_index_from_timestamp) if cfg.id else None
        self._id_is_uuid = cfg.id == "%{UUID}"
        self.fields = _field_list(cfg.fields)
        self.render_time = compile_strftime(cfg.timestamp)
        self.dynamic = set(cfg.dynamic_fields)
        self.raw = set(cfg.raw_bytes_fields)
        self.dots = cfg.replace_dots_with
        unknown = set(cfg.field_mappings) - set(HEADERS)
        if unknown:
            raise OptionError(f"unknown header(s) {sorted(unknown)}; valid: "
                              f"{', '.join(HEADERS)}", key="field_mappings")
        self._names: dict[str, str] = {}
        self._action_key: tuple = ()
        self._action_head = ""
        # Index and type that change only with the message's second and at most one
        # header (LMA's "%{Type}-%{%Y.%m.%d}", "log-%{%Y.%m.%d}"): the action's head is
        # looked up by those alone, without rendering.
        headers = {h for i in (self.index, self.doc_type) for h in i.key_headers}
        self._head_by_second = len(headers) <= 1 and all(
            i.constant or i.per_second for i in (self.index, self.doc_type))
        self._head_header = headers.pop() if headers else None
        self._head_second = -1
        self._head_value: object = None

    def action(self, msg: Message, end: str = "") -> str:
        """The bulk action line, followed by `end` (its newline, when wanted)."""
        head = self._head(msg)
        if self._id_is_uuid:  # hex and dashes: nothing to escape
            return f'{head},"_id":"{msg.uuid_text}"}}}}{end}'
        if self.id is not None:
            doc_id, ok = self.id.render(msg)
            if ok:
                return f'{head},"_id":{name_string(doc_id)}}}}}{end}'
        return f"{head}}}}}{end}"

    def _head(self, msg: Message) -> str:
        """The action line up to the _id: `{"index":{"_index":…,"_type":…`."""
        if self._head_by_second:
            sec = msg.timestamp // 1_000_000_000
            header = self._head_header
            value = None if header is None else header(msg)
            if sec == self._head_second and value == self._head_value:
                return self._action_head
            self._head_second, self._head_value = sec, value
        index, _ = self.index.render(msg)
        type_name = self.doc_type.render(msg)[0] if self.cfg.type_name else None
        key = (index, type_name)
        if key != self._action_key:  # the same index and type for many messages
            head = '{"index":{"_index":' + name_string(index.lower())
            if type_name is not None:
                head += ',"_type":' + name_string(type_name)
            self._action_key, self._action_head = key, head
        return self._action_head

    def dynamic_members(self, msg: Message) -> list[str]:
        """`"name":value` for each dynamic field to emit, in message order."""
        out = []
        names = self._names
        only = self.dynamic
        for f in msg.fields:
            if only and f.name not in only:
                continue
            enc = f.encoded
            if enc is not None and enc[0] is self:
                out.append(enc[1])
                continue
            key = names.get(f.name)
            if key is None:
                key = names[f.name] = doc_string(f.name.replace(".", self.dots)
                                                 if self.dots != "." else f.name)
            text = key + ":" + field_value(f.values, f.value_type, f.name in self.raw)
            f.encoded = (self, text)
            out.append(text)
        return out
