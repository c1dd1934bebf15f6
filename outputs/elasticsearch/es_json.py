"""ESJsonEncoder: Heka's Elasticsearch bulk encoder, byte for byte (docs/compatibility.md,
"Elasticsearch encoders"), so
the documents LMA's dashboards read do not change.

Each message becomes two lines: the bulk action (`{"index":{"_index":…,"_type":…}}`)
and the document. Where Heka wrote invalid JSON, valid JSON is written instead:
- the missing commas when DynamicFields came first in `fields`;
- NaN and ±Inf doubles become `null`;
- control characters in index, type or id names are \\u escapes, not Go's \\x;
- a non-string dynamic field used in `%{name}` is formatted instead of crashing.

hekapy additions: `type_name = ""` omits `_type` (Elasticsearch 8+, OpenSearch 2+
refuse it); `id = "%{UUID}"` gives each document the message's Uuid as `_id`, which
hekapy derives from the record's origin, so a replayed line overwrites itself.

ESJsonEncoder keys: index ("heka-%{%Y.%m.%d}"), type_name ("message"), id (""),
es_index_from_timestamp (false), fields (Uuid, Timestamp, Type, Logger, Severity,
Payload, EnvVersion, Pid, Hostname, DynamicFields), timestamp ("%Y-%m-%dT%H:%M:%S"),
dynamic_fields ([] = all), raw_bytes_fields ([]), replace_dots_with ("."),
field_mappings (table: header name → document key).

    [elasticsearch_encoder]
    type = "ESJsonEncoder"
    index = "%{Type}-%{%Y.%m.%d}"
    es_index_from_timestamp = true
    id = "%{UUID}"
    timestamp = "%Y-%m-%dT%H:%M:%S%z"
    fields = ["DynamicFields", "Hostname", "Logger", "Payload", "Pid", "Severity",
              "Timestamp", "Type"]
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import orjson

from hekapy.collector.compiled import typed_module
from hekapy.collector.engine.memo import BoundedMemo
from hekapy.collector.engine.message import BOOL, DOUBLE, INTEGER, Message
from hekapy.collector.engine.plugin import Option, register
from hekapy.outputs.elasticsearch.es_encoder import (
    COMMON_OPTIONS,
    HEADERS,
    ESEncoder,
    doc_string,
    go_float,
    json_value,
    plain_string,
)


@register
class ESJsonEncoder(ESEncoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "index": Option("str", "heka-%{%Y.%m.%d}"),
        **COMMON_OPTIONS,
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        mapping = cfg.field_mappings
        keys = {h: doc_string(mapping.get(h, h)) + ":" for h in HEADERS}
        render_time = self.render_time
        # One small function per document member, chosen once here.
        makers: dict[str, Callable[..., str]] = {
            "Timestamp": lambda m, k=keys["Timestamp"]: k + doc_string(render_time(
                m.timestamp)),
            "Severity": lambda m, k=keys["Severity"]: k + str(m.severity),
            "Pid": lambda m, k=keys["Pid"]: k + str(m.pid or 0),
            "Uuid": lambda m, k=keys["Uuid"]: k + '"' + m.uuid_text + '"',
            "Type": lambda m, k=keys["Type"]: k + doc_string(m.type or ""),
            "Logger": lambda m, k=keys["Logger"]: k + doc_string(m.logger or ""),
            "Payload": lambda m, k=keys["Payload"]: k + doc_string(m.payload or ""),
            "EnvVersion": lambda m, k=keys["EnvVersion"]: k + doc_string(m.env_version or ""),
            "Hostname": lambda m, k=keys["Hostname"]: k + doc_string(m.hostname or ""),
        }
        self.members = [None if item == "DynamicFields" else makers[item]
                        for item in self.fields]

        # The fast path: the document as a dict through orjson, its escapes rewritten to
        # Heka's (see fast_document). Keys by header, in `fields` order.
        self.header_keys = [(item, mapping.get(item, item)) for item in self.fields]
        self._fill = self._compile_fill()
        self._writer = self._typed_writer(keys)

    def _typed_writer(self, keys: dict[str, str]) -> Any:
        """The typed writer (es_doc_writer.pyx) for the usual configuration, where it is
        built and not ruled out by HEKAPY_PURE; None: encode() alone, the reference."""
        if self.dynamic or self.raw or self.dots != "." or _doc_writer is None:
            return None
        members = [(_doc_writer.DYNAMIC_FIELDS, None) if item == "DynamicFields" else
                   (getattr(_doc_writer, _MEMBER_CODES[item]), keys[item])
                   for item in self.fields]
        return _doc_writer.DocumentWriter(members, self.render_time, self._id_is_uuid)

    def encode(self, msg: Message) -> bytes:
        writer = self._writer
        if writer is not None:
            # With the Uuid as _id the writer ends the action line itself.
            data = writer.encode(self._head(msg) if self._id_is_uuid else
                                 self.action(msg, "\n"), msg)
            if data is not None:
                return data
        return self.reference_encode(msg)

    def reference_encode(self, msg: Message) -> bytes:
        """The definition of encode()'s bytes; the typed writer is held to it."""
        doc = self.fast_document(msg)
        if doc is None:
            doc = self.slow_document(msg)
        return b"".join((self.action(msg, "\n").encode(), doc, b"\n"))

    def slow_document(self, msg: Message) -> bytes:
        """Member by member, for what the fast path cannot take (duplicate names, huge
        integers, lone surrogates)."""
        out: list[str] = []
        for make in self.members:
            if make is None:
                out += self.dynamic_members(msg)
            else:
                out.append(make(msg))
        return ("{" + ",".join(out) + "}").encode("utf-8", "replace")

    def fast_document(self, msg: Message) -> bytes | None:
        """The same bytes as slow_document, about twice as fast; None when a value
        needs the slow path. The dict is filled by a function generated for this
        encoder's `fields` (no per-member branching at run time), with every string
        either plain (orjson writes it as Heka would) or already escaped in Heka's way,
        so orjson's output needs no rewriting."""
        doc = self._fill(msg)
        if doc is None:
            return None
        try:
            return orjson.dumps(doc)
        except (TypeError, orjson.JSONEncodeError):
            return None

    def _compile_fill(self) -> Callable[[Message], dict | None]:
        if not all(plain_string(key) for _, key in self.header_keys):
            # orjson would write a mapped name's quote or control character its own way
            # (\"), not Heka's (\u0022): such a configuration takes the slow path.
            return lambda msg: None
        def checked(expr: str, key: str) -> list[str]:
            # A header text, checked for escapes once per distinct value (`known`).
            return [f"    doc[{key}] = known[{expr}]"]

        lines = ["def fill(msg):", "    doc = {}"]
        for item, key in self.header_keys:
            k = repr(key)
            if item == "DynamicFields":
                # Only the steps this configuration needs (no dynamic_fields list, no
                # dots to replace, no raw fields: the usual case) are generated.
                if not (self.dynamic or self.raw or self.dots != "."):
                    # The usual configuration: a field's document value does not depend
                    # on the encoder, so it is kept on the Field (decoders share Field
                    # objects for repeating values: computed once for all messages).
                    lines += [
                        "    for f in msg.fields:",
                        "        value = f.doc_value",
                        "        if value is None:",
                        "            value = f.doc_value = field_doc_value(f)",
                        "        if value is SLOW:",
                        "            return None",
                        "        name = f.name",
                        "        if name in doc:",
                        "            return None",
                        "        doc[name] = value",
                    ]
                    continue
                lines += ["    for f in msg.fields:", "        name = f.name"]
                if self.dynamic:
                    lines += ["        if name not in only:", "            continue"]
                if self.dots != ".":
                    lines += ["        name = name.replace('.', dots)"]
                lines += [
                    "        if name in doc or not plain_string(name):",
                    "            return None",
                    "        value = fast_value(f, f.name in raw)",
                    "        if value is SLOW:",
                    "            return None",
                    "        doc[name] = value",
                ]
            elif item == "Timestamp":
                lines += checked("render_time(msg.timestamp)", k)
            elif item == "Severity":
                lines.append(f"    doc[{k}] = msg.severity")
            elif item == "Pid":
                lines.append(f"    doc[{k}] = msg.pid or 0")
            elif item == "Uuid":  # hex and dashes
                lines.append(f"    doc[{k}] = msg.uuid_text")
            elif item == "Payload":  # the long string: escaped in Heka's way here
                lines.append(f"    doc[{k}] = Fragment(doc_string(msg.payload or ''))")
            else:  # a few distinct values (host, logger, type)
                lines += checked(f"msg.{_ATTRS[item]} or ''", k)
        lines.append("    return doc")
        namespace = {"only": self.dynamic, "raw": self.raw, "dots": self.dots,
                     "fast_value": _fast_value, "field_doc_value": _field_doc_value,
                     "SLOW": _SLOW, "plain_string": plain_string,
                     "render_time": self.render_time,
                     "known": BoundedMemo(json_value, CHECKED_LIMIT),
                     "Fragment": orjson.Fragment, "doc_string": doc_string}
        # Safe: fixed pieces and repr() of the configured key names.
        exec("\n".join(lines), namespace)
        return namespace["fill"]


