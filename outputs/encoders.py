"""Simple encoders: Heka's PayloadEncoder and RstEncoder, and hekapy's JsonEncoder."""

from __future__ import annotations

import time
from types import SimpleNamespace

import orjson

from hekapy.collector.message import BYTES, VALUE_TYPE_NAMES, Message
from hekapy.collector.plugin import Encoder, Option, register
from hekapy.collector.strftime import compile_strftime


@register
class PayloadEncoder(Encoder):
    """Writes the Payload, optionally prefixed with a timestamp.

    Keys: append_newlines (true), prefix_ts (false), ts_from_message (true),
    ts_format ("[%Y/%b/%d:%H:%M:%S %z]"; a space is added unless it ends in one).

        [payload]
        type = "PayloadEncoder"
        append_newlines = false
    """

    options = {
        "append_newlines": Option("bool", True),
        "prefix_ts": Option("bool", False),
        "ts_from_message": Option("bool", True),
        "ts_format": Option("str", "[%Y/%b/%d:%H:%M:%S %z]"),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        fmt = cfg.ts_format if cfg.ts_format.endswith(" ") else cfg.ts_format + " "
        self._ts = compile_strftime(fmt, utc=False) if cfg.prefix_ts else None
        self._newline = cfg.append_newlines

    def encode(self, msg: Message) -> bytes:
        data = msg.payload.encode("utf-8", "replace")
        if self._newline and not data.endswith(b"\n"):
            data += b"\n"
        if self._ts is not None:
            ns = msg.timestamp if self.cfg.ts_from_message else time.time_ns()
            data = self._ts(ns).encode() + data
        return data


@register
class JsonEncoder(Encoder):
    """One JSON object per message and line: every header and the fields as a list of
    {name, value_type, representation, value}. hekapy's debug and archive format.

        [json]
        type = "JsonEncoder"
    """

    options = {"append_newlines": Option("bool", True)}

    def encode(self, msg: Message) -> bytes:
        data = orjson.dumps(msg.as_dict())
        return data + b"\n" if self.cfg.append_newlines else data


@register
class RstEncoder(Encoder):
    """Heka's human-readable debug dump of every header and field.

        [rst]
        type = "RstEncoder"
    """

    def encode(self, msg: Message) -> bytes:
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(msg.timestamp // 1_000_000_000))
        lines = [
            f":Timestamp: {ts}.{msg.timestamp % 1_000_000_000:09d} +0000 UTC",
            f":Type: {msg.type}",
            f":Hostname: {msg.hostname}",
            f":Pid: {msg.pid or 0}",
            f":Uuid: {msg.uuid_text}",
            f":Logger: {msg.logger}",
            f":Payload: {msg.payload}",
            f":EnvVersion: {msg.env_version}",
            f":Severity: {msg.severity}",
            ":Fields:",
        ]
        for f in msg.fields:
            vals = [v.decode("utf-8", "replace") if f.value_type == BYTES else v
                    for v in f.values]
            shown = vals[0] if len(vals) == 1 else vals
            lines.append(f"    | name:\"{f.name}\" type:{VALUE_TYPE_NAMES[f.value_type].lower()} "
                         f"value:{shown!r} representation:\"{f.representation}\"")
        return ("\n".join(lines) + "\n\n").encode("utf-8", "replace")
