"""DiskBuffer: a durable FIFO of records for one output (`use_buffering`), so an
outage of the server fills a bounded file on disk instead of memory, and survives a
restart (docs/design.md, "Disk buffer"; docs/compatibility.md, "Disk buffering").

Layout, like Heka's: `<base_dir>/output_queue/<output>/` holds segment files
`<n>.log` and `checkpoint.txt` ("<segment> <offset>": the first byte not yet
acknowledged). A segment is a sequence of frames

    magic b"HK" | payload length (4 bytes, big endian) | crc32 of payload (4) | payload

and a new segment starts when the next frame would pass `max_file_size`.

- `append` writes and fsyncs in a worker thread, then returns: the caller may then
  acknowledge its input. When `max_buffer_size` (bytes not yet acknowledged) would be
  passed: `block` waits for acknowledgements, `drop` refuses the records (the caller
  counts them), `shutdown` raises BufferFull.
- `read` hands out records in order with a cursor each; `ack(cursor)` (in order) moves
  the checkpoint, written atomically (temporary file, fsync, rename) every
  `cursor_update_count` acknowledgements and at close. Segments wholly before it are
  deleted.
- A frame whose magic, length or checksum is wrong is skipped: the reader looks for the
  next magic whose frame checks out, counts what it skipped and logs it. A torn frame
  at the end of the newest segment (a crash during a write) is cut off at open.
- Memory stays bounded: frames are read in chunks, never a whole segment.
- A write that fails (no space left on the device, an I/O error) leaves nothing behind:
  what it wrote is cut off again, so the reader never meets a torn frame, and the caller
  is told nothing was stored. `block` then waits for the output to drain the buffer and
  starts a new segment (so the drained one can be deleted and its space reused) before
  trying again; `drop` refuses the records; `shutdown` raises BufferFull. A checkpoint
  that cannot be written is logged and tried again at the next acknowledgement (fully
  acknowledged segments are deleted first, which frees room for it; crash-safe, as the
  next open starts at the oldest segment left).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import struct
import zlib
from pathlib import Path

from hekapy.collector.engine.stats import RateLimitedLog

log = logging.getLogger(__name__)
limited_log = RateLimitedLog(log)
# While the buffer cannot be written, a new attempt at least this often (space may be
# freed by someone else) even if the output did not drain it meanwhile.
RETRY_WRITE_AFTER = 1.0

MAGIC = b"HK"
_HEADER = struct.Struct(">2sII")
HEADER_SIZE = _HEADER.size  # 10
MAX_RECORD = 64 << 20
_READ_CHUNK = 1 << 20


class BufferFull(Exception):
    """full_action = "shutdown" and the buffer reached max_buffer_size."""


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def buffer_dir(base_dir: str, output: str) -> Path:
    """Heka's location: non-word characters of the plugin name become "_"."""
    return Path(base_dir) / "output_queue" / re.sub(r"\W", "_", output)


