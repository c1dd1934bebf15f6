"""The position journal, in Heka's format (its `logstreamer` package:
https://github.com/mozilla-services/heka/tree/v0.10.0/logstreamer).

One file per stream, `<journal_directory>/<stream name>`, holding one JSON object with
its keys in Heka's order:

    {"seek":48211,"file_name":"/var/log/nova/nova-api.log","last_hash":"3f9c0e1d..."}

`last_hash` is the lowercase hex SHA-1 of the 500 bytes just before `seek`, left-padded
with NUL bytes when `seek` < 500. hekad reads a hekapy journal and hekapy reads hekad's.

While files the stream left after a rotation are still read for late writes
(`rotate_wait`), hekapy adds their positions after Heka's keys:

    {"seek":20,"file_name":".../app.log","last_hash":"...",
     "lingering":[{"seek":5120,"file_name":".../app.log.1","last_hash":"..."}]}

hekad (Go's json.Unmarshal) ignores the extra key and resumes the current file; hekapy
also reads those files on from their positions. Without lingering files the journal is
byte for byte Heka's.

Unlike hekad, which rewrote the file in place (a crash mid-write left an empty or torn
journal and a full replay), hekapy writes a temporary file, fsyncs it, renames it over
the journal and fsyncs the directory: a reader sees the old or the new journal, never a
mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field

HASH_WINDOW = 500
_PAD = b"\0" * HASH_WINDOW
JOURNAL_MODE = 0o660


def window_hash(window: bytes) -> str:
    """Heka's `last_hash` of the bytes just before a position: the last 500 bytes of
    `window`, NUL-padded on the left to 500."""
    if len(window) >= HASH_WINDOW:
        w = window[-HASH_WINDOW:]
    else:
        w = _PAD[: HASH_WINDOW - len(window)] + window
    return hashlib.sha1(w).hexdigest()


@dataclass
class Position:
    """A stream position as Heka journals it, and hekapy's positions in the files the
    stream left but still reads (oldest first)."""

    seek: int = 0
    file_name: str = ""
    last_hash: str = ""
    lingering: list[Position] = field(default_factory=list)

    def is_zero(self) -> bool:
        return self.seek == 0 and not self.file_name and not self.last_hash


def _go_string(s: str) -> str:
    """A JSON string exactly as Go's encoding/json writes it (HTML-safe escapes, \\u00XX
    for control characters, U+2028/2029 escaped), so journals are byte-identical."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            # A surrogate-escaped byte of a non-UTF-8 file name: Go writes U+FFFD.
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _fields(pos: Position) -> str:
    return (f'"seek":{int(pos.seek)},"file_name":{_go_string(pos.file_name)},'
            f'"last_hash":{_go_string(pos.last_hash)}')


def encode(pos: Position) -> bytes:
    """The journal's bytes: Go's json.Marshal of Heka's LogstreamLocation, then the
    lingering files' positions if there are any."""
    extra = ""
    if pos.lingering:
        extra = ',"lingering":[' + ",".join("{" + _fields(p) + "}"
                                            for p in pos.lingering) + "]"
    return ("{" + _fields(pos) + extra + "}").encode("utf-8", "surrogateescape")


class JournalError(ValueError):
    """A journal that exists but cannot be understood."""


def decode(data: bytes) -> Position | None:
    """Parse a journal's bytes; None for an empty file (Heka: no position). Unknown keys
    are ignored and missing ones take their zero value, as Go's json.Unmarshal does."""
    data = data.strip()
    if not data:
        return None
    try:
        obj = json.loads(data.decode("utf-8", "surrogateescape"))
    except (ValueError, UnicodeDecodeError) as e:
        raise JournalError(f"not a journal: {e}") from None
    if not isinstance(obj, dict):
        raise JournalError("not a journal: expected a JSON object")
    pos = _position(obj)
    lingering = obj.get("lingering", [])
    if not isinstance(lingering, list) or not all(isinstance(x, dict) for x in lingering):
        raise JournalError("lingering must be a list of positions")
    pos.lingering = [_position(x) for x in lingering]
    return pos


def _position(obj: dict) -> Position:
    seek = obj.get("seek", 0)
    name = obj.get("file_name", "")
    h = obj.get("last_hash", "")
    if isinstance(seek, bool) or not isinstance(seek, int) or seek < 0:
        raise JournalError(f"bad seek {seek!r}")
    if not isinstance(name, str) or not isinstance(h, str):
        raise JournalError("file_name and last_hash must be strings")
    return Position(seek, name, h.lower())


def journal_file_name(stream: str) -> str:
    """The journal's file name for a stream. Heka used the name as is; a `/` in it made
    Heka fail to save (LMA bug 1530326), so hekapy writes `_` instead."""
    name = stream.replace("/", "_").replace("\0", "_")
    if name in ("", ".", ".."):
        name = "_" + name
    return name


class Journal:
    """The journal directory of one LogstreamerInput."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._dir_fd: int | None = None

    def path(self, stream: str) -> str:
        return os.path.join(self.directory, journal_file_name(stream))

    def ensure_dir(self) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)

    def load(self, stream: str) -> Position | None:
        """The saved position, None when there is none. Raises JournalError for a file
        that does not parse and OSError when it cannot be read."""
        try:
            with open(self.path(stream), "rb") as f:
                data = f.read(1 << 20)
        except FileNotFoundError:
            return None
        return decode(data)

    def save(self, stream: str, pos: Position, sync: bool = True) -> None:
        """Atomically replace the stream's journal: temp file, fsync, rename, fsync dir."""
        final = self.path(stream)
        tmp = os.path.join(self.directory, f".{journal_file_name(stream)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, JOURNAL_MODE)
        try:
            data = encode(pos)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        if sync:
            self._sync_dir()

    def _sync_dir(self) -> None:
        # The rename is durable only once the directory entry is on disk.
        try:
            if self._dir_fd is None:
                self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY
                                       | os.O_CLOEXEC)
            os.fsync(self._dir_fd)
        except OSError:
            self.close()

    def close(self) -> None:
        if self._dir_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._dir_fd)
            self._dir_fd = None
