"""Reading one stream: its open file, resume, rotation and truncation, as Heka's
logstreamer package did (https://github.com/mozilla-services/heka/tree/v0.10.0/logstreamer).

Synchronous and free of asyncio: the plugin calls `StreamReader.next()` from its loop;
every call does a bounded amount of I/O (one chunk of at most `READ_SIZE` bytes).

A stream reads one current file. Positions are logical offsets: decompressed bytes for
a gzip file (recognised by its magic bytes, whatever its name), so a history file keeps
its offsets when logrotate compresses it.

How the live file is followed, checked whenever a read finds no more data:

- *rename rotation* (`create`): the path now names another inode. The open descriptor is
  drained; its new name is found by device+inode among the stream's files (and
  journaled). Once it has stayed at EOF for `switch_wait` and a newer file exists, the
  stream moves to that file at offset 0. The file it left *lingers* (below).
- *copytruncate* / *in-place truncation*: the descriptor's size dropped below the offset,
  or the 500 bytes before the offset changed. The stream looks for those 500 bytes at the
  same offset in its other files (newest first), so the bytes written between the last
  read and the truncation are read from the copy, then the truncated file is read from 0.
  Without a copy it restarts the file at 0 and says what may have been lost.
- *deleted while open*: the descriptor stays readable; it is drained and kept until a
  newer file (or a file of the same name) appears.
- *replaced by a file of the same name*: the old descriptor is drained, then the new
  file is read from 0.
- *a newer file in priority order* (dated files): switch after `switch_wait` at EOF.

Lingering (`rotate_wait`, Fluent Bit's key and default): a writer may go on writing to
its old descriptor after the stream has moved on (it reopens its log only when
logrotate's signal reaches it, or slowly). So a plain file the stream leaves (renamed,
replaced, deleted or overtaken by a newer file; not a truncated one, nor gzip history)
stays open and is read for what it gains (`read_lingering`) until it has not changed
for `rotate_wait`, then is released (`release`); one whose mtime is older than that
already is closed at once. Those late lines come after lines already read from the
newer file, as in Fluent Bit. At most `MAX_LINGERING` files per stream linger: beyond
that the oldest is released once read to its end, so descriptors stay bounded when
rotations come faster than `rotate_wait`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from hekapy.collector.inputs.logstreamer.discovery import Logfile
from hekapy.collector.inputs.logstreamer.journal import HASH_WINDOW, Position, window_hash

READ_SIZE = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
# The file identity for Uuids is the file's first line, up to this many bytes.
FINGERPRINT_MAX = 1024
_GZ_IN = 1 << 18
# Files a stream keeps open after leaving them, at most (see Lingering above).
MAX_LINGERING = 8
# Directory scans a truncated file's copy, or a renamed file's new name, is looked for in
# before giving up on it.
COPY_SCANS = 3


class OpenFile:
    """One open log file: descriptor, logical offset and the bytes just before it."""

    __slots__ = ("_dec", "_fp", "_fp_final", "_raw_pos", "_zin", "dev", "fd", "gz", "ino",
                 "key", "offset", "path", "window")

    def __init__(self, path: str, fd: int, st: os.stat_result, gz: bool, key: tuple = ()
                 ) -> None:
        self.path = path
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.gz = gz
        self.key = key
        self.offset = 0
        self.window = b""
        self._dec = zlib.decompressobj(31) if gz else None
        self._zin = b""
        self._raw_pos = 0
        self._fp = b""
        self._fp_final = False

    @classmethod
    def open(cls, path: str, key: tuple = ()) -> OpenFile:
        """Open a regular file for reading (raises OSError)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{path} is not a regular file")
            gz = os.pread(fd, 2, 0) == GZIP_MAGIC
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, st, gz, key)

    def same_inode(self, st: os.stat_result | None) -> bool:
        return st is not None and st.st_dev == self.dev and st.st_ino == self.ino

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    # --- reading -------------------------------------------------------------------------
    def read(self, n: int = READ_SIZE) -> bytes:
        """Up to `n` bytes at the offset (decompressed for gzip); b"" at EOF."""
        if self.gz:
            data = self._read_gz(n)
        else:
            data = os.pread(self.fd, n, self.offset)
        self._consumed(data)
        return data

    def _consumed(self, data: bytes) -> None:
        """Advance past `data`, keeping the last HASH_WINDOW bytes read."""
        if data:
            self.offset += len(data)
            if len(data) >= HASH_WINDOW:
                self.window = data[-HASH_WINDOW:]
            else:
                self.window = (self.window + data)[-HASH_WINDOW:]

    def read_verified(self, n: int = READ_SIZE) -> bytes | None:
        """Like read() for a plain file, but None (and nothing consumed) when the bytes
        before the offset are no longer the ones read: the file was truncated and
        written again. Checked after the read, so a truncation racing the read is
        caught too (the chunk is then read again from the copy)."""
        data = os.pread(self.fd, n, self.offset)
        if data and not self.window_intact():
            return None
        self._consumed(data)
        return data

    def _read_gz(self, n: int) -> bytes:
        # Output is capped at n per call so a gzip bomb or a huge line costs bounded memory.
        dec = self._dec
        assert dec is not None  # a gzip file has its decompressor from the start
        while True:
            if dec.eof:
                rest = dec.unused_data + self._zin
                self._zin = b""
                if not rest.lstrip(b"\0"):
                    # Trailing NUL padding after the last member is allowed.
                    more = os.pread(self.fd, _GZ_IN, self._raw_pos)
                    if not more:
                        return b""
                    self._raw_pos += len(more)
                    rest = rest + more
                    if not rest.lstrip(b"\0"):
                        continue
                # Another member follows: gzip files may be concatenated.
                dec = self._dec = zlib.decompressobj(31)
                self._zin = rest.lstrip(b"\0")
            data = self._zin or dec.unconsumed_tail
            self._zin = b""
            if not data:
                data = os.pread(self.fd, _GZ_IN, self._raw_pos)
                if not data:
                    return b""  # an incomplete member: wait for more, like a live file
                self._raw_pos += len(data)
            try:
                out = dec.decompress(data, n)
            except zlib.error as e:
                raise OSError(f"{self.path}: corrupt gzip data: {e}") from None
            if out:
                return out

    def seek_to(self, pos: int) -> bool:
        """From a fresh open, move to logical offset `pos`, filling the hash window.
        False when the file is shorter than `pos`."""
        if pos <= 0:
            return True
        if not self.gz:
            if self.size() < pos:
                return False
            k = min(HASH_WINDOW, pos)
            w = os.pread(self.fd, k, pos - k)
            if len(w) != k:
                return False
            self.window = w
            self.offset = pos
            return True
        while self.offset < pos:
            if not self.read(min(READ_SIZE, pos - self.offset)):
                return False
        return True

    def seek_to_end(self) -> None:
        if self.gz:
            while self.read(READ_SIZE):
                pass
        else:
            self.seek_to(self.size())

    def window_intact(self) -> bool:
        """Do the bytes before the offset still read as we read them? (no truncation)"""
        w = self.window
        if not w:
            return True
        try:
            return os.pread(self.fd, len(w), self.offset - len(w)) == w
        except OSError:
            return False

    def fingerprint(self) -> bytes:
        """The file's identity for Uuids: its first line (with the newline), at most
        FINGERPRINT_MAX bytes. It survives rename, copy and compression; it is final
        once a newline or FINGERPRINT_MAX bytes exist."""
        if self._fp_final:
            return self._fp
        head = b""
        with contextlib.suppress(OSError, zlib.error):
            if self.gz:
                head = zlib.decompressobj(31).decompress(os.pread(self.fd, 1 << 16, 0),
                                                         FINGERPRINT_MAX)
            else:
                head = os.pread(self.fd, FINGERPRINT_MAX, 0)
        nl = head.find(b"\n")
        if nl >= 0:
            head = head[: nl + 1]
            self._fp_final = True
        elif len(head) >= FINGERPRINT_MAX:
            self._fp_final = True
        self._fp = head
        return head

    @property
    def fingerprint_final(self) -> bool:
        return self._fp_final

    def reopen_at_zero(self) -> OpenFile:
        """The same inode from offset 0 (after an in-place truncation)."""
        fd = os.dup(self.fd)
        f = OpenFile(self.path, fd, os.fstat(fd), False, self.key)
        return f

    def position(self) -> Position:
        return Position(self.offset, self.path, window_hash(self.window))