class DiskBuffer:
    def __init__(self, path: str | os.PathLike, max_file_size: int = 512 << 20,
                 max_buffer_size: int = 0, full_action: str = "shutdown",
                 cursor_update_count: int = 1) -> None:
        self.path = Path(path)
        self.max_file_size = max(max_file_size, HEADER_SIZE + 1)
        self.max_buffer_size = max_buffer_size
        self.full_action = full_action
        self.cursor_update_count = max(1, cursor_update_count)
        self.corrupt_bytes = 0
        self.dropped = 0
        self._acks_since_checkpoint = 0
        self._closed = False
        self._data = asyncio.Event()
        self._space = asyncio.Event()
        self._drained = asyncio.Event()  # everything written is acknowledged
        self._write_lock = asyncio.Lock()
        self.write_failures = 0
        self.path.mkdir(parents=True, exist_ok=True)
        self._open()

    # --- opening: checkpoint, segments, torn tail -------------------------------------
    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.path.glob("*.log") if p.stem.isdigit())

    def _seg_path(self, n: int) -> Path:
        return self.path / f"{n}.log"

    def _open(self) -> None:
        segs = self._segments()
        ck = self.path / "checkpoint.txt"
        seg, off = (segs[0] if segs else 0), 0
        try:
            a, b = ck.read_text().split()
            seg, off = int(a), int(b)
        except FileNotFoundError:
            pass
        except ValueError:
            log.warning("%s: unreadable checkpoint, reading the buffer from its start "
                        "(records may be sent twice)", ck)
        if segs and seg < segs[0]:
            seg, off = segs[0], 0
        for n in segs:
            if n < seg:
                self._seg_path(n).unlink()
        segs = [n for n in segs if n >= seg]
        if segs:
            self._truncate_torn_tail(segs[-1])
        self.write_seg = segs[-1] if segs else seg
        # Unbuffered: a failed write must leave no bytes behind in a Python buffer.
        self._writer = open(self._seg_path(self.write_seg), "ab", buffering=0)
        self.write_offset = self._writer.tell()
        self.read_seg, self.read_offset = seg, off
        self.acked = (seg, off)
        self._checkpointed = (seg, off)
        self.size_bytes = sum(self._seg_path(n).stat().st_size for n in segs) - off
        self._reader: tuple[int, object] | None = None
        if self.size_bytes > 0:
            self._data.set()
        self._update_space()

    def _truncate_torn_tail(self, n: int) -> None:
        p = self._seg_path(n)
        size = p.stat().st_size
        pos = 0
        with open(p, "rb") as f:
            while pos + HEADER_SIZE <= size:
                f.seek(pos)
                magic, length, _crc = _HEADER.unpack(f.read(HEADER_SIZE))
                if magic != MAGIC or pos + HEADER_SIZE + length > size:
                    break
                pos += HEADER_SIZE + length
        # Only an incomplete last frame is cut; a bad frame followed by good ones is
        # left for the reader to skip (it may be mid-file corruption, not a tear).
        if pos < size and self._no_valid_frame_after(p, pos, size):
            log.warning("%s: cutting a torn record at the end (%d bytes)", p, size - pos)
            with open(p, "r+b") as f:
                f.truncate(pos)
                f.flush()
                os.fsync(f.fileno())

    @staticmethod
    def _no_valid_frame_after(p: Path, pos: int, size: int) -> bool:
        with open(p, "rb") as f:
            f.seek(pos + 1)
            rest = f.read(min(size - pos, MAX_RECORD + HEADER_SIZE))
        return _find_frame(rest, 0) is None

    # --- writing ----------------------------------------------------------------------
    def _update_space(self) -> None:
        if not self.max_buffer_size or self.size_bytes < self.max_buffer_size:
            self._space.set()
        else:
            self._space.clear()

    async def append(self, records: list[bytes]) -> bool:
        """Store `records` durably. False when full_action = "drop" refused them."""
        frames = [frame(r) for r in records]
        nbytes = sum(map(len, frames))
        async with self._write_lock:
            while self.max_buffer_size and self.size_bytes + nbytes > self.max_buffer_size \
                    and self.size_bytes > 0:
                if self.full_action == "drop":
                    self.dropped += len(records)
                    return False
                if self.full_action == "shutdown":
                    raise BufferFull(f"{self.path}: disk buffer full "
                                     f"({self.size_bytes} of {self.max_buffer_size} bytes)")
                self._space.clear()
                await self._space.wait()
            while True:
                try:
                    await asyncio.to_thread(self._write, frames)
                    break
                except OSError as e:
                    self.write_failures += 1
                    if self.full_action == "drop":
                        self.dropped += len(records)
                        limited_log(logging.ERROR, "%s: cannot write the disk buffer (%s): "
                                    "%d records dropped (full_action = drop)", self.path,
                                    e, len(records))
                        return False
                    if self.full_action == "shutdown":
                        raise BufferFull(f"{self.path}: cannot write the disk buffer: "
                                         f"{e}") from None
                    limited_log(logging.ERROR, "%s: cannot write the disk buffer (%s); "
                                "waiting for the output to drain it (full_action = block)",
                                self.path, e)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._drained.wait(), RETRY_WRITE_AFTER)
                    self._drained.clear()  # (set again by the next acknowledgement)
                    self._roll_if_drained()
            self.size_bytes += nbytes
            self._drained.clear()
            self._update_space()
            self._data.set()
        return True

    def _write(self, frames: list[bytes]) -> None:
        """All of `frames` or nothing. The reader trusts write_seg/write_offset: they
        move only once the bytes are fsynced."""
        start_seg, start_offset = self.write_seg, self.write_offset
        seg, offset = start_seg, start_offset
        chunk: list[bytes] = []
        try:
            for fr in frames:
                if offset and offset + len(fr) > self.max_file_size:
                    _write_all(self._writer, b"".join(chunk))
                    chunk = []
                    os.fsync(self._writer.fileno())
                    self._writer.close()
                    seg, offset = seg + 1, 0
                    self._writer = open(self._seg_path(seg), "ab", buffering=0)
                chunk.append(fr)
                offset += len(fr)
            _write_all(self._writer, b"".join(chunk))
            os.fsync(self._writer.fileno())
        except OSError:
            self._undo_write(start_seg, start_offset, seg)
            raise
        self.write_seg, self.write_offset = seg, offset

    def _undo_write(self, start_seg: int, start_offset: int, seg: int) -> None:
        """Back to where a failed write started: later segments it began are removed,
        the first one is cut at its old end (truncating needs no free space)."""
        with contextlib.suppress(OSError):
            self._writer.close()
        for n in range(start_seg + 1, seg + 1):
            with contextlib.suppress(OSError):
                self._seg_path(n).unlink()
        with contextlib.suppress(OSError):
            os.truncate(self._seg_path(start_seg), start_offset)
        self._writer = open(self._seg_path(start_seg), "ab", buffering=0)

    def _roll_if_drained(self) -> None:
        """After a failed write: when everything written is acknowledged, continue in a
        new segment so that the drained one is deleted and its space freed (a single
        segment is never deleted while it is being written)."""
        end = (self.write_seg, self.write_offset)
        if self.acked != end or self.write_offset == 0:
            return
        new = self.write_seg + 1
        with contextlib.suppress(OSError):
            self._writer.close()
        if self._reader is not None:  # an open file keeps its space after the unlink
            self._reader[1].close()  # type: ignore[attr-defined]
            self._reader = None
        self._writer = open(self._seg_path(new), "ab", buffering=0)
        if (self.read_seg, self.read_offset) == end:
            self.read_seg, self.read_offset = new, 0
        self.write_seg, self.write_offset = new, 0
        self.acked = (new, 0)
        self._write_checkpoint()

    # --- reading ----------------------------------------------------------------------
    def _has_data(self) -> bool:
        return (self.read_seg, self.read_offset) < (self.write_seg, self.write_offset)

    async def read(self, max_records: int = 1000, max_bytes: int = 4 << 20
                   ) -> list[tuple[tuple[int, int], bytes]]:
        """The next records with their cursors; waits for data; [] once closed."""
        while True:
            while not self._has_data():
                if self._closed:
                    return []
                self._data.clear()
                await self._data.wait()
            out = await asyncio.to_thread(self._read, max_records, max_bytes)
            if out or self._closed:
                return out
            # Only corrupt bytes were there: they are skipped, look again.

    def _segment_end(self, seg: int) -> int:
        if seg == self.write_seg:
            return self.write_offset
        return self._seg_path(seg).stat().st_size

    def _read(self, max_records: int, max_bytes: int) -> list[tuple[tuple[int, int], bytes]]:
        out: list[tuple[tuple[int, int], bytes]] = []
        got = 0
        while len(out) < max_records and got < max_bytes:
            seg = self.read_seg
            end = self._segment_end(seg)
            if self.read_offset >= end:
                if seg < self.write_seg:
                    self.read_seg, self.read_offset = seg + 1, 0
                    continue
                break
            f = self._read_handle(seg)
            f.seek(self.read_offset)
            chunk = f.read(min(end - self.read_offset, _READ_CHUNK))
            if len(chunk) >= HEADER_SIZE:
                magic, length, _crc = _HEADER.unpack_from(chunk, 0)
                if magic == MAGIC and length <= MAX_RECORD and \
                        len(chunk) < HEADER_SIZE + length <= end - self.read_offset:
                    chunk += f.read(HEADER_SIZE + length - len(chunk))  # one big record
            pos = 0
            while pos + HEADER_SIZE <= len(chunk) and len(out) < max_records \
                    and got < max_bytes:
                magic, length, crc = _HEADER.unpack_from(chunk, pos)
                frame_end = pos + HEADER_SIZE + length
                if magic == MAGIC and length <= MAX_RECORD:
                    if frame_end <= len(chunk):
                        payload = chunk[pos + HEADER_SIZE:frame_end]
                        if zlib.crc32(payload) == crc:
                            pos = frame_end
                            out.append(((seg, self.read_offset + pos), payload))
                            got += length
                            continue
                    elif self.read_offset + frame_end <= end:
                        break  # a whole frame past this chunk: the next read starts at it
                # Corrupt bytes: resume at the next magic (checked like any frame).
                nxt = chunk.find(MAGIC, pos + 1)
                skip_to = nxt if nxt >= 0 else (
                    len(chunk) if self.read_offset + len(chunk) >= end else len(chunk) - 1)
                self.corrupt_bytes += skip_to - pos
                log.error("%s: skipped %d corrupt bytes at %d.log offset %d", self.path,
                          skip_to - pos, seg, self.read_offset + pos)
                pos = skip_to
            if pos + HEADER_SIZE > len(chunk) and self.read_offset + len(chunk) >= end \
                    and pos < len(chunk):
                # Fewer bytes than a header left at the end of a finished segment.
                self.corrupt_bytes += len(chunk) - pos
                pos = len(chunk)
            self.read_offset += pos
            if pos == 0:
                break
        return out

    def _read_handle(self, seg: int):
        if self._reader is None or self._reader[0] != seg:
            if self._reader is not None:
                self._reader[1].close()  # type: ignore[attr-defined]
            self._reader = (seg, open(self._seg_path(seg), "rb"))
        return self._reader[1]

    # --- acknowledging ------------------------------------------------------------------
    def ack(self, cursor: tuple[int, int]) -> None:
        """Every record up to `cursor` is handled (calls come in order). Never raises:
        it runs inside the output's acknowledgements."""
        old_seg, old_off = self.acked
        seg, off = cursor
        if (seg, off) <= self.acked:
            return
        if seg == old_seg:
            freed = off - old_off
        else:
            freed = off + sum(max(0, _size(self._seg_path(n))) for n in range(old_seg, seg)) \
                - old_off
        self.acked = (seg, off)
        self.size_bytes -= freed
        self._update_space()
        if self.acked == (self.write_seg, self.write_offset):
            self._drained.set()
        self._acks_since_checkpoint += 1
        if self._acks_since_checkpoint >= self.cursor_update_count:
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        self._acks_since_checkpoint = 0
        if self.acked == self._checkpointed:
            return
        seg, off = self.acked
        # Segments wholly acknowledged go first: their space makes room for the new
        # checkpoint on a full disk, and a crash in between is safe (a checkpoint naming
        # a deleted segment starts at the oldest one left, which is where `acked` is).
        for n in range(self._checkpointed[0], seg):
            if n != self.write_seg:
                with contextlib.suppress(FileNotFoundError):
                    self._seg_path(n).unlink()
        tmp = self.path / "checkpoint.txt.tmp"
        try:
            with open(tmp, "w") as f:
                f.write(f"{seg} {off}")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / "checkpoint.txt")
            dfd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:  # tried again at the next acknowledgement or at close
            limited_log(logging.ERROR, "%s: cannot write the checkpoint: %s", self.path, e)
            return
        self._checkpointed = (seg, off)

    def stop_reading(self) -> None:
        """Readers get [] from now on (stopping); appends and acks still work."""
        self._closed = True
        self._data.set()

    def close(self) -> None:
        """Stop handing out records and save the checkpoint."""
        self.stop_reading()
        self._write_checkpoint()
        self._writer.close()
        if self._reader is not None:
            self._reader[1].close()  # type: ignore[attr-defined]
            self._reader = None


def _write_all(f: object, data: bytes) -> None:
    """An unbuffered file's write() may write less than asked."""
    view = memoryview(data)
    while view:
        n = f.write(view)  # type: ignore[attr-defined]
        view = view[n:]


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _find_frame(data: bytes, start: int) -> int | None:
    """Offset of the next frame in `data` whose magic and checksum check out."""
    pos = data.find(MAGIC, start)
    while pos >= 0:
        if pos + HEADER_SIZE <= len(data):
            _m, length, crc = _HEADER.unpack_from(data, pos)
            end = pos + HEADER_SIZE + length
            if length <= MAX_RECORD and end <= len(data) \
                    and zlib.crc32(data[pos + HEADER_SIZE:end]) == crc:
                return pos
        pos = data.find(MAGIC, pos + 1)
    return None
