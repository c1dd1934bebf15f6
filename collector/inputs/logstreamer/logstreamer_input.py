"""LogstreamerInput: Heka's log tailer, with end-to-end acknowledgements and
deterministic Uuids. Heka's documentation of it:
https://hekad.readthedocs.io/en/v0.10.0/config/inputs/logstreamer.html

The plugin owns the loop: it schedules streams (woken by inotify or by the poll), reads
big chunks through each stream's reader, splits them in bulk, turns the records into
messages and delivers them in batches. Discovery (discovery.py), the journal
(journal.py), the reader (reader.py) and the watcher (watcher.py) are separate modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import heapq
import logging
import os
import time
from collections import deque
from itertools import accumulate
from types import SimpleNamespace
from typing import Any, NamedTuple

from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.plugin import Input, Option, OptionError, register
from hekapy.collector.engine.regex import compile_regex
from hekapy.collector.inputs.logstreamer.discovery import (
    Discovery,
    Logfile,
    ScanResult,
    check_translation,
    full_file_match,
)
from hekapy.collector.inputs.logstreamer.journal import (
    HASH_WINDOW,
    Journal,
    JournalError,
    Position,
    window_hash,
)
from hekapy.collector.inputs.logstreamer.reader import READ_SIZE, OpenFile, StreamReader, Switched
from hekapy.collector.inputs.logstreamer.watcher import Watcher

# A stream reads at most this much per turn, so one busy file cannot starve the others.
PUMP_BYTES = 8 * READ_SIZE
# Records per delivered batch (a 1 MiB chunk of short lines is cut in several batches).
MAX_BATCH_RECORDS = 4096
# Acknowledged positions are journaled once a second (and at stop), or as soon as this
# many bytes were acknowledged since the last write: after a crash, at most about that
# much is read (and sent) again, whatever the rate.
JOURNAL_INTERVAL = 1.0
JOURNAL_BYTES = 4 << 20
# With inotify, the safety poll (files renamed out of sight, missed events) runs at most
# this often; without it, every `check_data_interval`.
INOTIFY_POLL_INTERVAL = 1.0
# A file written line by line wakes the stream on every write; wake-ups closer than this
# to the previous read are merged, so each read (and batch) carries more lines.
COALESCE = 0.01

_UUID_CLEAR = ~((0xF0 << 72) | (0xC0 << 56)) & ((1 << 128) - 1)
_UUID_SET = (0x50 << 72) | (0x80 << 56)


def identity_key(hostname: str, stream: str, fingerprint: bytes) -> int:
    """The Uuid base of one file: SHA-1 of (hostname, stream, the file's first line),
    shaped as a version-5 UUID. A record's Uuid is this XOR its start offset (offsets
    below 2**56 touch only the last 7 bytes, so version and variant bits survive)."""
    h = hashlib.sha1(b"hekapy-logstreamer\0" + hostname.encode("utf-8", "surrogateescape")
                     + b"\0" + stream.encode("utf-8", "surrogateescape") + b"\0"
                     + fingerprint).digest()[:16]
    return (int.from_bytes(h, "big") & _UUID_CLEAR) | _UUID_SET


def record_uuid(key: int, offset: int) -> bytes:
    return (key ^ offset).to_bytes(16, "big")


def _span(hist: bytes, data: bytes, chunk_start: int, p0: int, p1: int) -> bytes:
    """Stream bytes [p0, p1) from `hist` (the bytes just before chunk_start) + `data`."""
    h0 = chunk_start - len(hist)
    p0 = max(p0, h0)
    if p1 <= p0:
        return b""
    if p0 >= chunk_start:
        return data[p0 - chunk_start: p1 - chunk_start]
    if p1 <= chunk_start:
        return hist[p0 - h0: p1 - h0]
    return hist[p0 - h0:] + data[: p1 - chunk_start]


def record_offsets(records: list[bytes], hist: bytes, data: bytes, chunk_start: int,
                   consume_start: int) -> list[int]:
    """Start offset of each record. Records normally tile the consumed bytes (a
    TokenSplitter keeps its delimiter); when they do not (a discarded delimiter, a
    dropped over-long record) each record is looked up in the bytes, in order."""
    consumed_end = chunk_start + len(data)
    offs = list(accumulate(map(len, records), initial=consume_start))
    if offs[-1] <= consumed_end and _tiles(records, hist, data, chunk_start, offs):
        offs.pop()
        return offs
    buf = _span(hist, data, chunk_start, consume_start, consumed_end)
    cur = 0
    out = []
    for r in records:
        j = cur if buf.startswith(r, cur) else buf.find(r, cur)
        if j < 0:
            j = cur  # e.g. a truncated record: estimate, but stay deterministic and ordered
        out.append(consume_start + j)
        cur = j + len(r)
    return out


def _tiles(records: list[bytes], hist: bytes, data: bytes, chunk_start: int,
           offs: list[int]) -> bool:
    # Cheap check that the records are the consumed bytes back to back: the last record
    # must end where the consumed bytes end (the caller checked the total length).
    last = records[-1]
    end = offs[-1]
    return _span(hist, data, chunk_start, end - len(last), end) == last


class StreamPosition(NamedTuple):
    """Where a stream's reading stands in one of its files: what the input hands the
    pipeline with each batch and gets back once the batch is acknowledged. A tuple, as
    one is made per delivered batch."""

    stream: str
    file: OpenFile
    offset: int  # logical: decompressed bytes for a .gz file
    last_hash: str  # Heka's hash of the 500 bytes before `offset`
    # The number of its delivery among the input's (0: where reading began, never
    # delivered). Acknowledgements come in delivery order: once one is acknowledged,
    # every position with a smaller `n` is too, whether or not it was reported itself.
    n: int = 0


class _Tail:
    """The plugin's side of one open file of a stream: its splitter (the file's
    incomplete last record), the bytes it still needs, and the positions delivered from
    it and acknowledged. A stream has one for its current file and one for each file it
    left that still lingers or has batches in flight."""

    __slots__ = ("acked", "closed", "delivered", "file", "former", "history", "id_final",
                 "id_key", "id_set", "last_data", "oversized", "splitter", "start")

    def __init__(self, f: OpenFile, splitter: Any, start: StreamPosition) -> None:
        self.file = f
        self.splitter = splitter
        # The last (held + 500) bytes read: hash windows and the held record's bytes.
        self.history = f.window
        self.last_data = time.monotonic()
        self.start = start  # where reading began: its journal position until an ack
        self.delivered: StreamPosition | None = None
        self.acked: StreamPosition | None = None
        self.closed = False
        # Files it read before the reader moved it into a copy with the same bytes
        # (copytruncate); their batches may still be in flight.
        self.former: list[OpenFile] = []
        self.id_key = 0
        self.id_set = False
        self.id_final = False
        self.oversized = 0  # the splitter's dropped + truncated count already reported

    def relocated(self, f: OpenFile) -> None:
        """The reader goes on in `f`, a copy holding the same bytes at the same offsets."""
        if f is not self.file:
            self.former.append(self.file)
            self.file = f

    def has(self, f: OpenFile) -> bool:
        return f is self.file or any(x is f for x in self.former)

    def settled(self, acked_n: int) -> bool:
        """Everything delivered from it is acknowledged (`acked_n`: the stream's last
        acknowledged delivery)."""
        return self.delivered is None or self.delivered.n <= acked_n

    @property
    def position(self) -> StreamPosition:
        """Where a restart resumes this file: after its last acknowledged batch."""
        return self.acked or self.start


class _Stream:
    """The plugin's side of one stream: its reader and the tails of its open files."""

    __slots__ = ("acked_n", "error_at", "last_pump", "name", "problems", "queued", "reader",
                 "tail", "tails", "timer_at")

    def __init__(self, name: str, reader: StreamReader) -> None:
        self.name = name
        self.reader = reader
        self.tail: _Tail | None = None  # the current file's
        # Oldest first, the current one last: every file whose position may still be
        # the stream's journal position (lingering, or with batches in flight).
        self.tails: list[_Tail] = []
        self.acked_n = 0  # the StreamPosition.n of its last acknowledged delivery
        self.queued = False
        self.error_at = 0.0
        self.timer_at = 0.0  # when a pending timer will wake it (0: none)
        self.last_pump = 0.0
        # What was wrong with its data, counted ("binary": chunks with NUL bytes,
        # "oversized": records over max_message_size); the status server reports them.
        self.problems: dict[str, int] = {}

    def tail_of(self, f: OpenFile) -> _Tail | None:
        for t in self.tails:
            if t.has(f):
                return t
        return None


