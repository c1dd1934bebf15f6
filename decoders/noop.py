"""NoopDecoder: LMA's noop.lua, the aggregator's health-check decoder: every record becomes
an empty message of one Type."""

from __future__ import annotations

from typing import ClassVar

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Decoder, Option, register


@register
class NoopDecoder(Decoder):
    """LMA's noop.lua (the aggregator's HTTP health check on port 5566): every record
    becomes an empty message of Type `msg_type` ("lma.http-check") and Severity 7
    (debug), with the record's Timestamp and Hostname; nothing else is kept. A
    SandboxDecoder section naming noop.lua runs this decoder.

    Keys: msg_type ("lma.http-check").

        [http-check_decoder]
        type = "SandboxDecoder"
        filename = "/usr/share/lma_collector/decoders/noop.lua"
          [http-check_decoder.config]
          msg_type = "lma.http-check"

        [http-check_httplisten]
        type = "HttpListenInput"
        address = "192.168.0.2:5566"
        decoder = "http-check_decoder"
    """

    options: ClassVar[dict[str, Option]] = {
        "msg_type": Option("str", "lma.http-check", doc="Type of the messages"),
    }

    def decode(self, msg: Message) -> Message:
        return Message(timestamp=msg.timestamp, type=self.cfg.msg_type, severity=7,
                       hostname=msg.hostname)
