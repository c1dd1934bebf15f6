"""The Heka message model (docs/compatibility.md, "Message model").

A `Message` has Heka's headers and an ordered list of `Field`s whose names may repeat.
Every field holds an array of values of one `value_type`. The hot path builds millions
of these, so both classes use `__slots__`, the constructor takes keywords with defaults
and the random Uuid is only generated when somebody asks for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

# Field.value_type (message.proto enum ValueType)
STRING = 0
BYTES = 1
INTEGER = 2
DOUBLE = 3
BOOL = 4

VALUE_TYPE_NAMES = {STRING: "STRING", BYTES: "BYTES", INTEGER: "INTEGER", DOUBLE: "DOUBLE",
                    BOOL: "BOOL"}

# Severity labels (RFC 5424) used by decoders and `hekapy` output.
SEVERITY_LABELS = ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO",
                   "DEBUG")
DEFAULT_SEVERITY = 7


def infer_value_type(value: Any) -> int:
    """Heka's Go mapping: bool → BOOL, int → INTEGER, float → DOUBLE, str → STRING,
    bytes → BYTES."""
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTES
    raise TypeError(f"unsupported field value type {type(value).__name__}")


class Field:
    """One dynamic field: a name, a value type, a representation and a list of values."""

    # `encoded`: an encoder's rendering of this field, kept as (encoder, text). Fields are
    # never changed in place (set_field replaces them) and decoders share one Field
    # object among many messages for repeating values, so it is rendered once.
    # `doc_value`: the value ESJsonEncoder's fast path puts in a document (or its "slow
    # path" marker), computed on first use, for the same reason.
    __slots__ = ("doc_value", "encoded", "name", "representation", "value_type", "values")

    def __init__(self, name: str, values: list, value_type: int = STRING,
                 representation: str = "") -> None:
        self.name = name
        self.values = values
        self.value_type = value_type
        self.representation = representation
        self.encoded: tuple[object, str] | None = None
        self.doc_value: object = None

    @classmethod
    def of(cls, name: str, value: Any, representation: str = "",
           value_type: int | None = None) -> Field:
        """Build a field from a scalar or a list, inferring the value type."""
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
            raise ValueError(f"field {name!r} has no values")
        if value_type is None:
            value_type = infer_value_type(values[0])
        return cls(name, values, value_type, representation)

    @property
    def value(self) -> Any:
        return self.values[0]

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Field) and self.name == other.name
                and self.value_type == other.value_type
                and self.representation == other.representation
                and self.values == other.values)

    def __repr__(self) -> str:
        rep = f", representation={self.representation!r}" if self.representation else ""
        return (f"Field({self.name!r}, {self.values!r}, "
                f"{VALUE_TYPE_NAMES.get(self.value_type, self.value_type)}{rep})")


def new_uuid() -> bytes:
    """16 random bytes shaped as an RFC 4122 version 4 UUID."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


