"""The decoding side of `hekapy replay`: a worker process reads archived files
(plain, gzip, bzip2, xz, zstd; Heka protobuf streams), splits and decodes them exactly as
the daemon's LogstreamerInput would, and sends msgpack batches to the writer process.

Uuids are the daemon's (collector/inputs/logstreamer/logstreamer_input.py: hostname, stream name,
the file's first line, the record's offset in the uncompressed stream), so a file the
daemon already shipped, or one replayed twice, overwrites its documents instead of
duplicating them.

Each batch carries the offset the writer may record once it is acknowledged: the start
of the message the decoder still holds back (a traceback waiting for its next line),
so a resumed replay starts on a fresh message, never in the middle of one.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import time
import zlib
from dataclasses import dataclass
from typing import IO, Any, cast

from hekapy.collector.engine.config import Config, load_config
from hekapy.collector.engine.contexts import add_tags, deployment_tag_fields, max_record_size
from hekapy.collector.engine.message import Message, new_record_message
from hekapy.collector.engine.pipeline import build_plugin
from hekapy.collector.engine.plugin import DecodeError, Decoder, Splitter
from hekapy.collector.engine.serialize import pack_batch
from hekapy.collector.inputs.logstreamer.logstreamer_input import identity_key, record_offsets
from hekapy.collector.inputs.logstreamer.reader import FINGERPRINT_MAX

READ_SIZE = 1 << 20
BATCH_RECORDS = 2000
COMPRESSED = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}
HEKA_RECORD_SEPARATOR = 0x1E


@dataclass
class FileTask:
    """One file to replay: the stream it belongs to and how to decode it."""

    index: int
    path: str
    stream: str
    splitter: str  # splitter section or default plugin name
    decoder: str  # decoder section name ("" = none)
    fingerprint: bytes = b""  # the first line: the file's identity (see fingerprint())
    start: int = 0  # uncompressed offset already acknowledged (--resume)


def compression_of(path: str) -> str:
    return COMPRESSED.get(os.path.splitext(path)[1], "")


def strip_compression(name: str) -> str:
    root, ext = os.path.splitext(name)
    return root if ext in COMPRESSED else name


class CountingReader(io.RawIOBase):
    """The raw file, counting the bytes read (progress and ETA on compressed files)."""

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
    """A stream of the file's uncompressed bytes, and the counter of raw bytes read."""
    raw = CountingReader(open(path, "rb"))  # closed by the caller
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
        import zstandard
        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(file)), raw
    return file, raw


READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


def salvage(path: str, offset: int, step: int = 4096) -> bytes:
    """The uncompressed bytes from `offset` up to where the file cannot be read."""
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
    """The daemon's file identity: the first line (with its newline), ≤ 1 KiB; b"" for
    a file whose start cannot be read (its worker reports the error)."""
    f, raw = open_archive(path)
    try:
        head = f.read(FINGERPRINT_MAX)
    except READ_ERRORS:
        head = b""
    finally:
        raw.close()
    nl = head.find(b"\n")
    return head[: nl + 1] if nl >= 0 else head


def is_heka_stream(first_line: bytes) -> bool:
    """A Heka protobuf stream starts with a frame's record separator."""
    return first_line[:1] == bytes([HEKA_RECORD_SEPARATOR])


class FileDecoder:
    """Splits and decodes one file, yielding (messages, resume offset, stats)."""

    def __init__(self, config: Config, task: FileTask, hostname: str,
                 since: int | None, until: int | None) -> None:
        self.config = config
        self.task = task
        self.hostname = hostname
        self.since = since
        self.until = until
        splitter = build_plugin(config, task.splitter, "Splitter")
        assert isinstance(splitter, Splitter)
        splitter.max_record_size = max_record_size(config.hekad)
        self.splitter = splitter
        self.use_bytes = bool(splitter.cfg.use_message_bytes)
        self.decoder: Decoder | None = (build_plugin(config, task.decoder, "Decoder")
                                        if task.decoder else None)
        if self.decoder is not None:
            self.decoder.max_message_size = config.hekad.max_message_size
        self.tags = deployment_tag_fields(config.hekad.deployment_tags)
        self.tag_names = frozenset(f.name for f in self.tags)
        self.records = 0
        self.skipped_time = 0
        self.decode_failures = 0
        self.first_failure = ""

    def messages_of(self, records: list[bytes], offs: list[int], key: int
                    ) -> tuple[list[Message], int | None]:
        """Decoded messages of `records`, and the offset where the message the decoder
        holds back starts (None when it holds nothing)."""
        now = time.time_ns()
        stream, host, dec = self.task.stream, self.hostname, self.decoder
        out: list[Message] = []
        held_start: int | None = None
        for rec, off in zip(records, offs, strict=True):
            if self.use_bytes:
                m = new_record_message(now, "logfile", stream, host, "", rec)
            else:
                m = new_record_message(now, "logfile", stream, host,
                                       rec.decode("utf-8", "replace"))
            m.uuid = (key ^ off).to_bytes(16, "big")
            if dec is None:
                out.append(m)
                continue
            was_holding = dec.holding
            try:
                r = dec.decode(m)
            except DecodeError as e:
                self._failed(str(e))
                continue
            except Exception as e:  # a decoder bug must not end the replay
                self._failed(f"{type(e).__name__}: {e}")
                continue
            if r is not None:
                got = [r] if isinstance(r, Message) else r
                out += got
            else:
                got = []
            if dec.holding and (got or not was_holding):
                held_start = off  # this record began the message now held back
        if dec is not None and not dec.holding:
            held_start = None
        return out, held_start

    def _failed(self, reason: str) -> None:
        self.decode_failures += 1
        if not self.first_failure:
            self.first_failure = reason

    def keep(self, messages: list[Message]) -> list[Message]:
        if self.tags:
            add_tags(messages, self.tags, self.tag_names)
        if self.since is None and self.until is None:
            return messages
        lo = self.since if self.since is not None else -(1 << 63)
        hi = self.until if self.until is not None else 1 << 63
        kept = [m for m in messages if lo <= m.timestamp < hi]
        self.skipped_time += len(messages) - len(kept)
        return kept


