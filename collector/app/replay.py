"""`hekapy replay`: archived logs through the daemon's own decoders, filters and outputs.

    hekapy replay -c /etc/hekapy/ [--since T] [--until T] [--workers N] [--resume]
                  [--dry-run] [--decoder NAME] [--live-dir DIR] [--hostname NAME]
                  [--max-undecodable PERCENT] [--state FILE] PATH...

Which file gets which section, stream, splitter and decoder: collector/app/replay_plan.py
(`--dry-run` prints it). N worker processes (collector/app/replay_worker.py) each run a
small collector: they decode their files and ship to the outputs whose destination
takes several writers (Elasticsearch, AMQP, HTTP, TCP, UDP, InfluxDB), and forward
what the rest of the configuration consumes (the filters, file and stdout outputs) to
this process, the coordinator, which runs those once, for all files (the config's
inputs do not run). Backpressure: a slow output holds its worker's input; a slow
coordinator holds every worker's forwarded batches (FORWARD_WINDOW each).

Metric filters (ticker_interval) tick on the lines' Timestamps, not on the clock
(collector/engine/message_clock.py): files start in the order of their first lines'
Timestamps, and a file's progress moves the watermark once everything of it up to there
was acknowledged.

Timestamps come from the lines; `--since`/`--until` (ISO 8601 dates or times, UTC
unless an offset is given) keep messages with since ≤ Timestamp < until. The state
file (`<base_dir>/replay/state.json` unless `--state`) records, per file, the offset
every route has acknowledged; `--resume` goes on from there (a file's identity is its
path and first line). The replay's own state (the workers' and filters' preserved data,
dead letters) lives beside it, in `<state dir>/` and `<state dir>/worker-<n>/`, apart
from the daemon's. Uuids are the daemon's, so nothing is indexed twice.

Exit codes: 0 done; 1 a file could not be read to its end, or a worker failed; 3 a
file's records were mostly undecodable (more than `--max-undecodable` percent, 50 by
default: the wrong decoder, or not a log of that kind), after everything decodable was
stored; 130 interrupted. SIGINT/SIGTERM: the workers stop reading and let their
outputs finish what is in flight, the state is saved ("--resume" continues); a second
signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from hekapy.collector.app.gc_tuning import tune_gc
from hekapy.collector.app.replay_plan import FileTask, Plan, is_heka_stream
from hekapy.collector.app.replay_progress import Progress, ProgressDisplay
from hekapy.collector.app.replay_worker import (
    FileReport,
    WorkerSetup,
    coordinator_consumers,
    replay_hekad,
    replay_output_spec,
    run_loop,
    runs_in_workers,
    stage_specs,
    stored_by_output,
    worker_main,
)
from hekapy.collector.engine.config import Config, ConfigError
from hekapy.collector.engine.config import _build_spec as build_spec
from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.message_clock import MessageClock
from hekapy.collector.engine.pipeline import Pipeline, build_plugin
from hekapy.collector.engine.plugin import Input
from hekapy.collector.engine.queue import Batch
from hekapy.collector.engine.router import Router
from hekapy.collector.engine.serialize import unpack_batch

EXIT_OK = 0
EXIT_ERRORS = 1  # a file not read to its end, a worker that failed
EXIT_UNDECODABLE = 3  # a file mostly undecodable
EXIT_INTERRUPTED = 130
DEFAULT_MAX_UNDECODABLE = 50.0  # percent of a file's records


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

    def forget(self) -> None:
        """A fresh replay: no positions, and none of an earlier run's preserved data."""
        self.files = {}
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for d in self.path.parent.glob("worker-*/sandbox_preservation"):
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(self.path.parent / "sandbox_preservation", ignore_errors=True)


@dataclass
class ReplayOptions:
    workers: int = 1
    since: int | None = None
    until: int | None = None
    hostname: str = ""  # "" = the configuration's
    max_undecodable: float = DEFAULT_MAX_UNDECODABLE  # percent
    decoder: str = ""  # --decoder


class ReplayInput(Input):
    """The coordinator's input (not for configs): what the workers forward, into the
    filters and the coordinator's outputs."""

    type_name: ClassVar[str] = "ReplayInput"
    category: ClassVar[str] = "Input"
    job: Replay

    async def run(self, ctx: InputContext) -> None:
        await self.job.feed(ctx)


@dataclass
class Outcome:
    """What the replay found, for the summary and the exit code."""

    reports: dict[int, FileReport] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stored: Counter = field(default_factory=Counter)  # output → messages stored


