"""JsonEncoder: the whole message as one JSON object (hekapy's own)."""

from __future__ import annotations

import orjson

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Encoder, Option, register


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
