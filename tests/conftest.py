"""Shared test helpers and small plugins that exist only for tests."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from hekapy.collector.compiled import HOT_MODULES, source_path
from hekapy.collector.engine.config import Config, load_config
from hekapy.collector.engine.contexts import FilterContext, InputContext, OutputContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Filter, Input, Option, Output, Plugin, register


def pytest_configure(config) -> None:
    """Refuse to test a compiled hot module older than its source, or a compiled module
    that is no longer hot: the source would not be what runs (scripts/test and
    scripts/setup-venv rebuild them)."""
    root = Path(__file__).resolve().parents[1]
    stale = []
    for name in HOT_MODULES:
        origin = importlib.util.find_spec(name).origin or ""
        if not origin.endswith(".py") and \
                os.path.getmtime(origin) < os.path.getmtime(root / source_path(name)):
            stale.append(name)
    hot = set(map(source_path, HOT_MODULES))
    stale += [str(so.relative_to(root)) for top in ("collector", "decoders", "filters",
                                                    "outputs", "benchmarks")
              for so in (root / top).rglob("*.so")
              if str(so.relative_to(root)).split(".")[0] + ".py" not in hot]
    if stale:
        pytest.exit(f"compiled modules older than their source, or no longer hot: "
                    f"{', '.join(stale)}; run scripts/setup-venv test,fast", returncode=4)


def make_plugin(cls: type[Plugin], name: str = "p", **overrides) -> Plugin:
    """Build a plugin with its defaults plus `overrides`, as the loader would."""
    values = {k: o.default_value() for k, o in cls.all_options().items()}
    for k, v in cls.defaults.items():
        values[k] = cls.all_options()[k].convert(v)
    values.update(overrides)
    return cls(name, SimpleNamespace(**values))


def write_config(tmp_path: Path, text: str, name: str = "hekad.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def config_from(tmp_path: Path, text: str) -> Config:
    return load_config(write_config(tmp_path, text), strict=True)


async def until(predicate, what: str = "condition", max_spins: int = 200_000) -> None:
    """Let the event loop run until `predicate()` holds. Spins on the loop (no wall-clock
    sleeps); fails loudly if the condition never comes."""
    for _ in range(max_spins):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"timed out waiting for {what}")


async def settle(spins: int = 2000) -> None:
    """Give every runnable task many chances to run (to show that nothing moves)."""
    for _ in range(spins):
        await asyncio.sleep(0)


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


@pytest.fixture(autouse=True)
def _reset_instances():
    CollectOutput.instances.clear()
    yield


@pytest.fixture(autouse=True)
def _no_daemon_left_behind():
    """A test that fails midway must not leave its `hekapy run` subprocess running."""
    from tests.fault_harness import DAEMONS
    yield
    import contextlib
    import os
    import signal
    while DAEMONS:
        proc = DAEMONS.pop().proc
        if proc is not None and proc.returncode is None:
            # os.kill: the test's event loop (and the process's transport) may be closed.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The fault-injection suite's accounting table (README: "Fault injection")."""
    from tests.fault_harness import ROWS, summary_table
    if ROWS:
        terminalreporter.write_sep("-", "fault injection: exact accounting")
        terminalreporter.write_line(summary_table(ROWS))