def uuid_text(raw: bytes) -> str:
    """Lowercase 8-4-4-4-12 text form; "" when the Uuid is not 16 bytes (Heka's rule)."""
    if len(raw) != 16:
        return ""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Message:
    """A Heka message. Unset string headers are "", Severity defaults to 7, Pid to None
    (rendered as 0 where Heka renders it).

    `signer` is not a header: it is the name of the HMAC signer whose signature the input
    verified on the frame the message came in (docs/compatibility.md, "Heka stream
    framing"), "" for everything
    else. Routes with `message_signer` take only messages with exactly that signer."""

    __slots__ = ("_text_of", "_uuid", "_uuid_text", "env_version", "fields", "hostname",
                 "logger", "payload", "pid", "pre_encoded", "raw", "severity", "signer",
                 "timestamp", "type")

    def __init__(self, *, uuid: bytes | None = None, timestamp: int | None = None,
                 type: str = "", logger: str = "", severity: int = DEFAULT_SEVERITY,
                 payload: str = "", env_version: str = "", pid: int | None = None,
                 hostname: str = "", fields: list[Field] | None = None,
                 raw: bytes | None = None, signer: str = "") -> None:
        self._uuid = uuid
        self._text_of: bytes | None = None  # the Uuid bytes _uuid_text was made from
        self._uuid_text = ""
        self.timestamp = time.time_ns() if timestamp is None else timestamp
        self.type = type
        self.logger = logger
        self.severity = severity
        self.payload = payload
        self.env_version = env_version
        self.pid = pid
        self.hostname = hostname
        self.fields = [] if fields is None else fields
        # Raw record bytes: the wire bytes for ProtobufDecoder (use_message_bytes), kept
        # only while the message is unmodified.
        self.raw = raw
        # Encoder section name → the bytes that encoder makes of this message, when a
        # replay worker encoded it already (OutputContext.encode_messages uses them).
        self.pre_encoded: dict[str, bytes] | None = None
        self.signer = signer

    # Uuid: generated lazily, then stable.
    @property
    def uuid(self) -> bytes:
        u = self._uuid
        if u is None:
            u = self._uuid = new_uuid()
        return u

    @uuid.setter
    def uuid(self, value: bytes) -> None:
        self._uuid = value

    @property
    def uuid_text(self) -> str:
        # Kept with the bytes it was made from: an Elasticsearch encoder asks twice per
        # message (the _id and the document), and _uuid is also set directly.
        u = self.uuid
        if self._text_of is not u:
            self._uuid_text = uuid_text(u)
            self._text_of = u
        return self._uuid_text

    # Fields
    def add_field(self, name: str, value: Any, representation: str = "",
                  value_type: int | None = None) -> Field:
        """Append a field (names may repeat); `value` is a scalar or a list."""
        f = Field.of(name, value, representation, value_type)
        self.fields.append(f)
        return f

    def set_field(self, name: str, value: Any, representation: str = "",
                  value_type: int | None = None) -> Field:
        """Replace the first field called `name` (or append one)."""
        f = Field.of(name, value, representation, value_type)
        fields = self.fields
        for i, old in enumerate(fields):
            if old.name == name:
                fields[i] = f
                return f
        fields.append(f)
        return f

    def find_field(self, name: str, fi: int = 0) -> Field | None:
        """The `fi`-th field called `name` (0-based), or None."""
        for f in self.fields:
            if f.name == name:
                if fi == 0:
                    return f
                fi -= 1
        return None

    def get_field(self, name: str, default: Any = None, fi: int = 0, ai: int = 0) -> Any:
        """Value `ai` of the `fi`-th field called `name`, or `default`."""
        f = self.find_field(name, fi)
        if f is None or ai >= len(f.values):
            return default
        return f.values[ai]

    def delete_field(self, name: str, fi: int = 0) -> bool:
        f = self.find_field(name, fi)
        if f is None:
            return False
        self.fields.remove(f)
        return True

    def field_names(self) -> Iterable[str]:
        return (f.name for f in self.fields)

    def copy(self) -> Message:
        """A deep enough copy: fields and their value lists are new objects. The copy is
        unsigned: a new message (a filter's injection) never inherits the verified
        signer of the one it was made from (Heka's injected packs carry none)."""
        return Message(uuid=self.uuid, timestamp=self.timestamp, type=self.type,
                       logger=self.logger, severity=self.severity, payload=self.payload,
                       env_version=self.env_version, pid=self.pid, hostname=self.hostname,
                       fields=[Field(f.name, list(f.values), f.value_type, f.representation)
                               for f in self.fields],
                       raw=self.raw)

    def as_dict(self) -> dict[str, Any]:
        """A plain, JSON-friendly view (used by the debug encoder and tests)."""
        return {
            "Uuid": self.uuid_text,
            "Timestamp": self.timestamp,
            "Type": self.type,
            "Logger": self.logger,
            "Severity": self.severity,
            "Payload": self.payload,
            "EnvVersion": self.env_version,
            "Pid": self.pid if self.pid is not None else 0,
            "Hostname": self.hostname,
            "Fields": [
                {"name": f.name, "value_type": VALUE_TYPE_NAMES.get(f.value_type, "STRING"),
                 "representation": f.representation,
                 "value": [v.decode("utf-8", "replace")
                           if isinstance(v, (bytes, bytearray)) else v for v in f.values]}
                for f in self.fields
            ],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.uuid == other.uuid and self.timestamp == other.timestamp
                and self.type == other.type and self.logger == other.logger
                and self.severity == other.severity and self.payload == other.payload
                and self.env_version == other.env_version and self.pid == other.pid
                and self.hostname == other.hostname and self.fields == other.fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Message(type={self.type!r}, logger={self.logger!r}, "
                f"severity={self.severity}, payload={self.payload[:60]!r}, "
                f"fields={self.fields!r})")


def new_record_message(timestamp: int, type: str, logger: str, hostname: str, payload: str,
                       raw: bytes | None = None, _new: Any = object.__new__) -> Message:
    """The hot-path constructor inputs use for every record: the same message as
    `Message(timestamp=..., ...)` at half the cost (no keyword-argument handling)."""
    m = _new(Message)
    m._uuid = None
    m._text_of = None
    m._uuid_text = ""
    m.timestamp = timestamp
    m.type = type
    m.logger = logger
    m.severity = DEFAULT_SEVERITY
    m.payload = payload
    m.env_version = ""
    m.pid = None
    m.hostname = hostname
    m.fields = []
    m.raw = raw
    m.pre_encoded = None
    m.signer = ""
    return m
