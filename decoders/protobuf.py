"""ProtobufDecoder: a record's bytes parsed as a Heka protobuf message."""

from __future__ import annotations

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import (
    DecodeError,
    Decoder,
    register,
)
from hekapy.collector.engine.protobuf import (
    WireError,
    decode_message,
)


@register
class ProtobufDecoder(Decoder):
    """Parses the record bytes (`raw`, set by a splitter with use_message_bytes, like
    HekaFramingSplitter) as a Heka protobuf message, which replaces the input's message.
    The wire bytes stay in `raw`, so a ProtobufEncoder writes them again unchanged. A
    verified signer stays with the message (the input's decode step carries it over).

        [tcp_in]
        type = "TcpInput"
        address = "127.0.0.1:5565"
        decoder = "ProtobufDecoder"
    """

    def decode(self, msg: Message) -> Message:
        return decode_record(msg)


def decode_record(msg: Message) -> Message:
    """The Heka message a record's bytes (`raw`) hold; DecodeError when they are none."""
    data = msg.raw
    if data is None:
        raise DecodeError("no message bytes: use a splitter with use_message_bytes = "
                          "true (e.g. HekaFramingSplitter)")
    try:
        return decode_message(data)
    except WireError as e:
        raise DecodeError(str(e)) from None