def _raise_nofile_limit(log: logging.Logger) -> None:
    # One descriptor per stream: lift the soft limit to the hard one (as Go does).
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.debug("raised the open files limit from %d to %d", soft, hard)
    except (ImportError, ValueError, OSError):
        pass


def _check_file_match(v: str) -> str:
    try:
        compile_regex(full_file_match(v))
    except ValueError as e:
        raise OptionError(f"regex {v!r} does not compile: {e}") from None
    if not v:
        raise OptionError("`file_match` setting is required")
    return v


@register
class LogstreamerInput(Input):
    """Tails log files the way Heka's LogstreamerInput did, and journals only what every
    output acknowledged.

    Files under `log_directory` whose full path matches `^<realpath(log_directory)>/` +
    `file_match` + `$` (walked recursively) form streams: the `differentiator` items
    (capture group names replaced by their text) make a stream's name, which becomes the
    Logger; `priority` orders a stream's files oldest first (`^` reverses a key;
    MonthName/DayName and `translation` maps give scores). Messages: Type "logfile",
    Logger = stream name, Hostname, Payload = record, Timestamp = read time, and a Uuid
    derived from (hostname, stream, the file's first line, the record's offset): a record
    read again after a crash or found again in a rotated copy has the same Uuid.

    The journal `<journal_directory>/<stream>` is Heka's (`{"seek":N,"file_name":"…",
    "last_hash":"…"}`), so hekapy resumes where hekad stopped and the other way round.
    It moves only past records that every matching output acknowledged, and is written
    atomically at most once a second per stream and at stop: a kill -9 loses nothing and
    resends at most what was in flight (with the same Uuids).

    Rotation: rename (`create`), `copytruncate` (include the `.1` copy in file_match so
    the lines written just before the truncation are found there), in-place truncation,
    deletion while open (what is still readable is drained), replacement by a file of
    the same name, `.gz` history files (offsets in decompressed bytes) and several
    rotations while hekapy was down (found again by the 500 bytes before the journaled
    offset, then read forward in priority order).

    Late writes (hekapy's rotate_wait, "5s", Fluent Bit's key and default; bare numbers
    are seconds; "0" closes a file as soon as the stream leaves it, as Heka did): a file
    the stream left (renamed, replaced, deleted, or followed by a newer file) stays open
    and what is written to it is read and delivered, until it has not changed for
    rotate_wait (at most 8 such files per stream). Those lines come after the lines
    already read from the newer file. The journal adds the positions of lingering files
    still under a name the stream matches (`"lingering":[…]` after Heka's keys, which
    hekad ignores): a restart opens them there again and reads their late lines.

    Keys: log_directory ("/var/log"), file_match (required), priority ([]),
    differentiator ([] = the section name), translation ({}), journal_directory
    ("<base_dir>/logstreamer"), oldest_duration ("720h"; 0 = no limit), rescan_interval
    ("1m"), check_data_interval ("250ms"; bare numbers are milliseconds for both),
    initial_tail (false), hostname (the global one), splitter ("TokenSplitter"),
    decoder; hekapy's rotate_wait ("5s", above) and partial_line_timeout ("5s"): a last
    line without its newline is delivered once the file has not grown for that long,
    and when the stream is done with the file; "0" keeps Heka's behaviour (wait for the
    newline for ever, drop it at rotation unless the splitter has
    deliver_incomplete_final = true).

        [nova]
        type = "LogstreamerInput"
        log_directory = "/var/log/nova"
        file_match = '(?P<Service>.+)\\.log\\.?(?P<Seq>\\d*)$'
        differentiator = ['nova', '_', 'Service']
        priority = ["^Seq"]
        decoder = "openstack_decoder"
        splitter = "openstack_splitter"
        oldest_duration = "168h"

        [openstack_splitter]
        type = "TokenSplitter"
    """

    options = {
        "log_directory": Option("str", "/var/log", doc="root of the recursive walk"),
        "file_match": Option("str", required=True, check=_check_file_match,
                             doc="regex on the path below log_directory ($ appended)"),
        "priority": Option("strlist", [], doc="capture names to sort by, ^ = descending"),
        "differentiator": Option("strlist", [], doc="stream name parts (captures/literals)"),
        "translation": Option("table", {}, check=check_translation,
                              doc="[X.translation.<capture>] value = score"),
        "journal_directory": Option("str", "", doc="default <base_dir>/logstreamer"),
        "oldest_duration": Option("duration", "720h", doc="ignore files older than this"),
        "rescan_interval": Option("duration", "1m", unit=1e-3, doc="directory rescan"),
        "check_data_interval": Option("duration", "250ms", unit=1e-3,
                                      doc="poll interval for new data"),
        "initial_tail": Option("bool", False, doc="no journal: start at the end"),
        "hostname": Option("str", "", doc="Hostname of the messages"),
        "partial_line_timeout": Option("duration", "5s",
                                       doc="deliver an unterminated last line after this"),
        "rotate_wait": Option("duration", "5s",
                              doc="read a file left after rotation until unchanged this long"),
    }
    defaults = {"splitter": "TokenSplitter"}

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if cfg.check_data_interval <= 0:
            raise OptionError("must be greater than 0", key="check_data_interval")
        if cfg.rescan_interval <= 0:
            raise OptionError("must be greater than 0", key="rescan_interval")
        # Acknowledged positions outlive a restart of run() (and are journaled by close):
        # per stream, Heka's position and those of the lingering files before it.
        self._acked: dict[str, StreamPosition] = {}
        self._acked_lingering: dict[str, list[StreamPosition]] = {}
        self._dirty: set[str] = set()
        self._unjournaled = 0  # bytes acknowledged since the last journal write
        self._journal_now = asyncio.Event()
        self._journal: Journal | None = None
        self._writing: asyncio.Future | None = None
        self._streams: dict[str, _Stream] = {}
        self._ready: deque[_Stream] = deque()
        self._by_path: dict[str, _Stream] = {}
        # (when, seq, stream): a stream to look at again (rotation wait, partial line).
        self._timers: list[tuple[float, int, _Stream]] = []
        self._timer_seq = 0
        self._wake: asyncio.Event | None = None
        self._scan_errors: set[str] = set()
        self._last_scan = 0.0
        self._scan_seconds = 0.0
        self._rescan_wanted = False
        self._ctx: InputContext | None = None
        self._delivery_n = 0  # numbers every delivered position (never reset: see n)
        self.discovery = Discovery(cfg.log_directory, cfg.file_match, cfg.priority,
                                   cfg.differentiator, cfg.translation, cfg.oldest_duration,
                                   default_name=name)
        self.counters = {"partial_flushes": 0, "partial_dropped": 0, "journal_errors": 0,
                         "oversized": 0}
        # Paths file_match picks up that are no regular files (status: /health, /metrics).
        self.skipped_files: list[str] = []

    # --- lifecycle -----------------------------------------------------------------------
    async def run(self, ctx: InputContext) -> None:
        cfg = self.cfg
        self._ctx = ctx
        self._host = cfg.hostname or ctx.hostname
        self._wake = asyncio.Event()
        ctx.on_ack(self._on_ack)
        jdir = cfg.journal_directory or os.path.join(ctx.hekad.base_dir, "logstreamer")
        self._journal = Journal(jdir)
        self._journal.ensure_dir()
        _raise_nofile_limit(ctx.log)
        self._streams = {}
        self._ready = deque()
        self._by_path = {}
        self._timers = []
        self._flush_incomplete = cfg.partial_line_timeout > 0
        watcher = Watcher(self._on_change, self._on_overflow, ctx.log)
        self._watcher = watcher
        watcher.start()
        poll_every = (max(cfg.check_data_interval, INOTIFY_POLL_INTERVAL)
                      if watcher.available else cfg.check_data_interval)
        wake = self._wake

        async def stop_wakes() -> None:
            await ctx.stopping.wait()
            wake.set()

        helpers = [asyncio.create_task(stop_wakes()),
                   asyncio.create_task(self._journal_loop())]
        try:
            await self._rescan(initial=True)
            next_poll = time.monotonic() + poll_every
            while not ctx.stopping.is_set():
                now = time.monotonic()
                if now >= self._last_scan + cfg.rescan_interval or (
                        self._rescan_wanted and now >= self._last_scan + self._rescan_gap()):
                    await self._rescan()
                    continue
                if now >= next_poll:
                    self._poll(now)
                    next_poll = now + poll_every
                timers = self._timers
                while timers and timers[0][0] <= now:
                    t = heapq.heappop(timers)[2]
                    t.timer_at = 0.0
                    self._mark_ready(t)
                if self._ready:
                    s = self._ready.popleft()
                    s.queued = False
                    await self._pump(s)
                    continue
                wake.clear()
                deadline = min(next_poll, self._last_scan + cfg.rescan_interval)
                if self._timers:
                    deadline = min(deadline, self._timers[0][0])
                if self._rescan_wanted:
                    deadline = min(deadline, self._last_scan + self._rescan_gap())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), max(0.0, deadline - now))
        finally:
            for task in helpers:
                task.cancel()
            watcher.close()
            for s in self._streams.values():
                s.reader.close()

    async def close(self, ctx: InputContext) -> None:
        """Journal every acknowledged position (the outputs have drained by now)."""
        if self._writing is not None:
            # A periodic write still running in its thread: let it finish first.
            with contextlib.suppress(Exception):
                self._dirty.update(await self._writing)
            self._writing = None
        items = self._take_dirty()
        if items:
            failed = await asyncio.to_thread(self._write_journals, items)
            self._dirty.update(failed)
        if self._journal is not None:
            self._journal.close()

    # --- acknowledgements and the journal ------------------------------------------------
    def _on_ack(self, position: StreamPosition) -> None:
        s = self._streams.get(position.stream)
        if s is None:
            return
        s.acked_n = max(s.acked_n, position.n)
        f = position.file
        t = s.tail_of(f)
        if t is not None:
            self._unjournaled += max(0, position.offset - t.position.offset)
            t.acked = position
            if t.former and t.file is f:
                t.former = []  # acknowledged in order: nothing of theirs is in flight
        # (t is None for a batch of an earlier run() of this input: the stream resumed at
        # or before it, from _acked.)
        self._update_journal(s)
        if self._unjournaled >= JOURNAL_BYTES:
            self._journal_now.set()

    def _journal_positions(self, s: _Stream
                           ) -> tuple[StreamPosition, list[StreamPosition]]:
        """The stream's journal: Heka's position, in the oldest file a restart must read
        on in the stream's order (the current one, or one left whose batches are still
        in flight), after what was acknowledged from it; and, before it, the lingering
        files' positions, which a restart opens again to read their late writes. A
        lingering file no longer under a name of the stream is left out (a restart could
        not find it: what it gains after a restart is not read), and so is one after the
        main position (the restart reads it again as it reads the stream)."""
        findable = {id(lf.file): lf.findable for lf in s.reader.lingering}
        lingering: list[StreamPosition] = []
        for t in s.tails:
            if t is s.tail:
                break
            found = findable.get(id(t.file))
            if found is not None:  # lingering
                if found:
                    lingering.append(t.position)
            elif not t.settled(s.acked_n):
                return t.position, lingering
        assert s.tail is not None
        return s.tail.position, lingering

    def _update_journal(self, s: _Stream) -> None:
        """Recompute the stream's journal positions; forget files that are done."""
        pos, lingering = self._journal_positions(s)
        if len(s.tails) > 1:
            s.tails = [t for t in s.tails if not (t.closed and t.settled(s.acked_n))]
        before = self._acked_lingering.get(s.name, [])
        if pos is not self._acked.get(s.name) or len(lingering) != len(before) or any(
                a is not b for a, b in zip(lingering, before, strict=True)):
            self._acked[s.name] = pos
            self._acked_lingering[s.name] = lingering
            self._dirty.add(s.name)

    @staticmethod
    def _position(acked: StreamPosition) -> Position:
        # The file's current name: a renamed file is journaled where it is now.
        return Position(acked.offset, acked.file.path, acked.last_hash)

    def _take_dirty(self) -> list[tuple[str, Position]]:
        items = []
        for name in self._dirty:
            items.append((name, self._saved_position(name)))
        self._dirty.clear()
        return items

    def _write_journals(self, items: list[tuple[str, Position]]) -> list[str]:
        """In a worker thread: write each journal; returns the names that failed."""
        failed = []
        journal = self._journal
        assert journal is not None
        for name, pos in items:
            try:
                journal.save(name, pos)
            except OSError as e:
                failed.append(name)
                self.counters["journal_errors"] += 1
                if self._ctx is not None:
                    self._ctx.limited_log(logging.ERROR, "cannot write journal for %s: %s",
                                          name, e)
        return failed

    async def _journal_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._journal_now.wait(), JOURNAL_INTERVAL)
            self._journal_now.clear()
            self._unjournaled = 0
            items = self._take_dirty()
            if items:
                # Shielded: when run() ends mid-write, close() waits for this write.
                self._writing = asyncio.ensure_future(
                    asyncio.to_thread(self._write_journals, items))
                failed = await asyncio.shield(self._writing)
                self._writing = None
                self._dirty.update(failed)

    def _saved_position(self, name: str) -> Position:
        pos = self._position(self._acked[name])
        pos.lingering = [self._position(x) for x in self._acked_lingering.get(name, [])]
        return pos

    def _initial_position(self, name: str) -> Position | None:
        if name in self._acked:  # run() restarted: resume after what was acknowledged
            return self._saved_position(name)
        assert self._journal is not None and self._ctx is not None
        try:
            return self._journal.load(name)
        except (JournalError, OSError) as e:
            self._ctx.log.error("journal for %s is unreadable (%s); reading the stream from "
                                "its oldest file", name, e)
            return Position()

    # --- discovery -----------------------------------------------------------------------
    def _rescan_gap(self) -> float:
        # Event-driven rescans are throttled so a huge tree is not walked on every event.
        return min(self.cfg.rescan_interval, max(0.2, 20 * self._scan_seconds))

    async def _rescan(self, initial: bool = False) -> None:
        res = await asyncio.to_thread(self.discovery.scan)
        self._apply_scan(res, initial)

    def _refresh(self, name: str, force: bool) -> list[Logfile] | None:
        """A reader's synchronous request for fresh file lists (rotation in progress)."""
        if not force and time.monotonic() < self._last_scan + max(1.0, self._rescan_gap()):
            return None
        self._apply_scan(self.discovery.scan(), False)
        s = self._streams.get(name)
        return s.reader.files if s is not None else None

    def _apply_scan(self, res: ScanResult, initial: bool) -> None:
        ctx = self._ctx
        assert ctx is not None
        self._last_scan = time.monotonic()
        self._scan_seconds = res.seconds
        self._rescan_wanted = False
        new_errors = set(res.errors) - self._scan_errors
        for e in sorted(new_errors)[:20]:
            ctx.log.error("%s", e)
        self._scan_errors = set(res.errors)
        for e in sorted(set(res.skipped) - set(self.skipped_files))[:20]:
            ctx.log.warning("%s", e)
        self.skipped_files = sorted(res.skipped)
        by_path: dict[str, _Stream] = {}
        dirs = {self.discovery.root()} if res.directories else set()
        for name, files in res.streams.items():
            s = self._streams.get(name)
            if s is None:
                reader = StreamReader(name, files,
                                      switch_wait=self.cfg.check_data_interval,
                                      rotate_wait=self.cfg.rotate_wait,
                                      refresh=functools.partial(self._refresh, name),
                                      log=ctx.log)
                s = _Stream(name, reader)
                self._streams[name] = s
                self._start(s)
            else:
                old = s.reader.files
                s.reader.set_files(files)
                if [f.path for f in old] != [f.path for f in files]:
                    self._mark_ready(s)
            for lf in files:
                by_path[lf.path] = s
                dirs.add(os.path.dirname(lf.path))
        for name, s in self._streams.items():
            if name not in res.streams and s.reader.files:
                s.reader.set_files([])
                self._mark_ready(s)
            if s.reader.cur is not None:
                by_path.setdefault(s.reader.cur.path, s)
            for late in s.reader.lingering:  # their writes wake the stream too
                by_path.setdefault(late.file.path, s)
        self._by_path = by_path
        self._watcher.watch(dirs)
        if initial:
            ctx.log.info("%d streams from %d files under %s (scan %.3f s)",
                         len(res.streams), res.files, self.discovery.log_directory,
                         res.seconds)

    def _start(self, s: _Stream, mark: bool = True) -> None:
        pos = self._initial_position(s.name)
        how = s.reader.start(pos, self.cfg.initial_tail)
        if how is not None:
            cur = s.reader.cur
            assert cur is not None and self._ctx is not None
            if pos is not None and pos.lingering and how in ("journal", "relocated"):
                # Files it still read for late writes when it stopped: on from there.
                for lf in s.reader.adopt(pos.lingering, time.monotonic()):
                    self._add_tail(s, lf.file)
            elif how == "renamed-out":  # the journaled file, under a name of its own now
                for lf in s.reader.lingering:
                    self._add_tail(s, lf.file)
            s.tail = self._add_tail(s, cur)
            self._ctx.log.debug("%s: starting at %s@%d (%s)", s.name, cur.path,
                                cur.offset, how)
            if mark:
                self._mark_ready(s)

    def _add_tail(self, s: _Stream, f: OpenFile) -> _Tail:
        """A tail for `f`, read on from where it is open, newest of the stream's."""
        assert self._ctx is not None
        t = _Tail(f, self._ctx.new_splitter(),
                  StreamPosition(s.name, f, f.offset, window_hash(f.window)))
        s.tails.append(t)
        return t

    # --- wake-ups ------------------------------------------------------------------------
    def _mark_ready(self, s: _Stream) -> None:
        if not s.queued:
            s.queued = True
            self._ready.append(s)
            if self._wake is not None:
                self._wake.set()

    def _on_change(self, path: str, names_changed: bool) -> None:
        s = self._by_path.get(path)
        if s is not None and not s.queued:
            due = s.last_pump + COALESCE
            if names_changed or time.monotonic() >= due:
                self._mark_ready(s)
            else:
                self._call_later(due, s)
        if names_changed and (s is not None or self.discovery.match(path) is not None):
            self._rescan_wanted = True
            if self._wake is not None:
                self._wake.set()

    def _on_overflow(self) -> None:
        self._rescan_wanted = True
        for s in self._streams.values():
            self._mark_ready(s)

    def _poll(self, now: float) -> None:
        """The safety net: find streams with something to do without an event."""
        timeout = self.cfg.partial_line_timeout
        for s in self._streams.values():
            if s.queued:
                continue
            r = s.reader
            f = r.cur
            if f is None:
                if r.files:
                    self._mark_ready(s)
                continue
            if not r.at_eof or r.eof_since is not None:
                self._mark_ready(s)
                continue
            t = s.tail
            if (self._flush_incomplete and t is not None and t.splitter.remainder
                    and now - t.last_data >= timeout):
                self._mark_ready(s)
                continue
            # A lingering file renamed out of the watched names (or deleted) is written
            # to without an event that names the stream.
            if r.lingering and r.lingering_grew():
                self._mark_ready(s)
                continue
            try:
                if f.gz:
                    continue
                if os.fstat(f.fd).st_size != f.offset or not f.same_inode(os.stat(f.path)):
                    self._mark_ready(s)
            except OSError:
                self._mark_ready(s)  # renamed or deleted: the reader sorts it out

    # --- reading -------------------------------------------------------------------------
    async def _pump(self, s: _Stream) -> None:
        ctx = self._ctx
        assert ctx is not None
        r = s.reader
        if r.cur is None:
            self._start(s, mark=False)
            if r.cur is None:
                return
        # Lingering files first: what they gained was written before the current file's
        # news, or close to it. Their reads share this turn's byte budget.
        got = await self._pump_lingering(s) if r.lingering else 0
        while got < PUMP_BYTES:
            if ctx.stopping.is_set():
                return
            now = time.monotonic()
            try:
                ev = r.next(now)
            except OSError as e:
                ctx.stats.errors += 1
                ctx.limited_log(logging.ERROR, "%s: read error on %s: %s", s.name,
                                r.cur.path if r.cur else "?", e)
                return
            if ev is None:
                break
            if isinstance(ev, Switched):
                await self._switched(s, ev)
                continue
            got += len(ev)
            t = s.tail
            assert t is not None and r.cur is not None
            t.relocated(r.cur)
            t.last_data = now
            await self._process(s, t, ev)
        else:
            self._mark_ready(s)  # more to read: take turns with the other streams
            return
        if r.lingering:
            await self._release_lingering(s)
        s.last_pump = time.monotonic()
        if r.eof_since is not None:  # a newer file waits: look again once it may switch
            self._call_later(r.eof_since + r.switch_wait, s)
        release_at = r.next_release()
        if release_at is not None:
            self._call_later(release_at, s)
        t = s.tail
        if self._flush_incomplete and t is not None and t.splitter.remainder:
            due = t.last_data + self.cfg.partial_line_timeout
            if time.monotonic() >= due:
                await self._deliver_held(s, t, "timeout")
            else:
                self._call_later(due, s)

    async def _pump_lingering(self, s: _Stream) -> int:
        """Read what the lingering files gained, up to this turn's budget."""
        ctx = self._ctx
        assert ctx is not None
        r = s.reader
        got = 0
        for lf in list(r.lingering):
            t = s.tail_of(lf.file)
            assert t is not None
            while got < PUMP_BYTES and not ctx.stopping.is_set():
                now = time.monotonic()
                data = r.read_lingering(lf, now)
                if not data:
                    break
                got += len(data)
                t.last_data = now
                await self._process(s, t, data)
        return got

    async def _release_lingering(self, s: _Stream) -> None:
        """Close the lingering files that are done with; their held bytes are their
        last record. (No partial_line_timeout while lingering: a file is released
        once unchanged for rotate_wait, and its incomplete record delivered then.)"""
        for lf in s.reader.release(time.monotonic()):
            t = s.tail_of(lf.file)
            try:
                if t is not None:
                    await self._finish_tail(s, t, "end of file")
            finally:
                lf.file.close()
            if t is not None:
                self._update_journal(s)

    def _call_later(self, when: float, s: _Stream) -> None:
        if s.timer_at and s.timer_at <= when and s.timer_at > time.monotonic():
            return  # an earlier wake-up is already due
        s.timer_at = when
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, self._timer_seq, s))

    def _key(self, s: _Stream, t: _Tail) -> int:
        if not t.id_set or not t.id_final:
            f = t.file
            t.id_key = identity_key(self._host, s.name, f.fingerprint())
            t.id_final = f.fingerprint_final
            t.id_set = True
        return t.id_key

    async def _process(self, s: _Stream, t: _Tail, data: bytes) -> None:
        f = t.file
        sp = t.splitter
        prev_rem = sp.remainder
        chunk_end = f.offset
        chunk_start = chunk_end - len(data)
        hist = t.history
        if b"\0" in data:  # no text log has NUL bytes: a binary file matched file_match
            s.problems["binary"] = s.problems.get("binary", 0) + 1
        records = sp.split(data)
        rem = sp.remainder
        consume_start = chunk_start - prev_rem
        consume_end = chunk_end - rem
        oversized = getattr(sp, "dropped", 0) + getattr(sp, "truncated", 0)
        if oversized != t.oversized:
            self._count_oversized(s, t, oversized - t.oversized)
            t.oversized = oversized
        if records and b"" in records:
            records = [r for r in records if r]  # Heka delivers no empty records
        if records:
            offs = record_offsets(records, hist, data, chunk_start, consume_start)
            await self._deliver(s, t, records, offs, hist, data, chunk_start, consume_end)
        t.history = _span(hist, data, chunk_start, consume_end - HASH_WINDOW, chunk_end)

    def _count_oversized(self, s: _Stream, t: _Tail, n: int) -> None:
        ctx = self._ctx
        assert ctx is not None
        keep = bool(getattr(t.splitter.cfg, "keep_truncated", False))
        if not keep:
            ctx.stats.dropped += n
        self.counters["oversized"] += n
        s.problems["oversized"] = s.problems.get("oversized", 0) + n
        ctx.limited_log(logging.ERROR, "%s: %d record(s) in %s exceeded max_message_size "
                        "(%d bytes) and were %s", s.name, n, t.file.path,
                        getattr(t.splitter, "max_record_size", 0),
                        "truncated" if keep else "dropped")

    async def _deliver(self, s: _Stream, t: _Tail, records: list[bytes], offs: list[int],
                       hist: bytes, data: bytes, chunk_start: int, consume_end: int) -> None:
        ctx = self._ctx
        assert ctx is not None
        f = t.file
        key = self._key(s, t)
        msgs = ctx.records_to_messages(records, type="logfile", logger=s.name,
                                       hostname=self._host)
        for m, o in zip(msgs, offs, strict=True):
            m.uuid = (key ^ o).to_bytes(16, "big")
        n = len(records)
        ctx.stats.messages_in += n
        lo = chunk_start - len(hist)
        i = 0
        while i < n:
            j = min(n, i + MAX_BATCH_RECORDS)
            p = offs[j] if j < n else consume_end
            p = min(max(p, lo), consume_end)
            self._delivery_n += 1
            pos = StreamPosition(s.name, f, p, window_hash(_span(hist, data, chunk_start,
                                                                 p - HASH_WINDOW, p)),
                                 self._delivery_n)
            nbytes = sum(map(len, records[i:j]))
            await ctx.deliver(msgs[i:j], pos, nbytes)
            t.delivered = pos
            i = j

    async def _deliver_held(self, s: _Stream, t: _Tail, why: str) -> None:
        """Deliver the splitter's incomplete record as it is (the file ended or stopped
        growing), then forget it."""
        held = t.splitter.remainder
        if not held:
            return
        record = t.history[-held:] if held <= len(t.history) else b""
        t.splitter.reset()
        if not record:
            return
        f = t.file
        start = f.offset - len(record)
        await self._deliver(s, t, [record], [start], t.history, b"", f.offset, f.offset)
        self.counters["partial_flushes"] += 1
        assert self._ctx is not None
        self._ctx.log.debug("%s: delivered an unterminated last record of %s (%s)", s.name,
                            f.path, why)

    async def _switched(self, s: _Stream, ev: Switched) -> None:
        """The reader moved on to a new current file. The file it left keeps its tail
        while it lingers; otherwise it is finished now."""
        old = s.tail
        assert old is not None
        old.relocated(ev.old)
        new = s.reader.cur
        assert new is not None
        s.tail = self._add_tail(s, new)
        self._by_path.setdefault(new.path, s)
        if ev.lingering:
            self._by_path.setdefault(ev.old.path, s)
        else:
            await self._finish_tail(s, old, "end of file")
        # When everything from the old file is acknowledged (and it does not linger
        # under a name of the stream), the journal moves to the new one at 0 now, so a
        # restart does not have to find the old file again.
        self._update_journal(s)

    async def _finish_tail(self, s: _Stream, t: _Tail, why: str) -> None:
        """The stream is done with `t`'s file: its held bytes are its last record."""
        if t.splitter.remainder:
            deliver_final = bool(getattr(t.splitter.cfg, "deliver_incomplete_final", False))
            if self._flush_incomplete or deliver_final:
                await self._deliver_held(s, t, why)
            else:
                self.counters["partial_dropped"] += 1
                assert self._ctx is not None
                self._ctx.stats.dropped += 1
                self._ctx.limited_log(logging.WARNING, "%s: dropped an unterminated last "
                                      "record of %s (partial_line_timeout = 0)", s.name,
                                      t.file.path)
        t.splitter.reset()
        t.history = b""
        t.closed = True