def open_at(path: str, seek: int, last_hash: str, key: tuple = ()) -> OpenFile | None:
    """Open `path` at `seek` if the 500 bytes before it hash to `last_hash` (Heka's
    SeekInFile; offset 0 needs no check). None when it does not match or cannot open."""
    try:
        f = OpenFile.open(path, key)
    except OSError:
        return None
    try:
        if seek == 0:
            return f
        if f.seek_to(seek) and window_hash(f.window) == last_hash:
            return f
    except OSError:
        pass
    f.close()
    return None


@dataclass
class Switched:
    """The stream left `old` for the reader's new current file at offset 0. When
    `lingering`, `old` stays open in `StreamReader.lingering` (its incomplete last record
    may still be completed); otherwise it is closed and whatever the splitter holds from
    it is its incomplete last record."""

    old: OpenFile
    reason: str
    lingering: bool = False


@dataclass(eq=False)
class Lingering:
    """A file the stream left, still read for late writes."""

    file: OpenFile
    changed: float  # monotonic time it was left or last grew
    # Under one of the stream's names now (so a restart can resume it from the journal);
    # False once deleted or renamed out of the stream.
    findable: bool
    late_bytes: int = 0
    broken: str = ""  # why it cannot be read on (truncated, rewritten): release it now


class StreamReader:
    """The files of one stream and the one that is open."""

    def __init__(self, name: str, files: list[Logfile], *, switch_wait: float,
                 rotate_wait: float = 0.0, max_lingering: int = MAX_LINGERING,
                 refresh: Callable[[bool], list[Logfile] | None] | None = None,
                 log: logging.Logger | None = None) -> None:
        self.name = name
        self.files = files
        self.switch_wait = switch_wait
        self.rotate_wait = rotate_wait  # 0: a file left is closed at once (Heka)
        self.max_lingering = max(1, max_lingering)
        # Files left but still read, oldest first (see Lingering in the module doc).
        self.lingering: list[Lingering] = []
        # refresh(force): rescan the directory (throttled unless forced); None if it
        # did not (then the files are as they were).
        self.refresh = refresh or (lambda force: None)
        self.log = log or logging.getLogger("hekapy.logstreamer")
        self.cur: OpenFile | None = None
        self.at_eof = False
        self.eof_since: float | None = None
        self.started = False
        self.counters = {"rotations": 0, "truncations": 0, "relocations": 0,
                         "replays": 0, "lingered": 0, "late_bytes": 0}

    # --- setup ---------------------------------------------------------------------------
    def set_files(self, files: list[Logfile]) -> None:
        self.files = files
        for lf in self.lingering:
            self._locate(lf)

    def _key_of(self, path: str) -> tuple:
        for lf in self.files:
            if lf.path == path:
                return lf.key
        return self.cur.key if self.cur is not None else ()

    def start(self, pos: Position | None, initial_tail: bool) -> str | None:
        """Open the stream where the journal says (docs/compatibility.md,
        "LogstreamerInput"). Returns how it started: "journal", "relocated",
        "renamed-out" (the journaled file found under a name outside the stream: it
        lingers, `lingering`), "replay", "oldest", "tail", or None with no files."""
        files = self.files
        if not files:
            return None
        self.started = True
        if pos is not None and not pos.is_zero():
            if any(lf.path == pos.file_name for lf in files):
                f = open_at(pos.file_name, pos.seek, pos.last_hash, self._key_of(pos.file_name))
                if f is not None:
                    self.cur = f
                    return "journal"
            # Renamed while we were down: find the 500 bytes before seek, newest first.
            for lf in reversed(files):
                if lf.path == pos.file_name:
                    continue
                f = open_at(lf.path, pos.seek, pos.last_hash, lf.key)
                if f is not None:
                    self.cur = f
                    self.counters["relocations"] += 1
                    return "relocated"
            left = self._renamed_out(pos) if pos.seek > 0 else []
            if left:
                # Renamed out of file_match (logrotate's x.log → x.log.1 where the
                # stream has no sequence group) between a stop and this start: its rest,
                # and the whole of the files rotated out after it, are read as lingering
                # files, the stream's files from the oldest.
                self.log.info("%s: journaled position %s@%d found in %s, renamed out of "
                              "the stream: reading its rest%s, and the stream from its "
                              "oldest file", self.name, pos.file_name, pos.seek,
                              left[0].path, "".join(f", all of {f.path}" for f in left[1:]))
                now = time.monotonic()
                self.lingering += [Lingering(f, now, False) for f in left]
                self.counters["relocations"] += 1
                how = "renamed-out"
            else:
                self.log.warning("%s: journaled position %s@%d not found in any file of "
                                 "the stream; reading it again from its oldest file",
                                 self.name, pos.file_name, pos.seek)
                self.counters["replays"] += 1
                how = "replay"
        elif initial_tail and pos is None:
            lf = files[-1]
            try:
                f = OpenFile.open(lf.path, lf.key)
                f.seek_to_end()
            except OSError as e:
                self.log.error("%s: cannot open %s: %s", self.name, lf.path, e)
                self.started = False
                return None
            self.cur = f
            return "tail"
        else:
            how = "oldest"
        lf = files[0]
        try:
            self.cur = OpenFile.open(lf.path, lf.key)
        except OSError as e:
            self.log.error("%s: cannot open %s: %s", self.name, lf.path, e)
            self.started = False
            return None
        return how

    def close(self) -> None:
        if self.cur is not None:
            self.cur.close()
        for lf in self.lingering:
            lf.file.close()
        self.lingering = []

    # --- reading -------------------------------------------------------------------------
    def next(self, now: float, n: int = READ_SIZE) -> bytes | Switched | None:
        """The next chunk of the current file, a Switched event, or None: nothing to
        read now (wait for a wake-up)."""
        f = self.cur
        if f is None or f.fd < 0:
            return None
        data: bytes | None
        if f.gz:
            data = f.read(n)
        else:
            size = f.size()
            if (size == f.offset and self.eof_since is not None
                    and now - self.eof_since < self.switch_wait):
                return None  # still waiting to leave this file; nothing new in it
            if size < f.offset:
                return self._truncated(now, n)
            if size == f.offset:
                self.at_eof = True
                return self._at_eof(now, n)
            data = f.read_verified(n)
            if data is None:
                # The bytes before the offset changed: truncated and written again.
                return self._truncated(now, n)
        if data:
            self.at_eof = False
            self.eof_since = None
            return data
        self.at_eof = True
        return self._at_eof(now, n)

    def _at_eof(self, now: float, n: int) -> bytes | Switched | None:
        f = self.cur
        assert f is not None
        state = self._follow(f)
        succ = self._successor(f, state)
        if succ is None:
            self.eof_since = None
            return None
        # Heka's "second EOF". A file written to moments ago may still get the writer's
        # last lines (it reopens its log after logrotate's signal): wait `switch_wait`
        # at EOF before leaving it. A file nobody wrote to lately is left at once.
        if self._recently_written(f):
            if self.eof_since is None:
                self.eof_since = now
                return None
            if now - self.eof_since < self.switch_wait:
                return None
        self.eof_since = None
        if not f.gz and f.size() != f.offset:
            return self.next(now, n)  # it grew meanwhile: read that first
        if state == "gone":
            # Decide on a fresh list: after several quick rotations the file now under
            # our old name may be many files ahead of the ones renamed in between.
            state = self._follow(f, force=True)
            succ = self._successor(f, state)
            if succ is None:
                return None
        try:
            new = OpenFile.open(succ.path, succ.key)
        except OSError as e:
            self.log.error("%s: cannot open %s: %s", self.name, succ.path, e)
            return None
        if new.same_inode(os.fstat(f.fd)):
            new.close()  # the list was stale; nothing newer after all
            return None
        self.cur = new
        self.at_eof = False
        self.counters["rotations"] += 1
        reason = "rotated" if state != "same" else "next file"
        lingering = self._leave(f, now, findable=state != "gone")
        self.log.info("%s: finished %s at %d%s; now reading %s", self.name, f.path,
                      f.offset, " (kept open for late writes)" if lingering else "",
                      new.path)
        return Switched(f, reason, lingering)

    # --- lingering -----------------------------------------------------------------------
    def _leave(self, f: OpenFile, now: float, findable: bool) -> bool:
        """The stream moved on from `f`: keep it open for late writes, or close it."""
        try:
            quiet = time.time() - os.fstat(f.fd).st_mtime
        except OSError:
            quiet = 0.0
        # Gzip history is never written to again; a file unchanged for rotate_wait
        # already (history read at start-up, a backlog) needs no wait either.
        if self.rotate_wait <= 0 or f.gz or quiet >= self.rotate_wait:
            f.close()
            return False
        self.lingering.append(Lingering(f, now, findable))
        self.counters["lingered"] += 1
        return True

    def _locate(self, lf: Lingering) -> None:
        """Follow a lingering file's renames among the stream's files (its journaled
        name must be where a restart can find it)."""
        f = lf.file
        paths = [x.path for x in self.files]
        lf.findable = (f.path in paths and f.same_inode(self._stat(f.path))) \
            or self._found_renamed(f)

    def adopt(self, positions: list[Position], now: float) -> list[Lingering]:
        """After a restart, open again the files the stream still read for late writes
        (the journal's lingering positions, older files than the current one), each at
        its position: under its name, or found by the 500 bytes before it among the
        stream's files (renamed while we were down). They linger rotate_wait from now."""
        taken = [self.cur] if self.cur is not None else []
        out: list[Lingering] = []
        names = {lf.path for lf in self.files}
        for pos in positions:
            f = None
            if pos.file_name in names:
                f = open_at(pos.file_name, pos.seek, pos.last_hash,
                            self._key_of(pos.file_name))
            if f is None and pos.seek > 0:  # at 0 every file would match
                for lf in reversed(self.files):
                    if lf.path != pos.file_name:
                        f = open_at(lf.path, pos.seek, pos.last_hash, lf.key)
                        if f is not None:
                            break
            if f is not None and any(f.same_inode(os.fstat(g.fd)) for g in taken):
                f.close()
                f = None
            if f is None:
                self.log.warning("%s: %s@%d, still read for late writes when the stream "
                                 "stopped, is not in any file of the stream now; what was "
                                 "written to it after that is not read", self.name,
                                 pos.file_name, pos.seek)
                continue
            adopted = Lingering(f, now, True)
            self.lingering.append(adopted)
            taken.append(f)
            out.append(adopted)
        return out

    def read_lingering(self, lf: Lingering, now: float, n: int = READ_SIZE) -> bytes:
        """The next chunk a lingering file gained (b"" when none)."""
        f = lf.file
        if lf.broken or f.fd < 0:
            return b""
        try:
            size = f.size()
            if size == f.offset:
                return b""
            data = f.read_verified(n) if size > f.offset else None
        except OSError as e:
            lf.broken = str(e)
            return b""
        if data is None:
            # Its bytes are not the ones read any more: what it holds now is not ours.
            lf.broken = "truncated"
            self.log.warning("%s: %s was truncated while kept open after the rotation; "
                             "closing it at %d", self.name, f.path, f.offset)
            return b""
        if data:
            lf.changed = now
            lf.late_bytes += len(data)
            self.counters["late_bytes"] += len(data)
        return data

    def lingering_grew(self) -> bool:
        """Has a lingering file something to read? (the poll's safety net)"""
        for lf in self.lingering:
            try:
                if not lf.broken and lf.file.size() != lf.file.offset:
                    return True
            except OSError:
                return True  # read_lingering marks it broken
        return False

    def release(self, now: float) -> list[Lingering]:
        """Take out the lingering files that are done: read to their end and unchanged
        for `rotate_wait`, broken, or beyond `max_lingering` (the oldest first). They
        are still open: the caller finishes their last record, then closes them."""
        out: list[Lingering] = []
        keep: list[Lingering] = []
        excess = len(self.lingering) - self.max_lingering
        for lf in self.lingering:
            f = lf.file
            try:
                at_end = bool(lf.broken) or f.fd < 0 or f.size() == f.offset
            except OSError:
                at_end = True
            if at_end and (lf.broken or excess > 0 or now - lf.changed >= self.rotate_wait):
                excess -= 1
                out.append(lf)
                if lf.late_bytes:
                    self.log.info("%s: closed %s at %d; %d bytes were written to it after "
                                  "the rotation", self.name, f.path, f.offset,
                                  lf.late_bytes)
            else:
                keep.append(lf)
        self.lingering = keep
        return out

    def next_release(self) -> float | None:
        """When the earliest lingering file may be released, if any lingers."""
        return min((lf.changed + self.rotate_wait for lf in self.lingering), default=None)

    def _recently_written(self, f: OpenFile) -> bool:
        try:
            mtime = os.fstat(f.fd).st_mtime
        except OSError:
            return False
        return time.time() - mtime < 2 * self.switch_wait + 1.0

    def _stat(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(path)
        except OSError:
            return None

    def _follow(self, f: OpenFile, force: bool = False) -> str:
        """Where the open file is now: "same" (still at its path), "renamed" (found under
        another name of the stream; `f.path` updated) or "gone" (deleted, or renamed out
        of the stream)."""
        if f.same_inode(self._stat(f.path)):
            return "same"
        # The list we have, then fresh scans: like the copy search, a scan during the
        # writer's next shift of names can miss the one our file has now.
        for attempt in range(COPY_SCANS):
            if self._found_renamed(f):
                return "renamed"
            if attempt < COPY_SCANS - 1:
                fresh = self.refresh(force)
                if fresh is None:
                    break
                self.files = fresh
        return "gone"

    def _renamed_out(self, pos: Position, most: int = 8) -> list[OpenFile]:
        """The journaled file under a rotated name that is not the stream's (`name.1`,
        `name-20251123`: logrotate's), found by the 500 bytes before the journaled
        offset and opened there, then the uncompressed files rotated out after it
        (written later), opened at their start; [] when not found. The `most` newest
        such names are tried."""
        folder, base = os.path.split(pos.file_name)
        names = {lf.path for lf in self.files}
        found: list[tuple[float, str]] = []
        try:
            for e in os.scandir(folder or "."):
                if e.name != base and e.name.startswith((base + ".", base + "-")) \
                        and e.path not in names and e.is_file():
                    found.append((e.stat().st_mtime, e.path))
        except OSError:  # the directory, or a file in it, went away: nothing found
            return []
        newest = [path for _mtime, path in sorted(found, reverse=True)[:most]]
        for i, path in enumerate(newest):
            f = open_at(path, pos.seek, pos.last_hash)
            if f is None:
                continue
            later = []
            for other in reversed(newest[:i]):  # oldest first
                if not other.endswith((".gz", ".bz2", ".xz", ".zst")):
                    g = open_at(other, 0, "")
                    if g is not None:
                        later.append(g)
            return [f, *later]
        return []

    def _found_renamed(self, f: OpenFile) -> bool:
        """Is `f` under another of the stream's names now? Then `f` takes that name."""
        for lf in self.files:
            if lf.path != f.path and f.same_inode(self._stat(lf.path)):
                self.log.info("%s: %s was renamed to %s", self.name, f.path, lf.path)
                f.path = lf.path
                f.key = lf.key
                return True
        return False

    def _successor(self, f: OpenFile, state: str) -> Logfile | None:
        files = self.files
        if state != "gone":
            for i, lf in enumerate(files):
                if lf.path == f.path:
                    return files[i + 1] if i + 1 < len(files) else None
        # Not in the list: the next file is where our last name would sort (a file of
        # the same name, if it was replaced).
        mark = (f.key, f.path)
        for lf in files:
            if (lf.key, lf.path) >= mark and not f.same_inode(self._stat(lf.path)):
                return lf
        return None

    def _truncated(self, now: float, n: int) -> bytes | Switched | None:
        f = self.cur
        assert f is not None
        self.counters["truncations"] += 1
        want = window_hash(f.window)
        # copytruncate: the bytes up to the truncation are in a copy, at the same offsets.
        # The copy may be a new file: always scan. A scan while the writer shifts its
        # rotated files (the next rotation, when we are behind) misses the names renamed
        # between its listing and their stat: look again before giving up.
        for _ in range(COPY_SCANS):
            fresh = self.refresh(True)
            if fresh is not None:
                self.files = fresh
            for lf in reversed(self.files):
                if f.same_inode(self._stat(lf.path)):
                    continue
                g = open_at(lf.path, f.offset, want, lf.key)
                if g is None:
                    continue
                self.log.info("%s: %s was truncated; continuing at %d in its copy %s",
                              self.name, f.path, f.offset, lf.path)
                self.counters["relocations"] += 1
                self.cur = g
                self.at_eof = False
                f.close()
                return self.next(now, n)
            if fresh is None:
                break  # no rescan to be had: the list will not change
        self.log.warning("%s: %s was truncated at offset %d and no copy holds what followed; "
                         "reading it again from 0 (lines written between the last read and "
                         "the truncation may be lost)", self.name, f.path, f.offset)
        new = f.reopen_at_zero()
        self.cur = new
        self.at_eof = False
        self.eof_since = None
        f.close()
        return Switched(f, "truncated")