class Replay:
    """One replay run: the workers, the coordinator's pipeline, the state file, the
    progress display and the summary."""

    def __init__(self, config: Config, config_path: str, plan: Plan, options: ReplayOptions,
                 state: ReplayState, out: Any = None) -> None:
        self.config = config
        self.config_path = config_path
        self.plan = plan
        self.options = options
        self.state = state
        self.out = out if out is not None else sys.stderr
        self.progress = Progress(files=len(plan.tasks),
                                 raw_total=sum(t.size for t in plan.tasks))
        self.display = ProgressDisplay(self.progress, self.out)
        self.outcome = Outcome()
        self.identities = {t.index: file_identity(t) for t in plan.tasks}
        self.raw_seen: dict[int, int] = {}
        self.stop_requested = asyncio.Event()
        self.inbox: asyncio.Queue[tuple] = asyncio.Queue()  # the workers' reports
        self.interrupted = False
        self.saved_at = time.monotonic()
        self.clock = MessageClock()
        self.replay_dir = str(state.path.parent)
        self._pipeline: Pipeline | None = None
        self._time_driven = False
        self._controls: list[Any] = []
        self._procs: list[Any] = []
        self.reading = False  # a worker started its first file
        self.workers_started = 0

    # --- the coordinator's pipeline ------------------------------------------------------
    def pipeline(self) -> Pipeline:
        cfg = self.config
        consumers = coordinator_consumers(cfg)
        filters = [s for s in consumers if s.category == "Filter"]
        plugins = stage_specs(cfg)
        for spec in consumers:
            plugins[spec.name] = replay_output_spec(spec) if spec.category == "Output" \
                else spec
        if filters:
            # What filters inject goes to every output, the workers' kinds too.
            for spec in cfg.by_category("Output"):
                if runs_in_workers(spec):
                    plugins[spec.name] = replay_output_spec(spec)
        errors: list[ConfigError] = []
        replay_spec = build_spec("replay", {"type": "ReplayInput"}, "", errors,
                                 plugin_class={"ReplayInput": ReplayInput}.get)
        assert replay_spec is not None and not errors, errors
        plugins["replay"] = replay_spec
        replay_config = Config(files=cfg.files, hekad=replay_hekad(
            cfg, self.replay_dir, self.options.hostname), plugins=plugins,
            defaults=cfg.defaults)
        p = Pipeline(replay_config, message_time=True)
        for plugin, _ in p.inputs:
            if isinstance(plugin, ReplayInput):
                plugin.job = self
        # Forwarded messages go to the coordinator's consumers only: the workers
        # shipped them to their own outputs already.
        names = {s.name for s in consumers}
        self.forward_router = Router()
        for route in p.router.routes:
            if route.name in names:
                self.forward_router.add(route)
        self._time_driven = any(plugin.cfg.ticker_interval > 0
                                for plugin, _, _ in p.filters)
        self._pipeline = p
        return p

    # --- the workers' reports ------------------------------------------------------------
    def handle(self, item: tuple) -> None:
        """One report of a worker (forwarded batches are routed by `feed`)."""
        kind = item[0]
        if kind == "read":
            _, index, raw, nrec, nbytes = item
            self.progress.lines += nrec
            self.progress.bytes += nbytes
            self.read_raw(index, raw)
        elif kind == "acked":
            _, index, offset, newest, n = item
            entry = self.state.files.setdefault(self.identities[index], {
                "path": self.plan.tasks[index].path, "offset": 0, "done": False})
            entry["offset"] = max(entry["offset"], offset)
            self.progress.acknowledged += n
            if newest:
                self.clock.observe(index, newest)
            self.save_now_and_then()
        elif kind == "complete":
            _, index, complete = item
            if complete:
                self.state.files[self.identities[index]]["done"] = True
            self.clock.finish(index)
        elif kind == "start":
            self.clock.start(item[1])
        elif kind == "file_end":
            report: FileReport = item[1]
            self.outcome.reports[report.index] = report
            self.progress.files_done += 1
            self.read_raw(report.index, self.plan.tasks[report.index].size)
            if report.error:
                self.error(f"{self.plan.tasks[report.index].path}: {report.error}")
        elif kind == "log":
            self.display.print(item[1])
        elif kind == "failed":
            self.error(f"worker {item[1] + 1} failed: {item[2]}")

    def start_reading(self, workers: int) -> None:
        """Every worker is ready: they start together (start-up is over)."""
        self.reading = True
        self.display.print(
            f"hekapy replay: reading {self.progress.files - self.progress.files_done} files "
            f"with {workers} worker(s) (start-up "
            f"{time.monotonic() - self.progress.started:.1f} s)")
        for c in self._controls:
            c.put(("go",))

    def error(self, text: str) -> None:
        self.outcome.errors.append(text)
        self.display.print(f"hekapy replay: {text}")

    def read_raw(self, index: int, raw: int) -> None:
        """Progress: file `index` has been read up to `raw` bytes on disk."""
        seen = self.raw_seen.get(index, 0)
        if raw > seen:
            self.progress.raw_bytes += raw - seen
            self.raw_seen[index] = raw

    def save_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self.saved_at > 1.0:  # the state file, about once a second
            self.saved_at = now
            self.state.save()

    def forwarded_acknowledged(self, position: Any) -> None:
        """The coordinator's consumers took forwarded batch `position` (and every one
        before it): its worker may acknowledge it."""
        worker, seq = position
        self._controls[worker].put(("fwd_acked", seq))

    # --- the run -------------------------------------------------------------------------
    def todo(self) -> list[FileTask]:
        """The files not complete yet, from their acknowledged offsets, in the order
        they start."""
        out = []
        for t in self.plan.tasks:
            entry = self.state.files.get(self.identities[t.index])
            if entry and entry.get("done"):
                self.progress.files_done += 1
                self.progress.raw_bytes += t.size
                continue
            t.start = entry["offset"] if entry else 0
            out.append(t)
        if self._time_driven:
            # Metric filters tick on message time: files start in the order of their
            # first lines' Timestamps, which bound the watermark until they start; a
            # file whose first line says nothing starts first.
            firsts = first_timestamps(self.config, out)
            out.sort(key=lambda t: (firsts[t.index] is not None, firsts[t.index] or 0,
                                    t.index))
            self.clock = MessageClock((t.index, firsts[t.index]) for t in out)
        return out

    async def feed(self, ctx: InputContext) -> None:
        """The coordinator's input: start the workers, take their reports, route what
        they forward, until every worker is gone."""
        ctx.on_ack(self.forwarded_acknowledged)
        todo = self.todo()
        mp = multiprocessing.get_context("spawn")
        tasks = mp.Queue()
        results = mp.Queue()
        for t in todo:
            tasks.put(t)
        n = min(self.options.workers, max(1, len(todo)))
        for _ in range(n):
            tasks.put(None)
        sections = self.plan.sections
        self._controls = [mp.Queue() for _ in range(n)]
        procs = []
        for i in range(n):
            setup = WorkerSetup(i, self.config_path, self.options.hostname,
                                os.path.join(self.replay_dir, f"worker-{i + 1}"),
                                self.options.since, self.options.until, sections,
                                self.options.decoder, self.config.hekad.log_level,
                                self._time_driven)
            procs.append(mp.Process(target=worker_main, args=(
                setup, tasks, results, self._controls[i]), daemon=True,
                name=f"hekapy-replay-{i + 1}"))
        for proc in procs:
            proc.start()
        loop = asyncio.get_running_loop()
        self._procs = procs
        self.workers_started = n

        # Reports arrive on a thread blocked on the queue (no polling); a worker's end
        # is put in the same queue by a thread joining it, after whatever it sent.
        def read_reports() -> None:
            while (item := results.get()) is not None:
                loop.call_soon_threadsafe(self.inbox.put_nowait, item)

        def watch(i: int) -> None:
            procs[i].join()
            results.put(("gone", i, procs[i].exitcode))

        reader = threading.Thread(target=read_reports, daemon=True)
        watchers = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(n)]
        for thread in (reader, *watchers):
            thread.start()
        alive = set(range(n))
        ready: set[int] = set()
        try:
            while alive:
                item = await self.inbox.get()
                kind = item[0]
                if kind == "interrupt":
                    self.interrupted = True
                    for c in self._controls:
                        c.put(("stop",))
                elif kind == "ready":
                    ready.add(item[1])
                elif kind == "exit":
                    alive.discard(item[1])
                    self.outcome.stored.update(item[2])
                elif kind == "gone":
                    if item[1] in alive:
                        alive.discard(item[1])
                        self.error(f"worker {item[1] + 1} died (exit code {item[2]})")
                elif kind == "fwd":
                    _, worker, wseq, packed = item
                    await self.route(ctx, worker, wseq, packed)
                else:
                    self.handle(item)
                if not (self.reading or self.interrupted) and alive and alive <= ready:
                    self.start_reading(n)
        finally:
            for proc in procs:
                await loop.run_in_executor(None, proc.join, 5)
                if proc.is_alive():
                    proc.terminate()
                    await loop.run_in_executor(None, proc.join, 5)
                if proc.is_alive():
                    proc.kill()
            for c in self._controls:
                c.put(None)
            # The queues close only once no thread of ours uses them: the watchers have
            # put their worker's end, the reader has taken everything up to the None.
            # (Closing under a thread blocked in get() makes it fail on a closed pipe.)
            for thread in watchers:
                await loop.run_in_executor(None, thread.join)
            results.put(None)  # the reading thread ends
            await loop.run_in_executor(None, reader.join)
            # Files never taken (interrupted) stay in the pipe: do not wait to flush.
            tasks.cancel_join_thread()
            results.close()
            tasks.close()

    async def route(self, ctx: InputContext, worker: int, seq: int, packed: bytes) -> None:
        messages = unpack_batch(packed)
        ctx.stats.messages_in += len(messages)
        watermark = self.clock.watermark if self._time_driven else None
        ticket = await ctx.tracker.ticket((worker, seq), len(packed))
        await self.forward_router.route(Batch(messages, ticket, len(packed), 0, watermark))

    async def run(self) -> int:
        p = self.pipeline()
        tune_gc()
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals > 1:  # a second one: at once, with what is acknowledged so far
                for proc in self._procs:
                    proc.terminate()
                self.display.stop()
                self.state.save()
                print(f"hekapy replay: stopped at once; state saved in {self.state.path}",
                      file=self.out, flush=True)
                os._exit(EXIT_INTERRUPTED)
            self.stop_requested.set()
            self.inbox.put_nowait(("interrupt",))

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
        self.display.start()
        await p.start()
        try:
            await p.inputs_finished()
            idle = asyncio.ensure_future(p.inputs[0][1].tracker.wait_idle())
            stop = asyncio.ensure_future(self.stop_requested.wait())
            await asyncio.wait({idle, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stop.done():
                self.interrupted = True
            idle.cancel()
            stop.cancel()
        finally:
            await p.stop()
            self.display.stop()
            self.state.save()
        self.summary()
        return self.exit_code()

    # --- the end -------------------------------------------------------------------------
    def undecodable(self) -> list[tuple[FileReport, float]]:
        """Files whose records were mostly undecodable, with the share."""
        limit = self.options.max_undecodable / 100
        out = []
        for r in self.outcome.reports.values():
            share = r.decode_failures / r.records if r.records else 0.0
            if r.decode_failures and share > limit:
                out.append((r, share))
        return out

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.outcome.errors:
            return EXIT_ERRORS
        if self.undecodable():
            return EXIT_UNDECODABLE
        return EXIT_OK

    def summary(self) -> None:
        out, pr, oc = self.out, self.progress, self.outcome
        elapsed = time.monotonic() - pr.started
        print(f"hekapy replay: {'interrupted' if self.interrupted else 'done'} in "
              f"{elapsed:,.1f} s: {pr.line()}", file=out)
        stored = oc.stored + Counter(stored_by_output(self._pipeline) if self._pipeline
                                     else {})
        for name, n in sorted(stored.items()):
            print(f"  {name}: {n:,} stored", file=out)
        skipped = sum(r.skipped_time for r in oc.reports.values())
        failures = sum(r.decode_failures for r in oc.reports.values())
        print(f"  skipped by the time window: {skipped:,}; undecodable: {failures:,}; "
              f"files with errors: {len(oc.errors)}", file=out)
        for r in sorted(oc.reports.values(), key=lambda r: r.index):
            if r.decode_failures:
                print(f"  undecodable: {r.decode_failures:,} of {r.records:,} records in "
                      f"{self.plan.tasks[r.index].path} (first: {r.first_failure})",
                      file=out)
        for r, share in self.undecodable():
            task = self.plan.tasks[r.index]
            print(f"  MOSTLY UNDECODABLE ({share:.0%} > {self.options.max_undecodable:g}%):"
                  f" {task.path}, given to {task.decoder} (section {task.section}): the "
                  "wrong decoder, or not a log of that kind", file=out)
        for _, fctx, _ in self._pipeline.filters if self._pipeline else ():
            if fctx.schedule is not None and fctx.schedule.late:
                print(f"  {fctx.name}: {fctx.schedule.late:,} messages came after their "
                      "interval had ticked (a file older than the others): counted in "
                      "a later interval", file=out)
        for path in self.plan.unmatched:
            print(f"  not replayed (no LogstreamerInput section takes it): {path}",
                  file=out)
        for path, n in dead_letters(self.config, self.replay_dir):
            print(f"  dead-lettered: {n:,} in {path}", file=out)
        if self.interrupted:
            print(f"  state saved in {self.state.path}; --resume continues", file=out)
        out.flush()


def dead_letters(config: Config, replay_dir: str) -> list[tuple[str, int]]:
    """(file, documents) of the dead-letter files the replay's outputs wrote."""
    paths = {spec.cfg.dead_letter_file for spec in config.by_category("Output")
             if getattr(spec.cfg, "dead_letter_file", "")}
    paths.update(str(p) for p in Path(replay_dir).glob("**/dead_letter/*.ndjson"))
    out = []
    for path in sorted(paths):
        if os.path.exists(path):
            with open(path, "rb") as f:
                out.append((path, sum(1 for _ in f)))
    return out


def first_timestamps(config: Config, tasks: list[FileTask]) -> dict[int, int | None]:
    """The Timestamp of each file's first line, by its decoder; None when it has none."""
    decoders: dict[str, Any] = {}
    out: dict[int, int | None] = {}
    for task in tasks:
        out[task.index] = None
        if not task.decoder or not task.fingerprint or is_heka_stream(task.fingerprint):
            continue
        try:
            if task.decoder not in decoders:
                decoders[task.decoder] = build_plugin(config, task.decoder, "Decoder")
            decoder = decoders[task.decoder]
            record = Message(payload=task.fingerprint.decode("utf-8", "replace"),
                             logger=task.stream, timestamp=0)
            got = decoder.decode(record)
            held = decoder.flush()  # held back for continuation lines
        except Exception:  # an undecodable first line: the file just starts early
            continue
        messages = ([got] if isinstance(got, Message) else got or []) + held
        stamps = [m.timestamp for m in messages if m.timestamp]
        out[task.index] = min(stamps) if stamps else None
    return out


def describe_plan(p: Plan, out: Any) -> None:
    """`--dry-run`: what each root stands for, one line per file, the unmatched ones."""
    for r in p.roots:
        what = f"stands for {r.live_dir}" if r.live_dir else (
            "matches no LogstreamerInput section" if r.how == "no match" else r.how)
        print(f"{r.root}\t{what}", file=out)
    for t in p.tasks:
        print(f"{t.path}\tstream {t.stream}\tsplitter {t.splitter}\tdecoder "
              f"{t.decoder or '-'}\tsection {t.section}", file=out)
    for path in p.unmatched:
        print(f"{path}\tunmatched: no LogstreamerInput section takes it", file=out)


def default_state_path(config: Config) -> Path:
    return Path(config.hekad.base_dir) / "replay" / "state.json"


def replay_command(config: Config, config_path: str, paths: list[str], *, since: str | None,
                   until: str | None, workers: int, resume: bool, dry_run: bool,
                   decoder: str, live_dir: str, hostname: str, max_undecodable: float,
                   state_path: str | None, out: Any = None) -> int:
    """`hekapy replay`: the exit code. ReplayError for arguments that cannot work."""
    from hekapy.collector.app.replay_plan import PlanError, plan
    if not 0 <= max_undecodable <= 100:
        raise ReplayError(f"--max-undecodable {max_undecodable:g}: a percentage, 0 to 100")
    if live_dir and not os.path.isabs(live_dir):
        raise ReplayError(f"--live-dir {live_dir!r}: an absolute path, as the "
                          "configuration's log_directory")
    options = ReplayOptions(workers=max(1, workers), hostname=hostname,
                            max_undecodable=max_undecodable, decoder=decoder,
                            since=parse_time(since) if since else None,
                            until=parse_time(until) if until else None)
    try:
        files = plan(config, paths, decoder, live_dir)
    except PlanError as e:
        raise ReplayError(str(e)) from None
    if dry_run:
        describe_plan(files, sys.stdout)
        return EXIT_OK
    if not files.tasks:
        raise ReplayError("no file to replay (no LogstreamerInput section takes any; see "
                          "--dry-run, or give --decoder)")
    state = ReplayState(Path(state_path) if state_path else default_state_path(config))
    if resume:
        state.load()
    else:
        state.forget()
    return run_loop(Replay(config, config_path, files, options, state, out).run())
