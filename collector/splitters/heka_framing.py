"""HekaFramingSplitter: Heka's stream framing, one record per frame body (docs/compatibility.md)."""

from __future__ import annotations

from types import SimpleNamespace

from hekapy.collector.engine.framing import check_signers, signed
from hekapy.collector.engine.plugin import (
    Option,
    Splitter,
    register,
)
from hekapy.collector.engine.protobuf import (
    MAX_HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    FrameStats,
    split_frames,
)


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
        hmac_key = "an example key: use a long random one"
    """

    options = {
        "signer": Option("table", {}, check=check_signers,
                         doc="[X.signer.<name>_<version>] tables with hmac_key"),
        "skip_authentication": Option("bool", False),
    }
    defaults = {"use_message_bytes": True}

    @classmethod
    def may_sign(cls, cfg: SimpleNamespace, input_cfg: SimpleNamespace) -> bool:
        """Only a splitter that authenticates, with keys (its own, or the input's legacy
        `[X.signer]` tables), yields verified records."""
        if cfg.skip_authentication:
            return False
        return bool(cfg.signer or getattr(input_cfg, "signer", None))

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        # The runtime sets this from [hekad] max_message_size (+ frame overhead).
        self.max_record_size = 3 + MAX_HEADER_SIZE + MAX_MESSAGE_SIZE
        self.signers: dict[str, str] = dict(cfg.signer or {})
        self.stats = FrameStats()
        self.dropped = 0  # bad HMAC or over max_message_size
        self.truncated = 0
        self._buf = b""

    def add_signers(self, keys: dict[str, str]) -> bool:
        self.signers = {**keys, **self.signers}
        return True

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
        return [signed(body, header.hmac_signer) if header.HasField("hmac") else body
                for header, body in frames]

    def flush(self) -> list[bytes]:
        # An incomplete frame at the end of the stream is not a record.
        self._buf = b""
        return []

    def reset(self) -> None:
        self._buf = b""
