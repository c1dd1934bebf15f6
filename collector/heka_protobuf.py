"""Heka-to-Heka plugins: HekaFramingSplitter, ProtobufDecoder, ProtobufEncoder
(spec/heka.md §2, §4.3, §4.5, §4.6). The wire format lives in collector/protobuf.py.

Outputs with `use_framing` wrap each encoded record with `frame_record` (unsigned, as
Heka's outputs never sign); `default_use_framing(encoder)` is Heka's automatic value for
TcpOutput/FileOutput: true iff the encoder is a ProtobufEncoder.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from .message import Message
from .plugin import (
    DecodeError,
    Decoder,
    Encoder,
    Option,
    OptionError,
    PluginSpec,
    Splitter,
    register,
)
from .protobuf import (
    MAX_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    FrameStats,
    WireError,
    decode_message,
    encode_message,
    frame,
    split_frames,
)


def frame_record(record: bytes, max_message_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """A record framed for an output with `use_framing = true` (unsigned header).
    Raises ValueError for a record over `max_message_size`."""
    return frame(record, max_message_size=max_message_size)


def default_use_framing(encoder: Any) -> bool:
    """Heka's automatic `use_framing` for TcpOutput and FileOutput."""
    return isinstance(encoder, ProtobufEncoder)


class SignedRecord(bytes):
    """A record from a frame whose HMAC the splitter verified: the body's bytes, and
    the name of the signer (the header's hmac_signer) as `signer`. The input context
    puts that name on the record's message (InputContext.records_to_messages); routes
    with `message_signer` select on it. A subclass of bytes, so every splitter consumer
    (inputs joining lists of records, decoders reading `raw`) takes it unchanged."""

    signer: str = ""


def _check_signers(value: dict) -> dict[str, str]:
    """`[X.signer.<name>_<version>]` tables with one key, `hmac_key`."""
    keys: dict[str, str] = {}
    for ident, table in value.items():
        if not isinstance(table, dict):
            raise OptionError(f"signer {ident!r} must be a table with hmac_key")
        name, sep, version = ident.rpartition("_")
        if not sep or not name or not version.isdigit():
            raise OptionError(f"signer {ident!r} must be named <signer>_<key version>, "
                              "e.g. [splitter.signer.ops_1]")
        unknown = sorted(k for k in table if k.lower() != "hmac_key")
        if unknown:
            raise OptionError(f"signer {ident!r}: unknown key(s) {', '.join(unknown)}; "
                              "valid keys: hmac_key")
        key = next((v for k, v in table.items() if k.lower() == "hmac_key"), None)
        if not isinstance(key, str) or not key:
            raise OptionError(f"signer {ident!r}: hmac_key must be a non-empty string")
        keys[f"{name}_{int(version)}"] = key
    return keys


@register
class HekaFramingSplitter(Splitter):
    """Heka's stream framing (0x1E, header length, Header protobuf, 0x1F, body): each
    record is one frame's body. Garbage between frames is skipped, frames with a bad
    header or over max_message_size are skipped, signed frames whose HMAC does not check
    out are dropped (counted in `dropped`). Records go to the decoder as message bytes
    (`use_message_bytes` defaults to true), for ProtobufDecoder.

    A frame whose HMAC checked out is a `SignedRecord`: its message is tagged with the
    signer's name, for filters and outputs with `message_signer`. Only a verified hmac
    tags: unlike Heka, a header naming a signer without an hmac is an unsigned frame,
    and with skip_authentication nothing is verified, so nothing is tagged.

    Keys: signer ([X.signer.<name>_<version>] tables with hmac_key), skip_authentication
    (false), use_message_bytes (true).

        [tcp_in]
        type = "TcpInput"
        splitter = "heka_framing"

        [heka_framing]
        type = "HekaFramingSplitter"
        [heka_framing.signer.ops_0]
        hmac_key = "4865ey9urgkidls xtb0[7lf9rzcivthkm"
    """

    options = {
        "signer": Option("table", {}, check=_check_signers,
                         doc="[X.signer.<name>_<version>] tables with hmac_key"),
        "skip_authentication": Option("bool", False),
    }
    defaults = {"use_message_bytes": True}

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        # The runtime sets this from [hekad] max_message_size (+ frame overhead).
        self.max_record_size = 3 + MAX_HEADER_SIZE + MAX_MESSAGE_SIZE
        self.signers: dict[str, str] = dict(cfg.signer or {})
        self.stats = FrameStats()
        self.dropped = 0  # bad HMAC or over max_message_size
        self.truncated = 0
        self._buf = b""

    @property
    def max_message_size(self) -> int:
        return self.max_record_size - 3 - MAX_HEADER_SIZE

    @property
    def remainder(self) -> int:
        return len(self._buf)

    def split(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else bytes(data)
        if not buf:
            return []
        st = self.stats
        before = st.bad_hmac + st.oversize
        frames, consumed = split_frames(buf, max_message_size=self.max_message_size,
                                        signers=self.signers,
                                        skip_authentication=self.cfg.skip_authentication,
                                        stats=st)
        self.dropped += st.bad_hmac + st.oversize - before
        self._buf = buf[consumed:]
        if not self.signers or self.cfg.skip_authentication:
            # No key, no verified frame: a frame with an hmac failed and was dropped.
            return [body for _header, body in frames]
        return [_signed(body, header.hmac_signer) if header.HasField("hmac") else body
                for header, body in frames]

    def flush(self) -> list[bytes]:
        # An incomplete frame at the end of the stream is not a record.
        self._buf = b""
        return []

    def reset(self) -> None:
        self._buf = b""


def _signed(body: bytes, signer: str) -> SignedRecord:
    r = SignedRecord(body)
    r.signer = signer
    return r


def may_tag_signers(splitter: PluginSpec | None, input_cfg: SimpleNamespace) -> bool:
    """Whether an input's records can carry verified signers (SignedRecord): its
    splitter is a HekaFramingSplitter that authenticates and has keys (its own, or the
    input's legacy `[X.signer]` tables). Inputs for which this is false skip the
    per-record signer check entirely."""
    if splitter is None or not issubclass(splitter.cls, HekaFramingSplitter):
        return False
    cfg = splitter.cfg
    if cfg.skip_authentication:
        return False
    return bool(cfg.signer or getattr(input_cfg, "signer", None))


@register
class ProtobufDecoder(Decoder):
    """Parses the record bytes (`raw`, set by a splitter with use_message_bytes, like
    HekaFramingSplitter) as a Heka protobuf message, which replaces the input's message.
    The wire bytes stay in `raw`, so a ProtobufEncoder writes them again unchanged. A
    verified signer stays with the message (the input's decode step carries it over).

        [tcp_in]
        type = "TcpInput"
        decoder = "ProtobufDecoder"
    """

    def decode(self, msg: Message) -> Message:
        data = msg.raw
        if data is None:
            raise DecodeError("no message bytes: use a splitter with use_message_bytes = "
                              "true (e.g. HekaFramingSplitter)")
        try:
            return decode_message(data)
        except WireError as e:
            raise DecodeError(str(e)) from None


@register
class ProtobufEncoder(Encoder):
    """Heka's protobuf message bytes (byte-exact for a decoded message that was not
    changed). Framing is the output's `use_framing` (see `frame_record`).

        [out]
        type = "FileOutput"
        encoder = "ProtobufEncoder"
    """

    def encode(self, msg: Message) -> bytes:
        return encode_message(msg)

    def encode_framed(self, msg: Message, max_message_size: int = MAX_MESSAGE_SIZE) -> bytes:
        """The encoded message inside a Heka stream frame."""
        return frame_record(encode_message(msg), max_message_size)
