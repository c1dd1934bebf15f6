"""PayloadEncoder: the Payload, optionally prefixed with a timestamp (Heka's)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Encoder, Option, register
from hekapy.collector.engine.strftime import compile_strftime


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