_doc_writer = typed_module("hekapy.outputs.elasticsearch.es_doc_writer")
_MEMBER_CODES = {"Timestamp": "TIMESTAMP", "Severity": "SEVERITY", "Pid": "PID",
                 "Uuid": "UUID", "Type": "TYPE", "Logger": "LOGGER", "Payload": "PAYLOAD",
                 "EnvVersion": "ENV_VERSION", "Hostname": "HOSTNAME"}
_ATTRS = {"Type": "type", "Logger": "logger", "Payload": "payload",
          "EnvVersion": "env_version", "Hostname": "hostname"}
_SLOW = object()
_INT64 = (-(2**63), 2**63 - 1)


# Texts with few distinct values (hosts, loggers, seconds, field names): each is
# checked once.
CHECKED_LIMIT = 4096

_plain_names = BoundedMemo(plain_string, CHECKED_LIMIT)


def _field_doc_value(f: Any) -> Any:
    """A field's document value in the usual configuration, or _SLOW (a name that
    needs escaping: the slow path writes it)."""
    if not _plain_names[f.name]:
        return _SLOW
    values = f.values
    if f.value_type == 0 and len(values) == 1 and type(values[0]) is str:
        return json_value(values[0])
    return _fast_value(f, False)


def _fast_value(f: Any, raw: bool) -> Any:
    """A dynamic field's value for orjson, or _SLOW."""
    vt = f.value_type
    values = f.values
    out: list[Any]
    if vt == 0:  # STRING
        if raw:
            out = [orjson.Fragment(str(v)) for v in values]
        else:
            for v in values:
                if type(v) is not str:
                    return _SLOW
            out = [json_value(v) for v in values]
    elif vt == INTEGER:
        out = values
        for v in values:
            if not (_INT64[0] <= v <= _INT64[1]) or isinstance(v, bool):
                return _SLOW
    elif vt == DOUBLE:
        out = [orjson.Fragment(go_float(float(v))) for v in values]
    elif vt == BOOL:
        out = [bool(v) for v in values]
    else:
        return _SLOW  # BYTES: Heka's single-value/base64 rules stay in one place
    if len(out) == 1:
        return out[0]
    return list(out)
