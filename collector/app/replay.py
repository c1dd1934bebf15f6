"""`hekapy replay`: archived logs through the daemon's own decoders, filters and outputs.

    hekapy replay -c /etc/hekapy/ [--since T] [--until T] [--workers N] [--resume]
                  [--dry-run] [--decoder NAME] [--state FILE] PATH...

Files (or directories, walked) of plain, .gz, .bz2, .xz and .zst logs, and Heka
protobuf stream files. Each file goes to the splitter and decoder that the config's
LogstreamerInput sections would give it: `file_match` is matched against the path
below a directory named like the section's log_directory (an archive of /var/log keeps
nova/, neutron/, …), else against the file name, compression suffix removed; its
stream name (the message Logger) comes from the section's differentiator, as in the
daemon. `--decoder` names one decoder section for every file instead; Heka stream files
(they start with a 0x1E frame) use HekaFramingSplitter + ProtobufDecoder.

N worker processes (collector/app/replay_worker.py) decode files in parallel, run the
outputs' encoders too, and send msgpack batches (messages and their encoded bytes)
through a bounded queue to this process, which routes them to the config's filters and
outputs (the config's inputs do not run): the one writer process only matches, routes
and ships bytes, so decoding and encoding scale with the workers. Backpressure: a slow
output stops the router, the queue fills, the workers wait; memory stays bounded
whatever the archive size.

Metric filters (ticker_interval) tick on the lines' Timestamps, not on the clock
(collector/engine/message_clock.py): files start in the order of their first lines' Timestamps
and each interval's metrics carry that interval's time.

Timestamps come from the lines; `--since`/`--until` (ISO 8601 dates or times, UTC
unless an offset is given) keep messages with since ≤ Timestamp < until. The state
file (`<base_dir>/replay/state.json` unless `--state`) records, per file, the offset
every output has acknowledged; `--resume` goes on from there (a file's identity is
its path and first line). Uuids are the daemon's, so nothing is indexed twice.

SIGINT/SIGTERM: stop reading, let the outputs finish what is in flight, save the
state, exit 130 ("--resume" continues).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from hekapy.collector.app.gc_tuning import tune_gc
from hekapy.collector.app.replay_worker import (
    FileTask,
    fingerprint,
    is_heka_stream,
    strip_compression,
    worker_main,
)
from hekapy.collector.engine.config import Config, ConfigError
from hekapy.collector.engine.config import _build_spec as build_spec
from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.message_clock import MessageClock
from hekapy.collector.engine.pipeline import Pipeline, build_plugin
from hekapy.collector.engine.plugin import Input, register
from hekapy.collector.engine.serialize import unpack_batch
from hekapy.collector.inputs.logstreamer.discovery import Discovery


class ReplayError(Exception):
    """A replay that cannot start (bad arguments, no file to replay)."""


def parse_time(text: str) -> int:
    """ISO 8601 date or date-time → Unix ns (UTC when no offset is given)."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(f"bad time {text!r}: expected e.g. 2026-11-01 or "
                          "2026-11-01T10:00:00+01:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000


def walk(paths: list[str]) -> list[tuple[str, str]]:
    """(file, the root it is matched relative to), sorted by path within each root."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            root = os.path.abspath(p)
            for d, _dirs, files in sorted(os.walk(root)):
                out += [(os.path.join(d, f), root) for f in sorted(files)]
        elif os.path.isfile(p):
            out.append((os.path.abspath(p), os.path.dirname(os.path.abspath(p))))
        else:
            raise ReplayError(f"{p}: no such file or directory")
    return out


@dataclass
class Plan:
    tasks: list[FileTask] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


def plan(config: Config, paths: list[str], decoder: str = "") -> Plan:
    """Which stream, splitter and decoder each file gets."""
    if decoder and config.resolve(decoder, "Decoder") is None:
        raise ReplayError(f"--decoder {decoder!r}: no decoder section of that name")
    streams = []
    for spec in config.by_category("Input"):
        if spec.type_name != "LogstreamerInput":
            continue
        c = spec.cfg
        d = Discovery("/", c.file_match, c.priority, c.differentiator, c.translation,
                      default_name=spec.name)
        streams.append((spec, d))
    result = Plan()
    for path, root in walk(paths):
        rel = strip_compression(os.path.relpath(path, root))
        first_line = fingerprint(path)
        task: FileTask | None
        if is_heka_stream(first_line):
            task = FileTask(len(result.tasks), path, "replay", "HekaFramingSplitter",
                            "ProtobufDecoder")
        elif decoder:
            name = strip_compression(os.path.basename(path))
            task = FileTask(len(result.tasks), path, os.path.splitext(name)[0],
                            "TokenSplitter", decoder)
        else:
            task = None
            # An archive laid out like /var/log: a file under a directory named as a
            # section's log_directory (nova/, neutron/) goes to that section first,
            # matched relative to it; otherwise its name is matched.
            parts = [os.path.basename(root), *rel.split(os.sep)]
            best: tuple[int, int] | None = None
            for order, (spec, d) in enumerate(streams):
                home = os.path.basename(spec.cfg.log_directory.rstrip("/"))
                if home in parts[:-1]:
                    at = len(parts) - 1 - parts[:-1][::-1].index(home)
                    sub, rank = "/".join(parts[at:]), 0
                else:
                    sub, rank = parts[-1], 1
                groups = d.match("/" + sub)
                if groups is None or (best is not None and (rank, order) >= best):
                    continue
                best = (rank, order)
                task = FileTask(len(result.tasks), path, d.stream_name(groups),
                                spec.cfg.splitter or "TokenSplitter", spec.cfg.decoder)
        if task is None:
            result.unmatched.append(path)
            continue
        task.fingerprint = first_line
        result.tasks.append(task)
        result.sizes.append(os.path.getsize(path))
    return result


def file_identity(task: FileTask) -> str:
    """The state file's key for a file: its path and first line."""
    return hashlib.sha1(os.path.abspath(task.path).encode() + b"\0" + task.fingerprint
                        ).hexdigest()


