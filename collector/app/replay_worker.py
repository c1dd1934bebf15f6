"""The decoding side of `hekapy replay`: each worker process is a small collector of
its own. It takes files from the coordinator (collector/app/replay.py), reads them
(collector/app/replay_archive.py), splits and decodes them with the input section's
splitter and decoder as the daemon's LogstreamerInput would, and routes the messages
through a pipeline (collector/engine/pipeline.py) of its own:

- the outputs whose destination takes several writers at once (Elasticsearch, AMQP,
  HTTP, TCP, UDP, InfluxDB: `PARALLEL_OUTPUT_TYPES`) run in every worker, each with its
  own connections, so decoding, encoding and shipping scale with the workers;
- what the coordinator consumes (the filters, which must see every message in one
  place, and the other outputs: files, stdout) is matched here and forwarded to it, with
  the bytes those outputs' encoders make of each message, by `ForwardOutput`; the
  coordinator acknowledges each forwarded batch once its consumers took it.

A file's position is acknowledged once every route has it (the worker's outputs
stored it, the coordinator's consumers took it): the worker reports it, the coordinator
writes the state file. Decoders and encoders get the pipeline's start and stop calls
(init, shutdown, `preserve_data`) with the worker's `base_dir`,
`<replay dir>/worker-<n>`: each worker is one collector instance, as each hekad was.

Uuids are the daemon's (collector/inputs/logstreamer/logstreamer_input.py: hostname,
stream name, the file's first line, the record's offset in the uncompressed stream), so
a file the daemon already shipped, or one replayed twice, overwrites its documents.

Undecodable records are counted per file, with the first reason, and reported to the
coordinator (which names the files mostly undecodable) instead of being logged one by
one. The worker's own log lines and anything printed go to the coordinator too, which
prints them above its progress line.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any, ClassVar, NamedTuple

from hekapy.collector.app.gc_tuning import tune_gc
from hekapy.collector.app.replay_archive import (
    READ_ERRORS,
    CountingReader,
    open_archive,
    salvage,
)
from hekapy.collector.app.replay_plan import HEKA_STREAM_INPUT, OVERRIDE_INPUT, FileTask
from hekapy.collector.engine.config import Config, ConfigError, load_config
from hekapy.collector.engine.config import _build_spec as build_spec
from hekapy.collector.engine.contexts import InputContext, OutputContext, max_record_size
from hekapy.collector.engine.matcher import compile_matcher
from hekapy.collector.engine.message import BOOL, Field, Message, new_record_message
from hekapy.collector.engine.pipeline import Pipeline, build_plugin
from hekapy.collector.engine.plugin import (
    DecodeError,
    Decoder,
    Input,
    Output,
    PluginSpec,
    Splitter,
)
from hekapy.collector.engine.serialize import pack_batch
from hekapy.collector.inputs.logstreamer.logstreamer_input import (
    MAX_BATCH_RECORDS,
    identity_key,
    record_offsets,
)

READ_SIZE = 1 << 20
# Outputs every worker runs for itself: their destination takes several writers at
# once. Any other output (a file, stdout, a type this list does not know) runs once,
# in the coordinator.
PARALLEL_OUTPUT_TYPES = frozenset({"ElasticSearchOutput", "AMQPOutput", "HttpOutput",
                                   "TcpOutput", "UdpOutput", "InfluxdbOutput"})
FORWARD_OUTPUT = "replay_forward"
# Forwarded batches waiting for the coordinator's acknowledgement, per worker.
FORWARD_WINDOW = 16


# --- the configuration a worker and the coordinator run ------------------------------------

def replay_output_spec(spec: PluginSpec) -> PluginSpec:
    """An output as replay runs it: without its disk buffer (the archive is the buffer,
    and several processes must not share one buffer directory): acknowledged once its
    destination stored the message."""
    cfg = copy.copy(spec.cfg)
    cfg.use_buffering = False
    return PluginSpec(spec.name, spec.type_name, spec.cls, cfg, spec.file, spec.valid)


def runs_in_workers(spec: PluginSpec) -> bool:
    return spec.type_name in PARALLEL_OUTPUT_TYPES


def coordinator_consumers(config: Config) -> list[PluginSpec]:
    """The filters and the outputs that run in the coordinator, i.e. what workers
    forward messages to."""
    return [s for s in config.plugins.values() if s.category == "Filter"
            or (s.category == "Output" and not runs_in_workers(s))]


def stage_specs(config: Config) -> dict[str, PluginSpec]:
    """Splitters, decoders and encoders: what inputs and outputs refer to by name."""
    return {n: s for n, s in config.plugins.items()
            if s.category in ("Splitter", "Decoder", "Encoder")}


def replay_hekad(config: Config, base_dir: str, hostname: str) -> Any:
    hekad = copy.copy(config.hekad)
    hekad.base_dir = base_dir
    if hostname:
        hekad.hostname = hostname
    return hekad


class ReplayFileInput(Input):
    """A LogstreamerInput section under replay (not for configs): its decoder and
    splitter, fed with archived files by the worker (`ReplayWorker.replay_file`)."""

    type_name: ClassVar[str] = "ReplayFileInput"
    category: ClassVar[str] = "Input"

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.finished = asyncio.Event()  # set by the worker when it has no more files

    async def run(self, ctx: InputContext) -> None:
        await self.finished.wait()


def _synthetic_input(name: str, decoder: str, splitter: str) -> PluginSpec:
    errors: list[ConfigError] = []
    spec = build_spec(name, {"type": "ReplayFileInput", "decoder": decoder,
                             "splitter": splitter}, "", errors,
                      plugin_class={"ReplayFileInput": ReplayFileInput}.get)
    assert spec is not None and not errors, errors
    return spec


def worker_config(config: Config, setup: WorkerSetup) -> Config:
    """The worker's pipeline: one ReplayFileInput per input section of the plan, the
    parallel outputs, and the forwarding output if the coordinator consumes anything."""
    plugins = stage_specs(config)
    for name in setup.sections:
        if name == HEKA_STREAM_INPUT:
            plugins[name] = _synthetic_input(name, "ProtobufDecoder", "HekaFramingSplitter")
        elif name == OVERRIDE_INPUT:
            plugins[name] = _synthetic_input(name, setup.override_decoder, "TokenSplitter")
        else:
            spec = config.plugins[name]
            plugins[name] = PluginSpec(name, ReplayFileInput.type_name, ReplayFileInput,
                                       copy.copy(spec.cfg), spec.file)
    for spec in config.by_category("Output"):
        if runs_in_workers(spec):
            plugins[spec.name] = replay_output_spec(spec)
    consumers = coordinator_consumers(config)
    if consumers:
        errors: list[ConfigError] = []
        matcher = " || ".join(f"({s.cfg.message_matcher})" for s in consumers)
        forward = build_spec(FORWARD_OUTPUT, {"type": "ForwardOutput",
                                              "message_matcher": matcher}, "", errors,
                             plugin_class={"ForwardOutput": ForwardOutput}.get)
        assert forward is not None and not errors, errors
        plugins[FORWARD_OUTPUT] = forward
    return Config(files=config.files,
                  hekad=replay_hekad(config, setup.base_dir, setup.hostname),
                  plugins=plugins, defaults=config.defaults)


# --- what travels between a worker and the coordinator --------------------------------------

@dataclass
class WorkerSetup:
    """Everything a worker process needs (it loads the configuration itself)."""

    worker_id: int
    config_path: str
    hostname: str  # "" = the configuration's
    base_dir: str  # this worker's
    since: int | None
    until: int | None
    sections: list[str]  # the input sections of the plan
    override_decoder: str = ""
    log_level: str = "info"
    # The coordinator's filters tick on message time: report how far each file got.
    message_time: bool = False


class Delivered(NamedTuple):
    """The position of one delivery: once acknowledged, the file is stored up to
    `offset` (uncompressed), its messages up to `newest` (Timestamp, ns)."""

    index: int  # type: ignore[assignment]  # the file's number shadows tuple.index
    offset: int
    newest: int
    messages: int
    last: bool  # the file's last delivery
    complete: bool  # ... and the file was read to its end


@dataclass
class FileReport:
    """How reading and decoding one file went."""

    index: int
    records: int = 0
    decode_failures: int = 0
    first_failure: str = ""
    skipped_time: int = 0  # messages outside --since/--until
    error: str = ""  # the file could not be read to its end


def stored_by_output(p: Pipeline) -> dict[str, int]:
    """Messages each output stored (acknowledged by its destination), for the summary."""
    return {octx.name: octx.stats.messages_out for plugin, octx in p.outputs
            if not isinstance(plugin, ForwardOutput)}


def pre_encoders(config: Config) -> list[tuple[Any, str, Any]]:
    """(matcher, encoder name, encoder) of the coordinator's outputs whose encoder
    needs no start call: workers encode for them, so the coordinator only writes."""
    out = []
    for spec in config.by_category("Output"):
        name = spec.cfg.encoder
        enc_spec = config.resolve(name, "Encoder") if name and not runs_in_workers(spec) \
            else None
        if enc_spec is None:
            continue
        enc = enc_spec.build()
        if not (hasattr(enc, "init") or hasattr(enc, "shutdown")):
            out.append((compile_matcher(spec.cfg.message_matcher), name, enc))
    return out


def pre_encode(encoders: list[tuple[Any, str, Any]], messages: list[Message]
               ) -> list[dict[str, bytes] | None]:
    """Per message, what each matching encoder makes of it (an encoder error is left to
    the coordinator's output, which counts and logs it)."""
    out: list[dict[str, bytes] | None] = []
    for m in messages:
        done: dict[str, bytes] | None = None
        for pred, name, enc in encoders:
            if not pred(m) or (done is not None and name in done):
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
    return out


class ForwardOutput(Output):
    """The worker's route to the coordinator (not for configs): matched batches go to it
    packed, each acknowledged when the coordinator says its consumers took it."""

    type_name: ClassVar[str] = "ForwardOutput"
    category: ClassVar[str] = "Output"
    worker: ReplayWorker

    async def run(self, ctx: OutputContext) -> None:
        worker = self.worker
        self.pending: deque[tuple[int, Any]] = deque()
        self.room = asyncio.Event()
        self.room.set()
        seq = 0
        while (batch := await ctx.next_batch()) is not None:
            while len(self.pending) >= FORWARD_WINDOW:
                self.room.clear()
                await self.room.wait()
            seq += 1
            self.pending.append((seq, batch))
            packed = pack_batch(batch.messages, pre_encode(worker.pre_encoders,
                                                           batch.messages))
            worker.send(("fwd", worker.setup.worker_id, seq, packed))
            ctx.stats.messages_out += len(batch)

    def acknowledge(self, upto: int) -> None:
        """The coordinator took every forwarded batch up to `upto`."""
        pending = self.pending
        while pending and pending[0][0] <= upto:
            pending.popleft()[1].done()
        self.room.set()


# --- the worker ---------------------------------------------------------------------------

class ReplayWorker:
    """One worker process: its pipeline, the files it is given, its reports."""

    def __init__(self, setup: WorkerSetup, tasks: Any, results: Any, control: Any) -> None:
        self.setup = setup
        self.tasks = tasks
        self.results = results
        self.control = control
        self.stopping = False
        self.pre_encoders: list[tuple[Any, str, Any]] = []
        self.forward: ForwardOutput | None = None
        self.dispatcher: asyncio.Future | None = None
        self.stop_requested = asyncio.Event()
        self.go = asyncio.Event()  # the coordinator's start: every worker is ready

    def send(self, item: tuple) -> None:
        self.results.put(item)

    # The coordinator's messages arrive on a thread (a blocking queue).
    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        while (item := self.control.get()) is not None:
            loop.call_soon_threadsafe(self._on_control, item)

    def _on_control(self, item: tuple) -> None:
        if item[0] == "fwd_acked" and self.forward is not None:
            self.forward.acknowledge(item[1])
        elif item[0] == "go":
            self.go.set()
        elif item[0] == "stop":
            # Stop reading now, even in the middle of waiting for room: what was not
            # acknowledged is read again on --resume.
            self.stopping = True
            self.stop_requested.set()
            if self.dispatcher is not None:
                self.dispatcher.cancel()

    async def run(self) -> None:
        setup = self.setup
        config = load_config(setup.config_path, strict=True)
        p = Pipeline(worker_config(config, setup))
        self.config = p.config
        self.hostname = p.hekad.hostname
        self.inputs: dict[str, InputContext] = {}
        for _, ictx in p.inputs:
            ictx.on_ack(self._acknowledged)
            self.inputs[ictx.name] = ictx
        for plugin, _ in p.outputs:
            if isinstance(plugin, ForwardOutput):
                plugin.worker = self
                self.forward = plugin
        self.pre_encoders = pre_encoders(config)
        tune_gc()  # once the pipeline is built, as the daemon does
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._listen, args=(loop,), daemon=True).start()
        await p.start()
        self.send(("ready", setup.worker_id))
        self.dispatcher = asyncio.ensure_future(self.dispatch())
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self.dispatcher  # cancelled by a stop request only
            if not self.stopping:
                await self._until_settled_or_stopped(p)
            if self.stopping:
                # What a decoder holds was not acknowledged: --resume reads it again
                # (routing it now could wait for ever on outputs that cannot store).
                for ctx in self.inputs.values():
                    if ctx.decoder is not None and ctx.decoder.holding:
                        ctx.decoder.flush()
        finally:
            self._finish_inputs(p)
            await p.stop()
        self.send(("exit", setup.worker_id, stored_by_output(p)))

    @staticmethod
    def _finish_inputs(p: Pipeline) -> None:
        """No more files: the inputs' run returns (their decoders are flushed)."""
        for input_plugin, _ in p.inputs:
            if isinstance(input_plugin, ReplayFileInput):
                input_plugin.finished.set()

    async def _until_settled_or_stopped(self, p: Pipeline) -> None:
        """Every file is read: until everything is acknowledged (before the outputs
        stop: they abandon what they still retry once stopping), or a stop request."""
        self._finish_inputs(p)

        async def settled() -> None:
            await p.inputs_finished()
            await asyncio.gather(*(c.tracker.wait_idle() for c in self.inputs.values()))

        waits = {asyncio.ensure_future(settled()),
                 asyncio.ensure_future(self.stop_requested.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def dispatch(self) -> None:
        """Once every worker is ready, the files, one at a time, until none is left."""
        loop = asyncio.get_running_loop()
        await self.go.wait()
        while True:
            task = await loop.run_in_executor(None, self.tasks.get)
            if task is None:
                return
            self.send(("start", task.index))
            await self.replay_file(task, self.inputs[task.section])

    def _acknowledged(self, position: Delivered) -> None:
        self.send(("acked", position.index, position.offset, position.newest,
                   position.messages))
        if position.last:
            self.send(("complete", position.index, position.complete))

    # --- one file -----------------------------------------------------------------------
    async def replay_file(self, task: FileTask, ctx: InputContext) -> None:
        report = FileReport(task.index)
        splitter = build_plugin(self.config, task.splitter, "Splitter")
        assert isinstance(splitter, Splitter)
        splitter.max_record_size = max_record_size(ctx.hekad)
        decoding = FileDecoding(self, task, ctx, report,
                                bool(splitter.cfg.use_message_bytes))
        reader = ChunkReader(task.path, report)
        offset = 0  # uncompressed bytes read
        hist = b""
        newest = 0
        try:
            while not self.stopping:
                data = await reader.next_chunk()
                chunk_start = offset
                offset += len(data)
                prev_rem = splitter.remainder
                records = splitter.split(data) if data else splitter.flush()
                consume_start = chunk_start - prev_rem
                consume_end = offset - splitter.remainder
                if records and b"" in records:
                    records = [r for r in records if r]  # Heka delivers no empty records
                if records:
                    offs = record_offsets(records, hist, data, chunk_start, consume_start)
                    if task.start:
                        keep = [i for i, o in enumerate(offs) if o >= task.start]
                        records = [records[i] for i in keep]
                        offs = [offs[i] for i in keep]
                    for i in range(0, len(records), MAX_BATCH_RECORDS):
                        j = min(len(records), i + MAX_BATCH_RECORDS)
                        msgs = decoding.decode(records[i:j], offs[i:j])
                        newest = max(newest, decoding.newest)
                        end = max(offs[j] if j < len(records) else consume_end, task.start)
                        nbytes = sum(map(len, records[i:j]))
                        await ctx.deliver_decoded(msgs, Delivered(
                            task.index, end, newest, len(msgs), False, False), nbytes)
                        self.send(("read", task.index, reader.raw_bytes, j - i, nbytes))
                        if self.stopping:
                            break
                # The next chunk's records may begin in this one: keep the bytes of
                # the record the splitter still holds (record_offsets looks there).
                need = splitter.remainder
                hist = data[len(data) - need:] if need <= len(data) else \
                    (hist + data)[len(hist) + len(data) - need:]
                if not data:
                    break
        except Exception as e:  # a bug must not end the replay: the other files go on
            report.error = f"{type(e).__name__}: {e}"
        finally:
            reader.close()
        if self.stopping:
            return  # what the decoder holds is read again on --resume
        # The end of the file ends what the decoder holds (a traceback at its very end).
        tail = decoding.flush()
        newest = max(newest, decoding.newest)
        await ctx.deliver_decoded(tail, Delivered(task.index, offset, newest, len(tail),
                                                  True, not report.error), 0)
        self.send(("file_end", report))


class ChunkReader:
    """A file's uncompressed bytes, a chunk at a time, the next chunk read ahead in a
    thread while this one is decoded: decompression (zlib, bz2, lzma release the GIL)
    and disk reads overlap the decoding. A file damaged part way gives what it had
    before the damage, then b"" with the report's error set."""

    def __init__(self, path: str, report: FileReport) -> None:
        self.path = path
        self.report = report
        self.offset = 0
        self._ahead: asyncio.Future | None = None
        self._file: IO[bytes] | None
        self._raw: CountingReader | None
        try:
            self._file, self._raw = open_archive(path)
        except OSError as e:
            self._file = self._raw = None
            report.error = f"{type(e).__name__}: {e}"

    @property
    def raw_bytes(self) -> int:
        """Bytes read from disk so far (compressed)."""
        return self._raw.count if self._raw is not None else 0

    async def next_chunk(self) -> bytes:
        if self._file is None or self.report.error:
            return b""
        loop = asyncio.get_running_loop()
        if self._ahead is None:
            self._ahead = loop.run_in_executor(None, self._file.read, READ_SIZE)
        try:
            data = await self._ahead
        except READ_ERRORS as e:
            # The bytes decompressed before the damage, read again in small steps.
            self._ahead = None
            data = salvage(self.path, self.offset)
            self.report.error = (f"{type(e).__name__}: {e} (after {self.offset + len(data)}"
                                 " uncompressed bytes; the rest of the file is skipped)")
            self.offset += len(data)
            return data
        self.offset += len(data)
        self._ahead = loop.run_in_executor(None, self._file.read, READ_SIZE) if data \
            else None
        return data

    def close(self) -> None:
        raw, ahead = self._raw, self._ahead
        if raw is None:
            return
        self._raw = self._file = None

        def closing(done: asyncio.Future) -> None:
            if not done.cancelled():
                done.exception()  # a read error after we stopped listening: not news
            raw.close()

        if ahead is None:
            raw.close()
        elif ahead.done():
            closing(ahead)
        else:  # a read still running in its thread: close once it returns
            ahead.add_done_callback(closing)


@dataclass
class FileDecoding:
    """Records of one file → decoded messages, as LogstreamerInput makes them, with
    the file's failures counted instead of logged."""

    worker: ReplayWorker
    task: FileTask
    ctx: InputContext
    report: FileReport
    use_bytes: bool
    newest: int = 0  # the newest Timestamp decoded (only when the coordinator needs it)

    def __post_init__(self) -> None:
        w = self.worker
        self.key = identity_key(w.hostname, self.task.stream, self.task.fingerprint)
        self.lo = w.setup.since if w.setup.since is not None else -(1 << 63)
        self.hi = w.setup.until if w.setup.until is not None else 1 << 63
        self.windowed = w.setup.since is not None or w.setup.until is not None

    def decode(self, records: list[bytes], offs: list[int]) -> list[Message]:
        ctx, report = self.ctx, self.report
        now = time.time_ns()
        stream, host, key = self.task.stream, self.worker.hostname, self.key
        if self.use_bytes:
            msgs = [new_record_message(now, "logfile", stream, host, "", r) for r in records]
        else:
            msgs = [new_record_message(now, "logfile", stream, host,
                                       r.decode("utf-8", "replace")) for r in records]
        for m, o in zip(msgs, offs, strict=True):
            m.uuid = (key ^ o).to_bytes(16, "big")
        report.records += len(records)
        dec = ctx.decoder
        if dec is None:
            return self.keep(msgs)
        assert ctx.hold is not None
        # These records travel in the next delivery: a multi-line decoder dates what it
        # holds back by it.
        dec.batch = ctx.hold.upcoming()
        out: list[Message] = []
        append = out.append
        for m in msgs:
            try:
                r = dec.decode(m)
            except DecodeError as e:
                self.failed(m, str(e), out)
                continue
            except Exception as e:  # a decoder bug must not end the file
                self.failed(m, f"{type(e).__name__}: {e}", out)
                continue
            if r is None:
                continue
            if isinstance(r, Message):
                append(r)
            else:
                out.extend(r)
        return self.keep(out)

    def failed(self, msg: Message, reason: str, out: list[Message]) -> None:
        report = self.report
        report.decode_failures += 1
        if not report.first_failure:
            report.first_failure = f"{reason}: {msg.payload[:200]!r}"
        if self.ctx.send_decode_failures:  # the daemon's option, honoured
            msg.fields.append(Field("decode_failure", [True], BOOL))
            out.append(msg)

    def flush(self) -> list[Message]:
        dec: Decoder | None = self.ctx.decoder
        if dec is None or not dec.holding:
            return []
        return self.keep(dec.flush())

    def keep(self, messages: list[Message]) -> list[Message]:
        """The deployment tags, and the time window."""
        ctx = self.ctx
        if not messages:
            return messages
        if ctx.tags:
            ctx.add_tags(messages)
        if self.windowed:
            lo, hi = self.lo, self.hi
            kept = [m for m in messages if lo <= m.timestamp < hi]
            self.report.skipped_time += len(messages) - len(kept)
            messages = kept
        if messages and self.worker.setup.message_time:
            self.newest = max(self.newest, max(m.timestamp for m in messages))
        return messages


# --- the process --------------------------------------------------------------------------

class _ToCoordinator:
    """A worker's stdout and stderr: whole lines go to the coordinator, which prints
    them above its progress line."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.send(("log", line))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self) -> Any:
        return _BytesToText(self)


class _BytesToText:
    def __init__(self, text: _ToCoordinator) -> None:
        self.text = text

    def write(self, data: bytes) -> int:
        return self.text.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        pass


def worker_main(setup: WorkerSetup, tasks: Any, results: Any, control: Any) -> None:
    """A worker process: files from `tasks` until None, reports to `results`, the
    coordinator's acknowledgements and stop request from `control`."""
    # Ctrl-C reaches the whole process group: the coordinator decides, and tells.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = ReplayWorker(setup, tasks, results, control)
    sys.stdout = sys.stderr = _ToCoordinator(worker.send)
    logging.basicConfig(level=setup.log_level.upper(), stream=sys.stderr, force=True,
                        format=f"%(levelname)s %(name)s (worker {setup.worker_id}): "
                               "%(message)s")
    try:
        run_loop(worker.run())
    except Exception as e:
        results.put(("failed", setup.worker_id, f"{type(e).__name__}: {e}"))


def run_loop(coro: Any) -> Any:
    """Run `coro` on uvloop when it is installed, as the daemon does."""
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
