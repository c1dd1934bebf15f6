"""Messages as msgpack records: the disk buffer's format (msgpack, not pickle: fast, safe
to read back, language-neutral; docs/design.md, "Choices and why").

A record is one msgpack array:
    [version, uuid (bin or nil), timestamp, type, logger, severity, payload, env_version,
     pid (int or nil), hostname, fields, raw (bin or nil), signer (optional)]
with fields as [[name, value_type, representation, [values…]], …]. BYTES values are
bin, everything else native msgpack types. Round-trips exactly.

`raw` is `[bin]` instead of bin when those bytes are the Heka protobuf wire form of
the message as stored (it came from ProtobufDecoder unmodified): read back, the message
is still passed through byte for byte by ProtobufEncoder (TcpOutput's disk buffer).

`signer` (the verified HMAC signer, Message.signer) is written only when set: a
buffered output with `message_signer` gets it back after a restart, unsigned records
keep their old shape, and records written before it existed read as unsigned.
"""

from __future__ import annotations

from typing import Any

import msgpack

from hekapy.collector.engine.message import Field, Message
from hekapy.collector.engine.protobuf import WireBytes, stamp, unchanged

_VERSION = 1
# A record with a signer has one element more (see the module docstring).
_SIGNED_LEN = 13


def _as_list(m: Message) -> list[Any]:
    # m.uuid, not m._uuid: a lazy Uuid is fixed now, so a record read twice (after a
    # restart) keeps its Elasticsearch _id.
    raw: bytes | list[bytes] | None = m.raw
    if isinstance(raw, WireBytes) and unchanged(m, raw):
        raw = [bytes(raw)]  # still the message's Heka wire form: passed through later
    r = [_VERSION, m.uuid, m.timestamp, m.type, m.logger, m.severity, m.payload,
         m.env_version, m.pid, m.hostname,
         [[f.name, f.value_type, f.representation, f.values] for f in m.fields], raw]
    if m.signer:
        r.append(m.signer)
    return r


def pack_message(m: Message) -> bytes:
    return msgpack.packb(_as_list(m), use_bin_type=True)


def pack_messages(messages: list[Message]) -> list[bytes]:
    packer = msgpack.Packer(use_bin_type=True)
    return [packer.pack(_as_list(m)) for m in messages]


_new = object.__new__


def _from_list(r: list[Any], cls: type[Message] = Message) -> Message:
    """A record's message; its fields as Field objects, or for PackedFieldsMessage the
    packed blob, unpacked on first use."""
    if not r or r[0] != _VERSION:
        raise ValueError(f"unknown record version {r[:1]!r}")
    signer = r.pop() if len(r) == _SIGNED_LEN else ""
    (_v, uuid, ts, type_, logger, severity, payload, env, pid, host, fields, raw) = r
    m = _new(cls)
    m._uuid = uuid
    m._text_of = None
    m._uuid_text = ""
    m.timestamp = ts
    m.type = type_
    m.logger = logger
    m.severity = severity
    m.payload = payload
    m.env_version = env
    m.pid = pid
    m.hostname = host
    if cls is Message:
        m.fields = [Field(name, values, vt, rep) for name, vt, rep, values in fields]
    else:
        m._packed = fields  # type: ignore[attr-defined]
    if type(raw) is list:  # the wire form of this very message (ProtobufEncoder's bytes)
        if cls is Message:
            raw = WireBytes(raw[0])
            raw.stamp = stamp(m)
        else:  # fields still packed: no stamp to compare against, so no pass-through
            raw = raw[0]
    m.raw = raw
    m.pre_encoded = None
    m.signer = signer
    return m


def unpack_message(data: bytes) -> Message:
    """ValueError (or msgpack's own errors) for a record that is not a message."""
    return _from_list(msgpack.unpackb(data, raw=False, strict_map_key=False))


_FIELDS = Message.__dict__["fields"]  # the slot itself


class PackedFieldsMessage(Message):
    """A message whose fields stay as their msgpack lists until something reads them.
    Replay's writer only matches and ships most messages, by headers and pre-encoded
    bytes: building eight Field objects per message was most of its work."""

    __slots__ = ("_packed",)
    _packed: bytes | None

    @property
    def fields(self) -> list[Field]:
        packed = self._packed
        if packed is not None:
            self._packed = None
            _FIELDS.__set__(self, [Field(name, values, vt, rep) for name, vt, rep, values
                                   in msgpack.unpackb(packed, raw=False)])
        return _FIELDS.__get__(self)

    @fields.setter
    def fields(self, value: list[Field]) -> None:
        self._packed = None
        _FIELDS.__set__(self, value)


def pack_batch(messages: list[Message], encoded: list[dict[str, bytes] | None]) -> bytes:
    """Messages and what the outputs' encoders made of each, as one msgpack blob (one
    object for a process pipe to carry, one C call to read back). Each message's fields
    are a msgpack blob of their own inside it, read only if something asks for them."""
    packer = msgpack.Packer(use_bin_type=True)
    records = []
    for m in messages:
        r = _as_list(m)
        r[10] = packer.pack(r[10])
        records.append(r)
    return packer.pack([records, encoded])


def unpack_batch(data: bytes) -> list[Message]:
    """pack_batch's messages, `pre_encoded` set, their fields unpacked on first use."""
    records, encoded = msgpack.unpackb(data, raw=False, strict_map_key=False)
    out = []
    for r, enc in zip(records, encoded, strict=True):
        m = _from_list(r, PackedFieldsMessage)
        m.pre_encoded = enc
        out.append(m)
    return out
