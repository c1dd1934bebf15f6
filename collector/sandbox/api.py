"""Heka's sandbox API, Heka-Go flavour (docs/compatibility.md, "Lua sandbox").

`SandboxApi` registers the functions a script calls into its `LuaSandbox`:
read_message, read_next_field, read_config, write_message (decoders, encoders),
add_to_payload, inject_payload, inject_message (table or protobuf string) and
decode_message. What an injection does depends on the plugin kind:

- decoder: messages are collected (`injected`); headers the table leaves out (Type,
  Logger, Hostname, Severity, Pid, and Uuid and Timestamp, docs/compatibility.md) come from
  the record being decoded. A second message from the same record gets a Uuid derived
  from the record's, so a replayed record makes the same documents again.
- filter: Type is prefixed `heka.sandbox.`, Logger is the filter's name, Hostname the
  collector's; the message goes to `sink` (the filter enforces its inject limits).
- encoder: the protobuf bytes (or the payload text of inject_payload) are the output.

Strings cross as bytes (lupa runs with encoding=None): Lua strings may be binary.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.protobuf import PbMessage, encode_message, from_protobuf
from hekapy.collector.sandbox.host import ApiError, LuaSandbox

DECODER, FILTER, ENCODER = "decoder", "filter", "encoder"

_STR_HEADERS = {b"Type": "type", b"Logger": "logger", b"Payload": "payload",
                b"EnvVersion": "env_version", b"Hostname": "hostname"}
_INT_MAX = 2147483647
_FIELDS_RE = re.compile(rb"Fields\[(.+)\]\Z", re.DOTALL)


def _b(s: str) -> bytes:
    try:
        return s.encode()
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace")


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def _raw(m: Message) -> bytes:
    """The wire bytes: the record's own bytes when the input kept them (a framed
    record for a protobuf-reading decoder), else the message marshalled."""
    raw = m.raw
    if raw is not None and type(raw) is bytes:
        return raw
    return encode_message(m)


_READERS: dict[bytes, Callable[[Message], Any]] = {
    b"Type": lambda m: _b(m.type),
    b"Logger": lambda m: _b(m.logger),
    b"Payload": lambda m: _b(m.payload),
    b"EnvVersion": lambda m: _b(m.env_version),
    b"Hostname": lambda m: _b(m.hostname),
    b"Uuid": lambda m: m.uuid_text.encode(),
    b"Timestamp": lambda m: m.timestamp,
    b"Severity": lambda m: m.severity,
    b"Pid": lambda m: m.pid,
    b"raw": _raw,
}


def format_number(d: float) -> bytes:
    """A number as lua_sandbox's output buffer writes it: integers plainly, fractions
    with at most 8 decimals (trailing zeros dropped), large values with 17 digits."""
    if d != d:
        return b"nan"
    if d in (float("inf"), float("-inf")):
        return b"inf" if d > 0 else b"-inf"
    if isinstance(d, int) and abs(d) <= _INT_MAX:
        return str(d).encode()
    if abs(d) > _INT_MAX:
        return b"%.17g" % d
    neg, d = d < 0, abs(d)
    number = int(d)
    tmp = (d - number) * 100_000_000
    fraction = int(tmp)
    diff = tmp - fraction
    if diff > 0.5 or (diff == 0.5 and (fraction == 0 or fraction & 1)):
        fraction += 1
        if fraction >= 100_000_000:
            fraction, number = 0, number + 1
    text = str(number)
    if fraction:
        text += "." + f"{fraction:08d}".rstrip("0")
    return ("-" + text if neg else text).encode()


def object_output(rendered: tuple[Any, ...]) -> bytes:
    """The output of a module's object (LuaSandbox.render): its text, and the rows of
    cells the module left to write here (oldest first, tab-separated, numbers as
    add_to_payload writes them)."""
    text = rendered[1]
    if len(rendered) < 6 or rendered[2] is None:
        return text
    _, _, cells, first, rows, cols = rendered[:6]
    values = list(cells.values())  # the array part, in order; no Lua code runs
    lines = [text]
    for i in range(rows):
        base = (first + i) % rows * cols
        lines.append(b"\t".join([format_number(v) for v in values[base:base + cols]]) + b"\n")
    return b"".join(lines)


def _kind(v: Any) -> str:
    """The Lua type of a field value: s(tring), n(umber), b(oolean)."""
    if isinstance(v, bytes):
        return "s"
    if isinstance(v, bool):
        return "b"
    if isinstance(v, (int, float)):
        return "n"
    return ""


_DEFAULT_TYPE = {"s": STRING, "n": DOUBLE, "b": BOOL}
_ALLOWED_TYPES = {"s": (STRING, BYTES), "n": (INTEGER, DOUBLE), "b": (BOOL,)}
_LUA_NAMES = {"s": "string", "n": "number", "b": "boolean"}


def derived_uuid(uuid: bytes, index: int) -> bytes:
    """The Uuid of the index-th extra message from one record: stable across replays."""
    b = bytearray(hashlib.sha1(uuid + index.to_bytes(4, "big")).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


def _now_seconds_ns() -> int:
    return time.time_ns() // 1_000_000_000 * 1_000_000_000


def parse_time(text: str) -> int:
    """write_message("Timestamp", "<RFC 3339 text>") → ns (naive text is UTC)."""
    s = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    frac = 0
    m = re.match(r"(.*?\d\d:\d\d:\d\d)\.(\d+)(.*)\Z", s)
    if m:
        s = m.group(1) + m.group(3)
        frac = int(m.group(2)[:9].ljust(9, "0"))
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + frac


class SandboxApi:
    """The API functions of one sandbox and the state they share."""

    def __init__(self, box: LuaSandbox, kind: str, name: str, config: dict[str, Any],
                 output_limit: int, hostname: str = "") -> None:
        self.box = box
        self.kind = kind
        self.name = name
        self.hostname = hostname
        self.output_limit = output_limit if output_limit > 0 else 1 << 62
        self.config = {k.encode(): _config_value(v) for k, v in config.items()}
        self.msg: Message | None = None
        self._owned = False  # encoders copy the message before write_message changes it
        self.injected: list[Message] = []
        self.output: list[bytes] = []
        # Filters: called with each message the script injects (may raise ApiError).
        self.sink: Callable[[Message], None] | None = None
        # Decoders: reinterprets a timestamp the script set (Heka's config.tz).
        self.retime: Callable[[int], int] | None = None
        self._payload: list[bytes] = []
        self._payload_size = 0
        # Heka's report (MaxOutput): the largest payload or message the script made.
        self.max_output = 0
        self._next_field = 0
        self._field_names: dict[bytes, str | None] = {}
        self._table = box.table_type
        reg = box.register
        reg("read_config", self.read_config)
        reg("read_message", self.read_message)
        reg("read_next_field", self.read_next_field, 5)
        reg("add_to_payload", self.add_to_payload)
        reg("inject_payload", self.inject_payload)
        reg("inject_message", self.inject_message)
        reg("decode_message", self.decode_message)
        if kind in (DECODER, ENCODER):
            reg("write_message", self.write_message)

    # state ----------------------------------------------------------------------------
    def begin(self, msg: Message | None) -> None:
        """A new entry-point call, about `msg` (None for timer_event)."""
        self.msg = msg
        self._owned = False
        self._next_field = 0
        if self.injected:
            self.injected = []
        if self.output:
            self.output = []

    def _field_name(self, var: Any) -> str | None:
        try:
            return self._field_names[var]
        except (KeyError, TypeError):
            pass
        m = _FIELDS_RE.match(var) if isinstance(var, bytes) else None
        name = _s(m.group(1)) if m else None
        if isinstance(var, bytes) and len(self._field_names) < 1024:
            self._field_names[var] = name
        return name

    # reading --------------------------------------------------------------------------
    def read_config(self, name: Any = None, *extra: Any) -> Any:
        if not isinstance(name, bytes) or extra:
            raise ApiError("read_config() takes one string argument")
        return self.config.get(name)

    def read_message(self, var: Any = None, fi: Any = 0, ai: Any = 0, *extra: Any) -> Any:
        if not isinstance(var, bytes) or extra:
            raise ApiError("read_message() incorrect number of arguments")
        m = self.msg
        if m is None:
            return None
        reader = _READERS.get(var)
        if reader is not None:
            return reader(m)
        name = self._field_name(var)
        if name is None:
            return None
        f = m.find_field(name, _index(fi, "field index"))
        if f is None:
            return None
        ai = _index(ai, "array index")
        if ai >= len(f.values):
            return None
        return _to_lua(f.values[ai], f.value_type)

    def read_next_field(self, *args: Any) -> Any:
        m = self.msg
        if m is None or self._next_field >= len(m.fields):
            return None
        f = m.fields[self._next_field]
        self._next_field += 1
        value = _to_lua(f.values[0], f.value_type) if f.values else None
        return (f.value_type, _b(f.name), value, _b(f.representation), len(f.values))

    # writing --------------------------------------------------------------------------
    def _writable(self) -> Message:
        m = self.msg
        if m is None:
            raise ApiError("write_message() has no message to write to")
        if self.kind == ENCODER and not self._owned:
            # Outputs share the message: an encoder changes its own copy.
            m = self.msg = m.copy()
            self._owned = True
        m.raw = None
        return m

    def write_message(self, var: Any = None, value: Any = None, rep: Any = b"", fi: Any = 0,
                      ai: Any = 0, *extra: Any) -> None:
        if not isinstance(var, bytes) or extra:
            raise ApiError("write_message() incorrect arguments")
        m = self._writable()
        attr = _STR_HEADERS.get(var)
        if attr is not None:
            if isinstance(value, bytes):
                setattr(m, attr, _s(value))
            elif _kind(value) == "n":
                setattr(m, attr, format_number(value).decode())
            else:
                raise ApiError(f"write_message() {_s(var)} must be a string")
            return None
        if var == b"Uuid":
            m.uuid = _uuid_value(value)
        elif var == b"Timestamp":
            if _kind(value) == "n":
                m.timestamp = int(value)
            elif isinstance(value, bytes):
                try:
                    m.timestamp = parse_time(_s(value))
                except ValueError:
                    raise ApiError(f"write_message() cannot parse the Timestamp "
                                   f"{_s(value)!r}") from None
            else:
                raise ApiError("write_message() Timestamp must be a number or a string")
        elif var in (b"Severity", b"Pid"):
            try:
                n = int(value) if _kind(value) == "n" else int(_s(value))
            except (TypeError, ValueError, AttributeError):
                raise ApiError(f"write_message() {_s(var)} must be an integer") from None
            if var == b"Severity":
                m.severity = n
            else:
                m.pid = n
        else:
            name = self._field_name(var)
            if name is None:
                raise ApiError(f"write_message() invalid field name {_s(var)!r}")
            _write_field(m, name, value, rep, _index(fi, "field index"),
                         _index(ai, "array index"))
        return None

    # output ---------------------------------------------------------------------------
    def add_to_payload(self, *args: Any) -> None:
        parts = self._payload
        size = self._payload_size
        for a in args:
            if isinstance(a, bytes):
                b = a
            elif isinstance(a, bool):
                b = b"true" if a else b"false"
            elif a is None:
                b = b"nil"
            elif isinstance(a, (int, float)):
                b = format_number(a)
            else:
                # a circular buffer (its cbuf/cbufd text) or a hyperloglog (its bytes)
                rendered = self.box.render(a) if isinstance(a, self._table) else None
                if rendered is None:
                    raise ApiError("add_to_payload() unsupported type")
                b = object_output(rendered)
            parts.append(b)
            size += len(b)
        self._payload_size = size
        if size > self.max_output:
            self.max_output = size
        if size > self.output_limit:
            raise ApiError(f"output_limit exceeded ({size} > {self.output_limit} bytes)")
        return None

    def inject_payload(self, ptype: Any = None, pname: Any = None, *args: Any) -> None:
        if args:
            self.add_to_payload(*args)
        data = b"".join(self._payload)
        self._payload = []
        self._payload_size = 0
        if not data:
            return None
        if self.kind == ENCODER:
            self.output.append(data)
            return None
        ptype = _s(ptype) if isinstance(ptype, bytes) else "txt"
        pname = _s(pname) if isinstance(pname, bytes) else ""
        msg = Message(type="heka.sandbox-output", payload=_s(data),
                      timestamp=time.time_ns(),
                      fields=[Field("payload_type", [ptype], STRING, "file-extension"),
                              Field("payload_name", [pname], STRING)])
        if self.kind == FILTER:
            msg.logger = self.name
            msg.hostname = self.hostname
            self._emit_filter(msg)
        else:
            base = self.msg
            if base is not None:
                msg.logger, msg.hostname = base.logger, base.hostname
            self.injected.append(msg)
        return None

    def inject_message(self, arg: Any = None, *extra: Any) -> None:
        if isinstance(arg, bytes):
            self.max_output = max(self.max_output, len(arg))
            if len(arg) > self.output_limit:
                raise ApiError(f"output_limit exceeded ({len(arg)} > {self.output_limit} "
                               "bytes)")
            if self.kind == ENCODER:
                self.output.append(arg)
                return None
            msg, present = self._from_protobuf(arg)
        elif isinstance(arg, self._table):
            msg, present, size = self._from_table(arg)
            self.max_output = max(self.max_output, size)
            if size > self.output_limit:
                raise ApiError(f"output_limit exceeded (about {size} > {self.output_limit} "
                               "bytes)")
            if self.kind == ENCODER:
                self.output.append(encode_message(msg))
                return None
        else:
            raise ApiError("inject_message() takes a table or a protobuf string")
        if self.kind == FILTER:
            msg.type = "heka.sandbox." + msg.type
            msg.logger = self.name
            msg.hostname = self.hostname
            self._emit_filter(msg)
        else:
            self._emit_decoded(msg, present)
        return None

    def _emit_filter(self, msg: Message) -> None:
        if self.sink is not None:
            self.sink(msg)
        else:
            self.injected.append(msg)

    def _emit_decoded(self, msg: Message, present: set[bytes]) -> None:
        base = self.msg
        if b"Timestamp" in present:
            if self.retime is not None:
                msg.timestamp = self.retime(msg.timestamp)
        elif base is not None:
            msg.timestamp = base.timestamp
        if base is not None:
            if b"Type" not in present:
                msg.type = base.type
            if b"Logger" not in present:
                msg.logger = base.logger
            if b"Hostname" not in present:
                msg.hostname = base.hostname
            if b"Severity" not in present:
                msg.severity = base.severity
            if b"Pid" not in present:
                msg.pid = base.pid
            if b"Uuid" not in present and base._uuid is not None:
                n = len(self.injected)
                msg.uuid = base._uuid if n == 0 else derived_uuid(base._uuid, n)
        self.injected.append(msg)

    def decode_message(self, data: Any = None, *extra: Any) -> Any:
        if not isinstance(data, bytes) or extra:
            raise ApiError("decode_message() takes a protobuf string")
        pb = PbMessage()
        try:
            pb.MergeFromString(data)
        except Exception:
            raise ApiError("decode_message() could not decode the protobuf") from None
        t: dict[bytes, Any] = {b"Uuid": pb.uuid, b"Timestamp": pb.timestamp}
        for key, attr in ((b"Type", "type"), (b"Logger", "logger"), (b"Payload", "payload"),
                          (b"EnvVersion", "env_version"), (b"Hostname", "hostname")):
            if pb.HasField(attr):
                t[key] = _b(getattr(pb, attr))
        if pb.HasField("severity"):
            t[b"Severity"] = pb.severity
        if pb.HasField("pid"):
            t[b"Pid"] = pb.pid
        fields = []
        for f in from_protobuf(pb).fields:
            fields.append({b"name": _b(f.name), b"value_type": f.value_type,
                           b"representation": _b(f.representation),
                           b"value": [_to_lua(v, f.value_type) for v in f.values]})
        if fields:
            t[b"Fields"] = fields
        return self.box.lua.table_from(t, recursive=True)

    # building messages ----------------------------------------------------------------
    def _from_protobuf(self, data: bytes) -> tuple[Message, set[bytes]]:
        pb = PbMessage()
        try:
            pb.MergeFromString(data)
        except Exception:
            raise ApiError("inject_message() could not decode the protobuf") from None
        msg = from_protobuf(pb)
        present = {key for key, attr in ((b"Type", "type"), (b"Logger", "logger"),
                                         (b"Hostname", "hostname"), (b"Severity", "severity"),
                                         (b"Pid", "pid"), (b"Timestamp", "timestamp"))
                   if pb.HasField(attr)}
        if len(msg.uuid) == 16:
            present.add(b"Uuid")
        else:
            msg._uuid = None
        return msg, present

    def _from_table(self, t: Any) -> tuple[Message, set[bytes], int]:
        msg = Message(timestamp=0)
        present: set[bytes] = set()
        size = 40  # headers' fixed part, about
        for k, v in t.items():
            if k == b"Fields":
                if v is not None:
                    size += self._fields(v, msg.fields)
                continue
            attr = _STR_HEADERS.get(k)
            if attr is not None:
                if isinstance(v, bytes):
                    setattr(msg, attr, _s(v))
                    size += len(v)
                elif _kind(v) == "n":
                    setattr(msg, attr, format_number(v).decode())
                else:
                    raise ApiError(f"inject_message() {_s(k)} must be a string")
                present.add(k)
            elif k == b"Timestamp":
                if _kind(v) == "n":
                    msg.timestamp = int(v)
                    present.add(k)
            elif k == b"Uuid":
                if isinstance(v, bytes) and len(v) == 16:
                    msg.uuid = v
                    present.add(k)
            elif k in (b"Severity", b"Pid"):
                try:
                    n = int(v) if _kind(v) == "n" else int(_s(v))
                except (TypeError, ValueError, AttributeError):
                    raise ApiError(f"inject_message() {_s(k)} must be an integer") from None
                if k == b"Severity":
                    msg.severity = n
                else:
                    msg.pid = n
                present.add(k)
        if b"Timestamp" not in present:
            msg.timestamp = _now_seconds_ns()
        return msg, present, size

    def _fields(self, ft: Any, out: list[Field]) -> int:
        """Append the fields of a Fields table (hash or array form) to `out`; returns
        their approximate encoded size."""
        table = self._table
        if not isinstance(ft, table):
            raise ApiError("inject_message() Fields must be a table")
        size = 0
        if ft[1] is not None:  # array form: {{name=..., value=..., ...}, ...}
            for i in range(1, len(ft) + 1):
                entry = ft[i]
                if not isinstance(entry, table):
                    raise ApiError("inject_message() Fields array entries must be tables")
                name = entry[b"name"]
                if not isinstance(name, bytes):
                    raise ApiError("inject_message() a field has no name")
                f = self._field(_s(name), entry[b"value"], entry[b"value_type"],
                                entry[b"representation"])
                if f is not None:
                    out.append(f)
                    size += _field_size(f)
            return size
        append = out.append
        for k, v in ft.items():
            if type(k) is not bytes:
                raise ApiError("inject_message() field names must be strings")
            # The common cases first: one string, number or boolean (most fields).
            tv = type(v)
            if tv is bytes:
                append(Field(_s(k), [_s(v)], STRING))
                size += len(k) + len(v) + 8
                continue
            if tv is float or tv is int:
                append(Field(_s(k), [float(v)], DOUBLE))
                size += len(k) + 15
                continue
            if tv is bool:
                append(Field(_s(k), [v], BOOL))
                size += len(k) + 8
                continue
            vt = rep = None
            if isinstance(v, table):
                inner = v[b"value"]
                if inner is not None:  # {value=..., value_type=..., representation=...}
                    vt, rep, v = v[b"value_type"], v[b"representation"], inner
            f = self._field(_s(k), v, vt, rep)
            if f is not None:
                out.append(f)
                size += _field_size(f)
        return size

    def _field(self, name: str, value: Any, vt: Any, rep: Any) -> Field | None:
        if isinstance(value, self._table):
            rendered = self.box.render(value)
            if rendered is not None:  # a circular buffer or hyperloglog: its output
                representation = _s(rep) if isinstance(rep, bytes) else ""
                return Field(name, [object_output(rendered)], BYTES, representation)
            n = len(value)
            if n == 0:
                if next(iter(value.keys()), None) is not None:
                    raise ApiError(f"inject_message() field {name!r}: unsupported value "
                                   "type (a table needs 'value' or array items)")
                return None  # {}: no values, no field
            values = [value[i] for i in range(1, n + 1)]
        else:
            values = [value]
        kind = _kind(values[0])
        if not kind:
            raise ApiError(f"inject_message() field {name!r}: unsupported value type")
        for v in values:
            if _kind(v) != kind:
                raise ApiError(f"inject_message() field {name!r}: array has mixed types")
        if vt is None:
            value_type = _DEFAULT_TYPE[kind]
        else:
            if _kind(vt) != "n" or int(vt) not in _ALLOWED_TYPES[kind]:
                raise ApiError(f"inject_message() field {name!r}: value_type {vt!r} does "
                               f"not fit a Lua {_LUA_NAMES[kind]}")
            value_type = int(vt)
        if value_type == STRING:
            values = [_s(v) for v in values]
        elif value_type == INTEGER:
            values = [int(v) for v in values]
        elif value_type == DOUBLE:
            values = [float(v) for v in values]
        representation = _s(rep) if isinstance(rep, bytes) else ""
        return Field(name, values, value_type, representation)


def _config_value(v: Any) -> Any:
    """read_config's view of a [X.config] value: strings, numbers, booleans; nil else."""
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (bool, int, float)):
        return v
    return None