def output_encoders(config: Config) -> list[tuple[Any, str, Any]]:
    """(matcher, encoder section name, encoder) of every output with an encoder: the
    workers encode for them, so the single writer process only ships the bytes."""
    from hekapy.collector.engine.matcher import compile_matcher
    out = []
    for spec in config.by_category("Output"):
        name = spec.cfg.encoder
        enc = config.resolve(name, "Encoder") if name else None
        if enc is not None:
            out.append((compile_matcher(spec.cfg.message_matcher), name, enc.build()))
    return out


def pre_encode(encoders: list[tuple[Any, str, Any]], messages: list[Message]
               ) -> tuple[list[dict[str, bytes] | None], dict[str, int]]:
    """Per message, what each matching output's encoder makes of it (an encoder error
    is left to the writer, which counts and logs it); and documents per index for the
    outputs whose encoder names one (Elasticsearch), for the summary."""
    out: list[dict[str, bytes] | None] = []
    per_index: dict[str, int] = {}
    for m in messages:
        done: dict[str, bytes] | None = None
        for pred, name, enc in encoders:
            if not pred(m):
                continue
            index = getattr(enc, "index", None)
            if index is not None:
                key = index.render(m)[0]
                per_index[key] = per_index.get(key, 0) + 1
            if done is not None and name in done:
                continue
            try:
                data = enc.encode(m)
            except Exception:
                continue
            if data:
                if done is None:
                    done = {}
                done[name] = data
        out.append(done)
    return out, per_index


def replay_file(config: Config, task: FileTask, hostname: str, since: int | None,
                until: int | None, send: Any) -> None:
    """Decode one file, calling send(kind, payload) for each batch and at the end."""
    fd = FileDecoder(config, task, hostname, since, until)
    encoders = output_encoders(config)
    key = identity_key(hostname, task.stream, task.fingerprint)
    f, raw = open_archive(task.path)
    sp = fd.splitter
    offset = 0  # uncompressed bytes read
    hist = b""
    held_from: int | None = None
    resume_at = task.start
    error = False
    try:
        while True:
            try:
                data = b"" if error else f.read(READ_SIZE)
            except READ_ERRORS as e:
                # The bytes decompressed before the damage, read again in small steps
                # (a large read loses what it had decoded when it fails).
                data = salvage(task.path, offset)
                send("error", (task.index, f"{task.path}: {type(e).__name__}: {e} "
                               f"(after {offset + len(data)} uncompressed bytes; the "
                               "rest of the file is skipped)"))
                error = True
            chunk_start = offset
            offset += len(data)
            prev_rem = sp.remainder
            records = sp.split(data) if data else sp.flush()
            consume_start = chunk_start - prev_rem
            consume_end = offset - sp.remainder
            if records:
                offs = record_offsets(records, hist, data, chunk_start, consume_start)
                if resume_at:
                    keep = [i for i, o in enumerate(offs) if o >= resume_at]
                    records = [records[i] for i in keep]
                    offs = [offs[i] for i in keep]
                for i in range(0, len(records), BATCH_RECORDS):
                    recs, os_ = records[i:i + BATCH_RECORDS], offs[i:i + BATCH_RECORDS]
                    msgs, held = fd.messages_of(recs, os_, key)
                    fd.records += len(recs)
                    if held is not None:
                        held_from = held
                    elif fd.decoder is None or not fd.decoder.holding:
                        held_from = None
                    nxt = offs[i + BATCH_RECORDS] if i + BATCH_RECORDS < len(offs) else \
                        consume_end
                    end = held_from if held_from is not None else nxt
                    msgs = fd.keep(msgs)
                    pre, per_index = pre_encode(encoders, msgs)
                    send("batch", (task.index, max(end, resume_at), len(recs),
                                   sum(map(len, recs)), raw.count, pack_batch(msgs, pre),
                                   per_index))
            hist = (hist + data)[-(1 << 20):] if data else hist
            if not data:
                break
        tail = fd.keep(fd.decoder.flush() if fd.decoder is not None else [])
        pre, per_index = pre_encode(encoders, tail)
        send("done", (task.index, offset, fd.records, raw.count, pack_batch(tail, pre),
                      per_index, fd.skipped_time, fd.decode_failures,
                      fd.first_failure, error))
    finally:
        raw.close()


def worker_main(config_path: str, hostname: str, since: int | None, until: int | None,
                tasks: Any, results: Any) -> None:
    """A worker process: files from `tasks` until None, batches to `results`."""
    from hekapy.collector.app.gc_tuning import tune_gc
    config = load_config(config_path, strict=True)
    tune_gc()

    def send(kind: str, payload: Any) -> None:
        results.put((kind, payload))

    while True:
        task = tasks.get()
        if task is None:
            results.put(("exit", os.getpid()))
            return
        send("start", task.index)  # before any batch of it: it holds the watermark
        try:
            replay_file(config, task, hostname, since, until, send)
        except Exception as e:  # reported with the file's name; the other files go on
            send("error", (task.index, f"{task.path}: {type(e).__name__}: {e}"))
            send("done", (task.index, 0, 0, 0, pack_batch([], []), {}, 0, 0, "", True))
