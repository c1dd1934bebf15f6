"""Reading archived log files: plain, gzip, bzip2, xz and zstd, as one stream of
uncompressed bytes, counting the bytes read from disk (progress and ETA on compressed
files), and what is left of a file that is damaged part way."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zlib
from typing import IO, Any, cast

import zstandard

from hekapy.collector.inputs.logstreamer.reader import FINGERPRINT_MAX

COMPRESSED = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}

# What reading a damaged or truncated archive raises (zstandard's own error is no
# OSError: without it a corrupt .zst escaped the salvage and ended its file's replay).
READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


def compression_of(path: str) -> str:
    return COMPRESSED.get(os.path.splitext(path)[1], "")


def strip_compression(name: str) -> str:
    root, ext = os.path.splitext(name)
    return root if ext in COMPRESSED else name


class CountingReader(io.RawIOBase):
    """The raw file, counting the bytes read."""

    def __init__(self, f: io.BufferedReader) -> None:
        super().__init__()
        self.f = f
        self.count = 0

    def read(self, n: int | None = -1) -> bytes:
        data = self.f.read(n)
        self.count += len(data)
        return data

    def readinto(self, b: Any) -> int:
        n = self.f.readinto(b)
        self.count += n
        return n

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.f.close()
        super().close()


def open_archive(path: str) -> tuple[IO[bytes], CountingReader]:
    """A stream of the file's uncompressed bytes, and the counter of raw bytes read
    (close the counter when done)."""
    raw = CountingReader(open(path, "rb"))
    # Every one of these is a binary file; typeshed only does not say so of them all.
    file = cast(IO[bytes], raw)
    kind = compression_of(path)
    if kind == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=file, mode="rb")), raw
    if kind == "bzip2":
        return cast(IO[bytes], bz2.BZ2File(file, "rb")), raw
    if kind == "xz":
        return cast(IO[bytes], lzma.LZMAFile(file, "rb")), raw
    if kind == "zstd":
        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(file)), raw
    return file, raw


def salvage(path: str, offset: int, step: int = 4096) -> bytes:
    """The uncompressed bytes from `offset` up to where the file cannot be read (a large
    read loses what it had decoded when it fails, so this reads in small steps)."""
    f, raw = open_archive(path)
    got = bytearray()
    pos = 0
    try:
        while True:
            chunk = f.read(step)
            if not chunk:
                break
            if pos + len(chunk) > offset:
                got += chunk[max(0, offset - pos):]
            pos += len(chunk)
    except READ_ERRORS:
        pass
    finally:
        raw.close()
    return bytes(got)


def fingerprint(path: str) -> bytes:
    """The daemon's file identity: the first line (with its newline), at most 1 KiB;
    b"" for a file whose start cannot be read (replaying it reports the error)."""
    try:
        f, raw = open_archive(path)
    except OSError:
        return b""
    try:
        head = f.read(FINGERPRINT_MAX)
    except READ_ERRORS:
        head = b""
    finally:
        raw.close()
    nl = head.find(b"\n")
    return head[: nl + 1] if nl >= 0 else head