def _index(v: Any, what: str) -> int:
    if v is None:
        return 0
    if _kind(v) != "n" or v < 0:
        raise ApiError(f"{what} must be a non-negative number")
    return int(v)


def _to_lua(v: Any, value_type: int) -> Any:
    if value_type == STRING:
        return _b(v) if isinstance(v, str) else v
    if value_type == BYTES:
        return _b(v) if isinstance(v, str) else bytes(v)
    return v


def _uuid_value(value: Any) -> bytes:
    if isinstance(value, bytes):
        if len(value) == 16:
            return value
        text = value.replace(b"-", b"")
        if len(text) == 32:
            try:
                return bytes.fromhex(text.decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                pass
    raise ApiError("write_message() Uuid must be 16 bytes or its 36-character text")


def _write_field(m: Message, name: str, value: Any, rep: Any, fi: int, ai: int) -> None:
    """write_message("Fields[name]", ...): the type follows the Lua value (number →
    DOUBLE); nil deletes the field. Fields are replaced, never changed in place."""
    if value is None:
        m.delete_field(name, fi)
        return
    kind = _kind(value)
    v: str | bool | float
    if kind == "s":
        vt, v = STRING, _s(value)
    elif kind == "b":
        vt, v = BOOL, value
    elif kind == "n":
        vt, v = DOUBLE, float(value)
    else:
        raise ApiError(f"write_message() field {name!r}: unsupported value type")
    representation = _s(rep) if isinstance(rep, bytes) else ""
    old = m.find_field(name, fi)
    if old is None:
        m.fields.append(Field(name, [v], vt, representation))
        return
    values = list(old.values) if old.value_type == vt else []
    if ai < len(values):
        values[ai] = v
    else:
        values.append(v)
    i = next(i for i, f in enumerate(m.fields) if f is old)
    m.fields[i] = Field(name, values, vt, representation)


def _field_size(f: Field) -> int:
    n = len(f.name) + len(f.representation) + 6
    if f.value_type in (STRING, BYTES):
        return n + sum(len(v) for v in f.values) + 2 * len(f.values)
    return n + 9 * len(f.values)
