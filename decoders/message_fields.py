"""What a decoder's `[X.message_fields]` table may set, as Heka's PayloadRegexDecoder and
ScribbleDecoder read it (Heka 0.10, https://hekad.readthedocs.io/, their pages under
Decoders): the message headers by name, any other key as a field; and the parsing of
the headers that are not text (Pid, Severity, Uuid)."""

from __future__ import annotations

import re

from hekapy.collector.engine.plugin import DecodeError, OptionError

# The keys that set a header instead of adding a field.
HEADER_NAMES = ("Type", "Logger", "Payload", "Hostname", "Pid", "Severity", "Uuid")

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_INT_RE = re.compile(r"[+-]?[0-9]+")
_UUID_RE = re.compile(r"(?i)(?:urn:uuid:)?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-"
                      r"([0-9a-f]{4})-([0-9a-f]{12})")


def check_message_fields(table: dict) -> dict:
    """The option check of a `[X.message_fields]` table: every value a string."""
    for key, value in table.items():
        if not isinstance(value, str):
            raise OptionError(f"message_fields.{key}: expected a string, got {value!r}",
                              key="message_fields")
    return table


def parse_int32(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 32): optional sign, ASCII digits, int32 range;
    None when it is not one."""
    if _INT_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if INT32_MIN <= value <= INT32_MAX else None


def parse_pid(text: str) -> int | None:
    """A Pid as Heka took it: the integer part of the text ("1234.5" is 1234)."""
    return parse_int32(text.split(".", 1)[0])


def parse_uuid(text: str) -> bytes:
    """Heka: 16 bytes are taken as the raw Uuid, else the 36-character text form (an
    optional "urn:uuid:" prefix allowed); DecodeError otherwise."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) == 16:
        return raw
    m = _UUID_RE.fullmatch(text)
    if m is None:
        raise DecodeError(f"invalid Uuid {text!r}")
    return bytes.fromhex("".join(m.groups()))