class ReplayState:
    """Per file: the acknowledged offset and whether it is complete (JSON, atomic)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.files = json.loads(self.path.read_text())["files"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"files": self.files}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


@dataclass
class Progress:
    files: int = 0
    files_done: int = 0
    lines: int = 0
    bytes: int = 0  # uncompressed
    raw_bytes: int = 0  # on disk
    raw_total: int = 0
    acknowledged: int = 0
    errors: list[str] = field(default_factory=list)
    skipped_time: int = 0
    decode_failures: int = 0
    per_index: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.bytes / elapsed / 2**20
        eta = ""
        if self.raw_bytes and self.raw_total > self.raw_bytes:
            left = elapsed * (self.raw_total - self.raw_bytes) / self.raw_bytes
            eta = f", ETA {left:,.0f} s"
        return (f"files {self.files_done}/{self.files}, lines {self.lines:,}, "
                f"{self.bytes / 2**20:,.1f} MiB ({rate:,.1f} MiB/s), acknowledged "
                f"{self.acknowledged:,}, errors {len(self.errors) + self.decode_failures}"
                f"{eta}")


@register
class ReplayInput(Input):
    """The writer side of `hekapy replay` (not for configs): batches from the worker
    processes into the pipeline; acknowledged positions into the state file."""

    options: ClassVar[dict] = {}
    job: Replay | None = None

    async def run(self, ctx: InputContext) -> None:
        job = ReplayInput.job
        assert job is not None
        await job.feed(ctx)


class Replay:
    """One replay run: workers, the pipeline of the config's filters and outputs, the
    state file and the progress display."""

    def __init__(self, config: Config, config_path: str, tasks: Plan, workers: int,
                 since: int | None, until: int | None, state: ReplayState,
                 out: Any = sys.stderr) -> None:
        self.config = config
        self.config_path = config_path
        self.plan = tasks
        self.workers = max(1, workers)
        self.since, self.until = since, until
        self.state = state
        self.out = out
        self.progress = Progress(files=len(tasks.tasks), raw_total=sum(tasks.sizes))
        self.identities = {t.index: file_identity(t) for t in tasks.tasks}
        self.pending: deque[tuple[int, int, int, int]] = deque()  # seq, file, offset, n
        self.seq = 0
        self.finished_files: dict[int, int] = {}  # file → seq of its last batch
        self.raw_seen: dict[int, int] = {}  # file → bytes on disk read so far
        self.stop_requested = asyncio.Event()
        self.saved_at = time.monotonic()
        self.interrupted = False
        self.clock = MessageClock()
        self._pipeline: Pipeline | None = None
        self._time_driven = False

    def pipeline(self) -> Pipeline:
        cfg = self.config
        plugins = {n: s for n, s in cfg.plugins.items() if s.category != "Input"}
        errors: list[ConfigError] = []
        spec = build_spec("replay", {"type": "ReplayInput"}, "", errors,
                          plugin_class={"ReplayInput": ReplayInput}.get)
        assert spec is not None and not errors, errors
        plugins["replay"] = spec
        replay_config = Config(files=cfg.files, hekad=cfg.hekad, plugins=plugins,
                               defaults=cfg.defaults)
        # Metric filters tick on the lines' Timestamps (collector/engine/message_clock.py).
        self._pipeline = Pipeline(replay_config, message_time=True)
        # Whether some filter ticks: then batches carry the message-time watermark.
        self._time_driven = any(plugin.cfg.ticker_interval > 0
                                for plugin, _, _ in self._pipeline.filters)
        return self._pipeline

    # --- acknowledgements ----------------------------------------------------------------
    def acknowledged(self, seq: Any) -> None:
        """Every batch up to `seq` is stored by every output: record the offsets."""
        files = self.state.files
        while self.pending and self.pending[0][0] <= seq:
            _, index, offset, n = self.pending.popleft()
            entry = files.setdefault(self.identities[index], {
                "path": self.plan.tasks[index].path, "offset": 0, "done": False})
            entry["offset"] = max(entry["offset"], offset)
            self.progress.acknowledged += n
        for index, last in list(self.finished_files.items()):
            if last <= seq:
                files[self.identities[index]]["done"] = True
                del self.finished_files[index]
        now = time.monotonic()
        if now - self.saved_at > 1.0:  # the state file, about once a second
            self.saved_at = now
            self.state.save()

    # --- the writer loop -----------------------------------------------------------------
    async def feed(self, ctx: InputContext) -> None:
        ctx.on_ack(self.acknowledged)
        mp = multiprocessing.get_context("spawn")
        tasks = mp.Queue()
        # Bounded: the workers wait when the outputs fall behind.
        results = mp.Queue(maxsize=self.workers * 4)
        todo = []
        for t in self.plan.tasks:
            entry = self.state.files.get(self.identities[t.index])
            if entry and entry.get("done"):
                self.progress.files_done += 1
                self.progress.raw_bytes += self.plan.sizes[t.index]
                continue
            t.start = entry["offset"] if entry else 0
            todo.append(t)
        if self._time_driven:
            # Metric filters tick on message time: files start in the order of their
            # first lines' Timestamps, which bound the watermark until they start
            # (collector/engine/message_clock.py); a file whose first line says nothing
            # starts first.
            firsts = {t.index: first_timestamp(self.config, t) for t in todo}
            todo.sort(key=lambda t: (firsts[t.index] is not None, firsts[t.index] or 0,
                                     t.index))
            self.clock = MessageClock((t.index, firsts[t.index]) for t in todo)
        for t in todo:
            tasks.put(t)
        procs = [mp.Process(target=worker_main, args=(
            self.config_path, self.config.hekad.hostname, self.since, self.until, tasks,
            results), daemon=True) for _ in range(min(self.workers, max(1, len(todo))))]
        for p in procs:
            p.start()
        for _ in procs:
            tasks.put(None)
        loop = asyncio.get_running_loop()
        alive = len(procs)
        interrupted = False
        def next_result() -> Any:
            # A bounded wait: a thread blocked in get() forever would keep the process
            # from exiting after an interruption.
            try:
                return results.get(timeout=0.2)
            except queue.Empty:
                return None

        try:
            while alive:
                item = await loop.run_in_executor(None, next_result)
                if self.stop_requested.is_set():
                    interrupted = True
                    for p in procs:
                        p.terminate()
                    break
                if item is None:
                    if not any(p.is_alive() for p in procs):
                        self.progress.errors.append("the decoding processes died")
                        break
                    continue
                kind, payload = item
                if kind == "start":
                    self.clock.start(payload)
                elif kind == "exit":
                    alive -= 1
                elif kind == "error":
                    self.progress.errors.append(payload[1])
                    print(f"hekapy replay: {payload[1]}", file=self.out, flush=True)
                elif kind == "batch":
                    index, offset, nrec, nbytes, raw, packed, per_index = payload
                    self.progress.lines += nrec
                    self.progress.bytes += nbytes
                    self.read_raw(index, raw, per_index)
                    await self.route(ctx, index, offset, nbytes, packed)
                elif kind == "done":
                    (index, offset, nrec, raw, packed, per_index, skipped,
                     failures, first, error) = payload
                    self.read_raw(index, raw, per_index)
                    self.progress.skipped_time += skipped
                    self.progress.decode_failures += failures
                    if first:
                        print(f"hekapy replay: {self.plan.tasks[index].path}: {failures} "
                              f"undecodable records, first: {first}", file=self.out,
                              flush=True)
                    self.progress.files_done += 1
                    await self.route(ctx, index, offset, 0, packed)
                    self.clock.finish(index)
                    if not error:
                        self.finished_files[index] = self.seq
        finally:
            for p in procs:
                await loop.run_in_executor(None, p.join, 5)
            # Files never taken (interrupted) stay in the pipe: do not wait to flush them.
            tasks.cancel_join_thread()
            results.close()
            tasks.close()
            self.interrupted = interrupted

    def read_raw(self, index: int, raw: int, per_index: dict[str, int]) -> None:
        """Progress: file `index` has been read up to `raw` bytes on disk."""
        self.progress.raw_bytes += raw - self.raw_seen.get(index, 0)
        self.raw_seen[index] = raw
        self.progress.per_index.update(per_index)

    async def route(self, ctx: InputContext, index: int, offset: int, nbytes: int,
                    packed: bytes) -> None:
        messages = unpack_batch(packed)
        self.seq += 1
        self.pending.append((self.seq, index, offset, len(messages)))
        ctx.stats.messages_in += len(messages)
        watermark = None
        if self._time_driven and messages:
            self.clock.observe(index, max(m.timestamp for m in messages))
            watermark = self.clock.watermark
        await ctx.deliver_decoded(messages, self.seq, nbytes, watermark)

    async def run(self) -> int:
        ReplayInput.job = self
        self.interrupted = False
        p = self.pipeline()
        tune_gc()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop_requested.set)
        await p.start()
        ticker = asyncio.create_task(self.show_progress())
        try:
            await p.inputs_finished()
            # Until the outputs acknowledged everything, or a signal (an output that
            # cannot deliver must not keep the replay from stopping).
            idle = asyncio.ensure_future(p.inputs[0][1].tracker.wait_idle())
            stop = asyncio.ensure_future(self.stop_requested.wait())
            await asyncio.wait({idle, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done() and not idle.done():
                self.interrupted = True
            idle.cancel()
            stop.cancel()
        finally:
            await p.stop()
            ticker.cancel()
            self.state.save()
        self.summary()
        return 130 if self.interrupted else (1 if self.progress.errors else 0)

    async def show_progress(self) -> None:
        tty = self.out.isatty() if hasattr(self.out, "isatty") else False
        if tty:
            from rich.console import Console
            from rich.live import Live
            with Live(console=Console(file=self.out), refresh_per_second=4) as live:
                while True:
                    live.update(self.progress.line())
                    await asyncio.sleep(0.25)
        while True:
            await asyncio.sleep(5)
            print(f"hekapy replay: {self.progress.line()}", file=self.out, flush=True)

    def summary(self) -> None:
        pr = self.progress
        elapsed = time.monotonic() - pr.started
        print(f"hekapy replay: {'interrupted' if self.interrupted else 'done'} in "
              f"{elapsed:,.1f} s: {pr.line()}", file=self.out)
        for name, n in sorted(pr.per_index.items()):
            print(f"  {name}: {n:,} documents", file=self.out)
        print(f"  skipped by the time window: {pr.skipped_time:,}; undecodable: "
              f"{pr.decode_failures:,}; files with errors: {len(pr.errors)}", file=self.out)
        for _, fctx, _ in self._pipeline.filters if self._pipeline else ():
            if fctx.schedule is not None and fctx.schedule.late:
                print(f"  {fctx.name}: {fctx.schedule.late:,} messages came after their "
                      "interval had ticked (a file older than the others): counted in "
                      "a later interval", file=self.out)
        for path in self.plan.unmatched:
            print(f"  not replayed (no LogstreamerInput file_match): {path}", file=self.out)
        dead = [spec.cfg.dead_letter_file for spec in self.config.by_category("Output")
                if getattr(spec.cfg, "dead_letter_file", "")]
        for path in dead:
            if os.path.exists(path):
                with open(path, "rb") as f:
                    n = sum(1 for _ in f)
                print(f"  dead-lettered: {n:,} in {path}", file=self.out)
        if self.interrupted:
            print(f"  state saved in {self.state.path}; --resume continues", file=self.out)


def first_timestamp(config: Config, task: FileTask) -> int | None:
    """The Timestamp of a file's first line, by its decoder; None when it has none."""
    if not task.decoder or not task.fingerprint or is_heka_stream(task.fingerprint):
        return None
    try:
        decoder = build_plugin(config, task.decoder, "Decoder")
        record = Message(payload=task.fingerprint.decode("utf-8", "replace"),
                         logger=task.stream, timestamp=0)
        got = decoder.decode(record)
        if got is None:  # held back for continuation lines
            got = decoder.flush()
    except Exception:  # an undecodable first line: the file just starts early
        return None
    messages = [got] if isinstance(got, Message) else got or []
    stamps = [m.timestamp for m in messages if m.timestamp]
    return min(stamps) if stamps else None


def describe_plan(p: Plan, out: Any) -> None:
    for t in p.tasks:
        print(f"{t.path}\tstream {t.stream}\tsplitter {t.splitter}\tdecoder "
              f"{t.decoder or '-'}", file=out)
    for path in p.unmatched:
        print(f"{path}\tnot matched by any LogstreamerInput file_match", file=out)


def default_state_path(config: Config) -> Path:
    return Path(config.hekad.base_dir) / "replay" / "state.json"
