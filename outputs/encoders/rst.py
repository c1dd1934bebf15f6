"""RstEncoder: Heka's human-readable dump of a message."""

from __future__ import annotations

import time

from hekapy.collector.engine.message import BYTES, VALUE_TYPE_NAMES, Message
from hekapy.collector.engine.plugin import Encoder, register


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
