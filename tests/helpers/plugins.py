"""Plugins and configurations for tests: a plugin built as the loader builds it, a
configuration written and loaded strictly, and plugins that exist only for tests
(registered under their type names when this module is imported; tests/conftest.py
imports it, so a test's TOML can name them)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

from hekapy.collector.engine.config import Config, load_config
from hekapy.collector.engine.contexts import FilterContext, InputContext, OutputContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import Filter, Input, Option, Output, Plugin, register
from tests.helpers.wait import wait_for


def make_plugin(cls: type[Plugin], name: str = "p", **overrides) -> Plugin:
    """Build a plugin with its defaults plus `overrides`, as the loader would."""
    values = {k: o.default_value() for k, o in cls.all_options().items()}
    for k, v in cls.defaults.items():
        values[k] = cls.all_options()[k].convert(v)
    values.update(overrides)
    return cls(name, SimpleNamespace(**values))


def write_config(tmp_path: Path, text: str, name: str = "hekad.toml") -> Path:
    """`text` (dedented) as the file `name` under `tmp_path`."""
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def config_from(tmp_path: Path, text: str) -> Config:
    """`text` written under `tmp_path` and loaded strictly (unknown keys are errors)."""
    return load_config(write_config(tmp_path, text), strict=True)


# --- test plugins ------------------------------------------------------------------------

@register
class SequenceInput(Input):
    """Delivers `count` records "line N\\n" in batches of `batch`, positions = N; with
    count = -1 it never stops. Records every position the pipeline acknowledged."""

    options = {
        "count": Option("int", 10),
        "batch": Option("int", 10),
        "record_type": Option("str", "test"),
        "pad": Option("int", 0, doc="pad each record to this many bytes"),
    }

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.produced = 0
        self.acked: list[int] = []
        self.closed_at: int | None = None
        self.finished = asyncio.Event()

    async def run(self, ctx: InputContext) -> None:
        ctx.on_ack(self.acked.append)
        n = 0
        while self.cfg.count < 0 or n < self.cfg.count:
            if ctx.stopping.is_set():
                break
            k = self.cfg.batch if self.cfg.count < 0 else min(self.cfg.batch,
                                                               self.cfg.count - n)
            records = [f"line {n + i}".ljust(self.cfg.pad - 1).encode() + b"\n"
                       for i in range(k)]
            n += k
            await ctx.deliver_records(records, n, type=self.cfg.record_type, logger=self.name)
            self.produced = n
        self.finished.set()

    async def close(self, ctx: InputContext) -> None:
        self.closed_at = self.acked[-1] if self.acked else None


@register
class ScriptInput(Input):
    """Delivers `ScriptInput.script` (a list of record batches) with positions 1, 2, …;
    keeps running (as a tailing input does) until the pipeline stops when `linger`."""

    script: list[list[str]] = []
    linger = False
    last: ScriptInput | None = None

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.acked: list[int] = []
        self.delivered = 0
        ScriptInput.last = self

    async def run(self, ctx: InputContext) -> None:
        ctx.on_ack(self.acked.append)
        for i, batch in enumerate(self.script, 1):
            await ctx.deliver_records([r.encode() for r in batch], i, logger="nova_nova-api")
            self.delivered = i
        if self.linger:
            await ctx.stopping.wait()


@register
class CollectOutput(Output):
    """Keeps every message it gets. mode: "ack" acknowledges each batch, "hold" takes
    batches but never acknowledges them, "stuck" never takes anything, "fail:N" raises
    on the first N batches."""

    options = {"mode": Option("str", "ack")}
    instances: dict[str, CollectOutput] = {}

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.messages: list[Message] = []
        self.held = []
        self.failures_left = int(cfg.mode.split(":")[1]) if cfg.mode.startswith("fail:") else 0
        CollectOutput.instances[name] = self

    async def run(self, ctx: OutputContext) -> None:
        if self.cfg.mode == "stuck":
            await asyncio.Event().wait()
        while (batch := await ctx.next_batch()) is not None:
            if self.failures_left:
                self.failures_left -= 1
                raise RuntimeError("simulated failure")
            self.messages.extend(batch.messages)
            if self.cfg.mode == "hold":
                self.held.append(batch)
            else:
                batch.done()


@register
class RelayFilter(Filter):
    """Re-injects a copy of every message with Type `inject_type` (to test loops)."""

    options = {"inject_type": Option("str", "relayed")}

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.seen = 0

    def process(self, messages, ctx: FilterContext) -> None:
        for m in messages:
            self.seen += 1
            c = m.copy()
            c.type = self.cfg.inject_type
            ctx.inject(c)


# --- pipelines built on them ---------------------------------------------------------------

async def run_script_pipeline(cfg: Config, batches: list[list[str]]) -> Pipeline:
    """Run `cfg` (with a ScriptInput section): deliver `batches`, wait until every one
    is acknowledged, stop."""
    ScriptInput.script = batches
    ScriptInput.linger = False
    p = Pipeline(cfg)
    await p.start()
    await wait_for(lambda: ScriptInput.last.acked and ScriptInput.last.acked[-1] == len(batches),
                   "every batch to be acknowledged")
    await p.stop()
    return p


def sequence_to_es_config(url: str | list[str], tmp_path: Path, count: int, extra: str = "",
                          batch: int = 500, http_timeout: int = 2000,
                          use_buffering: bool = False, pad: int = 0) -> str:
    """SequenceInput → ESJsonEncoder (ids = Uuids) → ElasticSearchOutput; `extra` ends
    the [es] section (and may open [es.buffering] or [es.tls])."""
    servers = json.dumps(url if isinstance(url, list) else [url])
    return f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [src]
        type = "SequenceInput"
        count = {count}
        batch = {batch}
        record_type = "log"
        pad = {pad}
        [enc]
        type = "ESJsonEncoder"
        index = "log-%{{%Y.%m.%d}}"
        type_name = ""
        id = "%{{UUID}}"
        [es]
        type = "ElasticSearchOutput"
        message_matcher = "TRUE"
        encoder = "enc"
        server = {servers}
        flush_count = 1000
        flush_interval = 20
        max_in_flight = 4
        retry_delay = "5ms"
        retry_max_delay = "50ms"
        http_timeout = {http_timeout}
        use_buffering = {str(use_buffering).lower()}
        dead_letter_file = "{tmp_path / 'dead.ndjson'}"
        {extra}
    """
