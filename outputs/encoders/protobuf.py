"""ProtobufEncoder: Heka's protobuf message bytes."""

from __future__ import annotations

from hekapy.collector.engine.framing import frame_record
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import (
    Encoder,
    register,
)
from hekapy.collector.engine.protobuf import (
    MAX_MESSAGE_SIZE,
    encode_message,
)


@register
class ProtobufEncoder(Encoder):
    """Heka's protobuf message bytes (byte-exact for a decoded message that was not
    changed). Framing is the output's `use_framing` (see `frame_record`).

        [out]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "/var/log/hekapy/messages.heka"
        encoder = "ProtobufEncoder"
    """

    framed_by_default = True

    def encode(self, msg: Message) -> bytes:
        return encode_message(msg)

    def encode_framed(self, msg: Message, max_message_size: int = MAX_MESSAGE_SIZE) -> bytes:
        """The encoded message inside a Heka stream frame."""
        return frame_record(encode_message(msg), max_message_size)
