"""Heka's protobuf wire format and stream framing (docs/compatibility.md, "Heka stream
framing").

The schema of Heka's `message/message.proto` (proto2, package `message`) is built here as
a `FileDescriptorProto` in Python, so no `protoc` and no generated module are needed; the
classes come from `message_factory.GetMessageClass`:

    PbMessage  message.Message   uuid=1 timestamp=2 type=3 logger=4 severity=5 (default 7)
                                 payload=6 env_version=7 pid=8 hostname=9 fields=10
    PbField    message.Field     name=1 value_type=2 representation=3 value_string=4
                                 value_bytes=5 value_integer=6 value_double=7 value_bool=8
                                 (6, 7, 8 packed)
    PbHeader   message.Header    message_length=1 hmac_hash_function=3 hmac_signer=4
                                 hmac_key_version=5 hmac=6

Encoding (`encode_message`) follows Heka's Go writers: Uuid and Timestamp (required) are
always written, Severity is always written (hekapy has no "unset" Severity, and a Heka
Lua sandbox reads an absent Severity as nil), Pid only when it is not None, the string
headers only when not empty, and every field with its value_type and representation.
INTEGER, DOUBLE and BOOL arrays are packed; decoding accepts packed and unpacked arrays.

Decoding (`decode_message`) gives absent headers Heka's getter defaults ("" , Severity 7,
Pid None, Timestamp 0, Uuid b""); "required" is not enforced, as in Heka. Strings that
are not valid UTF-8 become U+FFFD replacements (the original bytes survive in `raw`).

Byte-exact pass-through: `decode_message` keeps the wire bytes in
`Message.raw`, and `encode_message` returns `raw` instead of re-marshalling. As
collector/engine/message.py says, `raw` is "kept only while the message is unmodified": code
that changes a message must set `msg.raw = None`. As a safety net, for messages built by
`decode_message` the headers and fields are compared with what was decoded, so a message
changed (or copied with `Message.copy()` and then changed) without clearing `raw` is
still re-marshalled; that check cannot see a Field whose values were changed in place
(fields are never changed in place: `set_field` replaces them). A `raw` that did
not come from `decode_message` (an input's record bytes, a message restored from the
disk queue) is never passed on: the message is marshalled afresh.

Framing: `0x1E`, header length H, `Header` protobuf, `0x1F`, body.
`frame()` writes a frame (optionally HMAC-signed), `split_frames()` parses a buffer into
frames, resynchronising on garbage and checking sizes and HMACs, and `FrameReader` keeps
the incomplete tail between reads.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import EncodeError as _PbEncodeError

from hekapy.collector.engine.message import (
    BOOL,
    BYTES,
    DEFAULT_SEVERITY,
    DOUBLE,
    INTEGER,
    STRING,
    Field,
    Message,
)

RECORD_SEPARATOR = 0x1E
UNIT_SEPARATOR = 0x1F
MAX_MESSAGE_SIZE = 65536
MAX_HEADER_SIZE = 255
# Largest frame: separators, length byte, header and body (Heka's MAX_RECORD_SIZE).
MAX_RECORD_SIZE = 3 + MAX_HEADER_SIZE + MAX_MESSAGE_SIZE

# Header.HmacHashFunction
MD5 = 0
SHA1 = 1
_HASHES = {MD5: hashlib.md5, SHA1: hashlib.sha1}
_HASH_NAMES = {"md5": MD5, "sha1": SHA1}


class WireError(ValueError):
    """Bytes that are not a Heka protobuf message, or a message that cannot be written."""


# --- schema ------------------------------------------------------------------------------

def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    F = descriptor_pb2.FieldDescriptorProto
    opt, req, rep = F.LABEL_OPTIONAL, F.LABEL_REQUIRED, F.LABEL_REPEATED
    fdp = descriptor_pb2.FileDescriptorProto(name="message/message.proto", package="message",
                                             syntax="proto2")

    def add(msg: Any, name: str, number: int, ftype: int, label: int, *,
            type_name: str = "", default: str | None = None, packed: bool = False) -> None:
        f = msg.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if default is not None:
            f.default_value = default
        if packed:
            f.options.packed = True

    header = fdp.message_type.add(name="Header")
    hf = header.enum_type.add(name="HmacHashFunction")
    hf.value.add(name="MD5", number=MD5)
    hf.value.add(name="SHA1", number=SHA1)
    add(header, "message_length", 1, F.TYPE_UINT32, req)
    add(header, "hmac_hash_function", 3, F.TYPE_ENUM, opt,
        type_name=".message.Header.HmacHashFunction", default="MD5")
    add(header, "hmac_signer", 4, F.TYPE_STRING, opt)
    add(header, "hmac_key_version", 5, F.TYPE_UINT32, opt)
    add(header, "hmac", 6, F.TYPE_BYTES, opt)

    field = fdp.message_type.add(name="Field")
    vt = field.enum_type.add(name="ValueType")
    for name, number in (("STRING", STRING), ("BYTES", BYTES), ("INTEGER", INTEGER),
                         ("DOUBLE", DOUBLE), ("BOOL", BOOL)):
        vt.value.add(name=name, number=number)
    add(field, "name", 1, F.TYPE_STRING, req)
    add(field, "value_type", 2, F.TYPE_ENUM, opt, type_name=".message.Field.ValueType",
        default="STRING")
    add(field, "representation", 3, F.TYPE_STRING, opt)
    add(field, "value_string", 4, F.TYPE_STRING, rep)
    add(field, "value_bytes", 5, F.TYPE_BYTES, rep)
    add(field, "value_integer", 6, F.TYPE_INT64, rep, packed=True)
    add(field, "value_double", 7, F.TYPE_DOUBLE, rep, packed=True)
    add(field, "value_bool", 8, F.TYPE_BOOL, rep, packed=True)

    msg = fdp.message_type.add(name="Message")
    add(msg, "uuid", 1, F.TYPE_BYTES, req)
    add(msg, "timestamp", 2, F.TYPE_INT64, req)
    add(msg, "type", 3, F.TYPE_STRING, opt)
    add(msg, "logger", 4, F.TYPE_STRING, opt)
    add(msg, "severity", 5, F.TYPE_INT32, opt, default=str(DEFAULT_SEVERITY))
    add(msg, "payload", 6, F.TYPE_STRING, opt)
    add(msg, "env_version", 7, F.TYPE_STRING, opt)
    add(msg, "pid", 8, F.TYPE_INT32, opt)
    add(msg, "hostname", 9, F.TYPE_STRING, opt)
    add(msg, "fields", 10, F.TYPE_MESSAGE, rep, type_name=".message.Field")
    return fdp


FILE_DESCRIPTOR = _file_descriptor()
POOL = descriptor_pool.DescriptorPool()
POOL.Add(FILE_DESCRIPTOR)


def _message_class(full_name: str) -> Any:
    desc = POOL.FindMessageTypeByName(full_name)
    get = getattr(message_factory, "GetMessageClass", None)
    if get is not None:
        return get(desc)
    return message_factory.MessageFactory(POOL).GetPrototype(desc)  # protobuf < 4.22


PbMessage: Any = _message_class("message.Message")
PbField: Any = _message_class("message.Field")
PbHeader: Any = _message_class("message.Header")


# --- Message <-> bytes -------------------------------------------------------------------

class WireBytes(bytes):
    """The wire bytes of a decoded message, with a stamp of what they decoded to."""

    stamp: tuple = ()


def stamp(m: Message) -> tuple:
    return (m._uuid, m.timestamp, m.type, m.logger, m.severity, m.payload, m.env_version,
            m.pid, m.hostname, tuple(m.fields))


def unchanged(m: Message, raw: WireBytes) -> bool:
    """True while `m` still has the headers and fields `raw` decoded to (a copy made with
    Message.copy() counts as unchanged until it is changed)."""
    s = raw.stamp
    fields = m.fields
    sf = s[9]
    return (m._uuid == s[0] and m.timestamp == s[1] and m.type == s[2]
            and m.logger == s[3] and m.severity == s[4] and m.payload == s[5]
            and m.env_version == s[6] and m.pid == s[7] and m.hostname == s[8]
            and len(fields) == len(sf)
            and all(a is b or a == b for a, b in zip(fields, sf, strict=True)))


def _set_str(pb: Any, attr: str, value: Any) -> None:
    if not isinstance(value, str):
        value = (bytes(value).decode("utf-8", "replace")
                 if isinstance(value, (bytes, bytearray, memoryview)) else str(value))
    try:
        setattr(pb, attr, value)
    except (ValueError, UnicodeError):  # lone surrogates
        setattr(pb, attr, value.encode("utf-8", "replace").decode("utf-8"))


def _str_values(values: list) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, (bytes, bytearray, memoryview)):
            v = bytes(v).decode("utf-8", "replace")
        elif not isinstance(v, str):
            v = str(v)
        try:
            v.encode("utf-8")
        except UnicodeError:
            v = v.encode("utf-8", "replace").decode("utf-8")
        out.append(v)
    return out


def _bytes_values(values: list) -> list[bytes]:
    return [v.encode("utf-8", "replace") if isinstance(v, str) else bytes(v) for v in values]


def _fill_field(pf: Any, f: Field) -> None:
    _set_str(pf, "name", f.name)
    pf.value_type = f.value_type
    _set_str(pf, "representation", f.representation or "")
    vt = f.value_type
    values = f.values
    if vt == STRING:
        pf.value_string.extend(_str_values(values))
    elif vt == BYTES:
        pf.value_bytes.extend(_bytes_values(values))
    elif vt == INTEGER:
        pf.value_integer.extend(int(v) for v in values)
    elif vt == DOUBLE:
        pf.value_double.extend(float(v) for v in values)
    elif vt == BOOL:
        pf.value_bool.extend(bool(v) for v in values)
    else:
        raise WireError(f"field {f.name!r}: unknown value_type {vt!r}")


def to_protobuf(msg: Message) -> Any:
    """The `message.Message` protobuf object for a hekapy Message."""
    pb = PbMessage()
    try:
        pb.uuid = bytes(msg.uuid)
        pb.timestamp = msg.timestamp
        if msg.type:
            _set_str(pb, "type", msg.type)
        if msg.logger:
            _set_str(pb, "logger", msg.logger)
        pb.severity = msg.severity
        if msg.payload:
            _set_str(pb, "payload", msg.payload)
        if msg.env_version:
            _set_str(pb, "env_version", msg.env_version)
        if msg.pid is not None:
            pb.pid = msg.pid
        if msg.hostname:
            _set_str(pb, "hostname", msg.hostname)
        for f in msg.fields:
            _fill_field(pb.fields.add(), f)
    except WireError:
        raise
    except (ValueError, TypeError, OverflowError) as e:
        raise WireError(f"cannot encode message: {e}") from None
    return pb


def encode_message(msg: Message) -> bytes:
    """The protobuf bytes of `msg`: its `raw` wire bytes while it is unmodified (see the
    module docstring), else a fresh marshal."""
    raw = msg.raw
    if raw is not None:
        # Only bytes this module decoded are Heka protobuf: an input's record bytes
        # (use_message_bytes with another decoder) are re-encoded, never passed on.
        if isinstance(raw, WireBytes) and unchanged(msg, raw):
            return bytes(raw)
    try:
        return to_protobuf(msg).SerializeToString()
    except _PbEncodeError as e:
        raise WireError(f"cannot encode message: {e}") from None


def _text(v: str | bytes) -> str:
    return v if isinstance(v, str) else v.decode("utf-8", "replace")


def from_protobuf(pb: Any, raw: bytes | None = None) -> Message:
    """A hekapy Message from a `message.Message` protobuf object."""
    fields = []
    for pf in pb.fields:
        vt = pf.value_type
        if vt == STRING:
            values: list = [_text(v) for v in pf.value_string]
        elif vt == BYTES:
            values = list(pf.value_bytes)
        elif vt == INTEGER:
            values = list(pf.value_integer)
        elif vt == DOUBLE:
            values = list(pf.value_double)
        else:
            values = list(pf.value_bool)
        fields.append(Field(_text(pf.name), values, vt, _text(pf.representation)))
    return Message(uuid=pb.uuid, timestamp=pb.timestamp, type=_text(pb.type),
                   logger=_text(pb.logger), severity=pb.severity, payload=_text(pb.payload),
                   env_version=_text(pb.env_version),
                   pid=pb.pid if pb.HasField("pid") else None,
                   hostname=_text(pb.hostname), fields=fields, raw=raw)


def decode_message(data: bytes) -> Message:
    """Parse Heka protobuf bytes; the message keeps `data` in `raw` for pass-through.
    Raises WireError for bytes that do not parse."""
    pb = PbMessage()
    try:
        pb.MergeFromString(data)  # "required" is not enforced, as in Heka
    except (_PbDecodeError, ValueError, TypeError) as e:
        raise WireError(f"not a Heka protobuf message: {e}") from None
    raw = WireBytes(data)
    msg = from_protobuf(pb, raw)
    raw.stamp = stamp(msg)
    return msg


# --- framing -----------------------------------------------------------------------------

def _hash_function(name: str | int) -> int:
    if isinstance(name, int):
        if name not in _HASHES:
            raise ValueError(f"unknown hmac hash function {name!r}")
        return name
    try:
        return _HASH_NAMES[name.lower()]
    except KeyError:
        raise ValueError(f"hmac_hash must be \"md5\" or \"sha1\", got {name!r}") from None


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)


def frame(encoded: bytes, signer: tuple[str, str, int] | None = None, *,
          hmac_hash: str | int = "md5", max_message_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """One Heka stream frame around `encoded`.

    `signer` = (name, hmac_key, key_version) signs the body with HMAC-`hmac_hash`
    ("md5" or "sha1"), as heka-flood/heka-inject do. Raises ValueError for a
    body over `max_message_size` ("Message too big") or a header over 255 bytes."""
    body = bytes(encoded)
    if len(body) > max_message_size:
        raise ValueError(f"Message too big: {len(body)} bytes > {max_message_size}")
    header = PbHeader(message_length=len(body))
    if signer is not None:
        name, key, version = signer
        hf = _hash_function(hmac_hash)
        header.hmac_signer = name
        header.hmac_key_version = version
        if hf == SHA1:
            header.hmac_hash_function = SHA1
        header.hmac = _hmac.new(_key_bytes(key), body, _HASHES[hf]).digest()
    hb = header.SerializeToString()
    if len(hb) > MAX_HEADER_SIZE:
        raise ValueError(f"frame header too big: {len(hb)} bytes > {MAX_HEADER_SIZE}")
    return b"\x1e" + bytes((len(hb),)) + hb + b"\x1f" + body


class FrameStats:
    """What `split_frames` threw away: garbage bytes skipped while resynchronising,
    frames with an invalid header, frames over the size limit, frames failing HMAC."""

    __slots__ = ("bad_header", "bad_hmac", "oversize", "skipped_bytes")

    def __init__(self) -> None:
        self.skipped_bytes = 0
        self.bad_header = 0
        self.oversize = 0
        self.bad_hmac = 0

    def __repr__(self) -> str:
        return (f"FrameStats(skipped_bytes={self.skipped_bytes}, bad_header={self.bad_header}"
                f", oversize={self.oversize}, bad_hmac={self.bad_hmac})")


def authenticate(header: Any, body: bytes, signers: Mapping[str, str | bytes] | None) -> bool:
    """Heka's check: a frame without `hmac` is accepted (unsigned); a signed
    one needs its key under "<hmac_signer>_<hmac_key_version>" in `signers` and a
    matching digest (constant-time compare). Unlike Heka, a signer name without an hmac
    is not trusted: callers should treat only frames with an hmac as signed."""
    if not header.HasField("hmac"):
        return True
    key = (signers or {}).get(f"{header.hmac_signer}_{header.hmac_key_version}")
    if key is None:
        return False
    hf = _HASHES.get(header.hmac_hash_function)
    if hf is None:
        return False
    digest = _hmac.new(_key_bytes(key), body, hf).digest()
    return _hmac.compare_digest(digest, header.hmac)


def split_frames(buffer: bytes, *, max_message_size: int = MAX_MESSAGE_SIZE,
                 signers: Mapping[str, str | bytes] | None = None,
                 skip_authentication: bool = False,
                 stats: FrameStats | None = None) -> tuple[list[tuple[Any, bytes]], int]:
    """The complete frames in `buffer` as (Header, body) pairs, and how many bytes of
    `buffer` they (and any garbage) consumed; the rest is an incomplete frame to be
    completed by the next read.

    Bytes before a 0x1E are skipped. A candidate frame whose header length is 0, whose
    unit separator is missing, whose header does not parse or lacks message_length, or
    whose message_length is over `max_message_size` is invalid: the search resumes at
    the byte after its 0x1E. Frames failing authentication (see `authenticate`; skipped
    with `skip_authentication`) are dropped. Counts go to `stats`."""
    if stats is None:
        stats = FrameStats()
    buf = bytes(buffer)
    n = len(buf)
    frames: list[tuple[Any, bytes]] = []
    pos = 0
    find = buf.find
    while True:
        i = find(b"\x1e", pos)
        if i < 0:
            stats.skipped_bytes += n - pos
            return frames, n
        stats.skipped_bytes += i - pos
        if i + 2 > n:
            return frames, i
        hlen = buf[i + 1]
        if hlen == 0:
            stats.bad_header += 1
            stats.skipped_bytes += 1
            pos = i + 1
            continue
        body_start = i + 3 + hlen
        if body_start > n:
            return frames, i
        header = None
        if buf[body_start - 1] == UNIT_SEPARATOR:
            header = PbHeader()
            try:
                header.MergeFromString(buf[i + 2:body_start - 1])
            except (_PbDecodeError, ValueError):
                header = None
            else:
                if not header.HasField("message_length"):
                    header = None
        if header is None:
            stats.bad_header += 1
            stats.skipped_bytes += 1
            pos = i + 1
            continue
        length = header.message_length
        if length > max_message_size:
            stats.oversize += 1
            stats.skipped_bytes += 1
            pos = i + 1
            continue
        end = body_start + length
        if end > n:
            return frames, i
        body = buf[body_start:end]
        pos = end
        if not skip_authentication and not authenticate(header, body, signers):
            stats.bad_hmac += 1
            continue
        frames.append((header, body))


class FrameReader:
    """Incremental frame parser for one stream: `feed(data)` returns the frames `data`
    completes and keeps the incomplete tail (`remainder` bytes)."""

    def __init__(self, *, max_message_size: int = MAX_MESSAGE_SIZE,
                 signers: Mapping[str, str | bytes] | None = None,
                 skip_authentication: bool = False) -> None:
        self.max_message_size = max_message_size
        self.signers = dict(signers or {})
        self.skip_authentication = skip_authentication
        self.stats = FrameStats()
        self._buf = b""

    @property
    def remainder(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[Any, bytes]]:
        buf = self._buf + data if self._buf else bytes(data)
        frames, consumed = split_frames(buf, max_message_size=self.max_message_size,
                                        signers=self.signers,
                                        skip_authentication=self.skip_authentication,
                                        stats=self.stats)
        self._buf = buf[consumed:]
        return frames

    def reset(self) -> None:
        self._buf = b""
