"""Heka stream framing as inputs and outputs use it: framed records, signed records and
the signer tables (docs/compatibility.md, "Heka stream framing"). The wire format lives in
collector/engine/protobuf.py; the plugins are HekaFramingSplitter
(collector/splitters/heka_framing.py), ProtobufDecoder (decoders/protobuf.py) and
ProtobufEncoder (outputs/encoders/protobuf.py).

Outputs with `use_framing` wrap each encoded record with `frame_record` (unsigned, as
Heka's outputs never sign); `default_use_framing(encoder)` is Heka's automatic value for
TcpOutput/FileOutput: true iff the encoder writes Heka protobuf messages.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.plugin import (
    OptionError,
    PluginSpec,
    Splitter,
)
from hekapy.collector.engine.protobuf import (
    MAX_MESSAGE_SIZE,
    frame,
)


def frame_record(record: bytes, max_message_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """A record framed for an output with `use_framing = true` (unsigned header).
    Raises ValueError for a record over `max_message_size`."""
    return frame(record, max_message_size=max_message_size)


def default_use_framing(encoder: Any) -> bool:
    """Heka's automatic `use_framing` for TcpOutput and FileOutput: true iff the
    encoder writes Heka protobuf messages (its class says so)."""
    return bool(getattr(encoder, "framed_by_default", False))


class SignedRecord(bytes):
    """A record from a frame whose HMAC the splitter verified: the body's bytes, and
    the name of the signer (the header's hmac_signer) as `signer`. The input context
    puts that name on the record's message (InputContext.records_to_messages); routes
    with `message_signer` select on it. A subclass of bytes, so every splitter consumer
    (inputs joining lists of records, decoders reading `raw`) takes it unchanged."""

    signer: str = ""


def check_signers(value: dict) -> dict[str, str]:
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


def signed(body: bytes, signer: str) -> SignedRecord:
    r = SignedRecord(body)
    r.signer = signer
    return r


def may_tag_signers(splitter: PluginSpec | None, input_cfg: SimpleNamespace) -> bool:
    """Whether an input's records can carry verified signers (SignedRecord): its
    splitter's class says so for its configuration (HekaFramingSplitter with keys).
    Inputs for which this is false skip the per-record signer check entirely."""
    if splitter is None or not issubclass(splitter.cls, Splitter):
        return False
    return splitter.cls.may_sign(splitter.cfg, input_cfg)




_SIGNER_KEYS = ("name", "hmac_key", "version", "hmac_hash")


def check_output_signer(table: dict) -> dict:
    """`[X.signer]`: name, hmac_key, version (0), hmac_hash ("md5" | "sha1")."""
    if not table:
        return {}
    by_lower = {k.lower(): v for k, v in table.items()}
    unknown = sorted(k for k in by_lower if k not in _SIGNER_KEYS)
    if unknown:
        raise OptionError(f"unknown key(s) {', '.join(unknown)}; valid keys: "
                          f"{', '.join(_SIGNER_KEYS)}")
    name, key = by_lower.get("name"), by_lower.get("hmac_key")
    version = by_lower.get("version", 0)
    hmac_hash = by_lower.get("hmac_hash", "md5")
    if not isinstance(name, str) or not name:
        raise OptionError("signer.name must be a non-empty string")
    if not isinstance(key, str) or not key:
        raise OptionError("signer.hmac_key must be a non-empty string")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise OptionError("signer.version must be an integer >= 0")
    if not isinstance(hmac_hash, str) or hmac_hash.lower() not in ("md5", "sha1"):
        raise OptionError("signer.hmac_hash must be \"md5\" or \"sha1\"")
    return {"name": name, "hmac_key": key, "version": version,
            "hmac_hash": hmac_hash.lower()}
