"""DashboardOutput: Heka's self-report, as messages and as files (docs/compatibility.md,
"Reports")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.heka_report import (
    REPORT_TYPE,
    all_report_message,
    render_all_report,
    report_data,
)
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Option, OptionError, Output, register
from hekapy.collector.engine.redact import Redactor
from hekapy.collector.engine.report import process_start_time

SANDBOX_OUTPUT = "heka.sandbox-output"
SANDBOX_TERMINATED = "heka.sandbox-terminated"
DEFAULT_MATCHER = (f"Type == '{REPORT_TYPE}' || Type == '{SANDBOX_TERMINATED}' "
                   f"|| Type == '{SANDBOX_OUTPUT}'")
DATA_DIR = "data"  # under working_directory, as Heka's dashboard pages expect
REPORT_FILE = "heka_report.json"
SANDBOXES_FILE = "sandboxes.json"
TERMINATIONS_FILE = "heka_sandbox_termination.tsv"
# A blocked sandbox's termination message carried these; Heka's line lists them.
_TERMINATION_FIELDS = ("ProcessMessageCount", "ProcessMessageSamples",
                       "ProcessMessageAvgDuration", "MatchAvgDuration", "FilterChanLength",
                       "MatchChanLength", "RouterChanLength")
_NOT_WORD = re.compile(r"\W")
_MAX_NAME = 64


def _check_headers(value: dict[str, Any]) -> dict[str, Any]:
    """Go's http.Header: each header a string or an array of strings."""
    for name, v in value.items():
        if isinstance(v, str):
            continue
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise OptionError(f"header {name!r}: expected a string or an array of strings, "
                              f"got {v!r}")
    return value


def _write_file(path: Path, text: str) -> None:
    """Replace `path` whole (a reader never sees half a report)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@register
class DashboardOutput(Output):
    """Heka's DashboardOutput: every `ticker_interval` seconds hekapy injects a
    `heka.all-report` message into the router (Logger `hekad`, the report's JSON as
    Payload, as hekad did), so any filter matching `Type == 'heka.all-report'` gets it
    (LMA's heka_monitoring.lua, run by SandboxFilter, makes its `hekad_*` metrics of
    it). The output itself takes, by Heka's default matcher, the reports and the
    sandbox messages, and writes them under `<working_directory>/data/` as Heka's did:
    `heka_report.json` (the latest report), `sandboxes.json` (each sandbox filter's
    outputs), `<filter>.<payload_name>.<payload_type>` (each `heka.sandbox-output`
    payload), `heka_sandbox_termination.tsv` (a line per terminated sandbox). At start
    it deletes the files (`*.*`) at the top of working_directory and copies
    static_directory there, when that exists.

    hekapy serves no pages of its own: the status server serves the same report
    ([hekad] status_address, `/heka.all-report`). `address` and `headers` are accepted
    for Heka's configurations, with a warning that they have no effect.

    Keys: ticker_interval (5 s; 0 = no reports), working_directory ("dashboard";
    relative: under [hekad] base_dir), static_directory ("dasher"; relative: under
    [hekad] share_dir), address, headers (no effect), message_matcher (Heka's:
    "Type == 'heka.all-report' || Type == 'heka.sandbox-terminated' ||
    Type == 'heka.sandbox-output'").

        [DashboardOutput]
        ticker_interval = 30
    """

    options: ClassVar[dict[str, Option]] = {
        "address": Option("str", "", doc="Heka's HTTP address; no effect: the status "
                          "server serves the report ([hekad] status_address)"),
        "working_directory": Option("str", "dashboard",
                                    doc="the report files (relative: under base_dir)"),
        "static_directory": Option("str", "dasher", doc="copied into working_directory "
                                   "when it exists (relative: under share_dir)"),
        "headers": Option("table", {}, check=_check_headers,
                          doc="Heka's HTTP headers; no effect"),
    }
    defaults: ClassVar[dict[str, Any]] = {"ticker_interval": 5,
                                          "message_matcher": DEFAULT_MATCHER}

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        # Each sandbox filter's outputs seen so far: filter → payload_name → file.
        self._sandboxes: dict[str, dict[str, str]] = {}

    # running --------------------------------------------------------------------------
    async def run(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        for key in ("address", "headers"):
            if getattr(cfg, key):
                ctx.log.warning("%s: %s has no effect: hekapy's status server serves the "
                                "report at /heka.all-report ([hekad] status_address)",
                                self.name, key)
        data_dir = self._prepare(ctx)
        reporter = None
        if cfg.ticker_interval > 0:
            reporter = asyncio.create_task(self._report_every(ctx, cfg.ticker_interval),
                                           name=f"{self.name}.reports")
        try:
            while (batch := await ctx.next_batch()) is not None:
                for m in batch.messages:
                    try:
                        self._write(m, data_dir)
                    except OSError as e:
                        ctx.stats.errors += 1
                        ctx.limited_log(logging.ERROR, "cannot write %s's file in %s: %s",
                                        m.type, data_dir, e.strerror or e)
                ctx.stats.messages_out += len(batch)
                batch.done()
        finally:
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter

    def _prepare(self, ctx: OutputContext) -> Path:
        """Heka's start: the working and data directories, the top-level files of an
        earlier run removed, the static files copied in."""
        cfg = self.cfg
        work = Path(ctx.hekad.base_dir, cfg.working_directory)
        data_dir = work / DATA_DIR
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for old in work.glob("*.*"):
            if old.is_file():
                old.unlink()
        static = Path(ctx.hekad.share_dir, cfg.static_directory)
        if static.is_dir():
            shutil.copytree(static, work, dirs_exist_ok=True)
        else:
            ctx.log.info("%s: no static dashboard files at %s; writing the report files "
                         "to %s", self.name, static, data_dir)
        return data_dir

    async def _report_every(self, ctx: OutputContext, interval: float) -> None:
        """Inject a report every `interval` seconds until the pipeline stops. A task of
        its own: routing may wait for room in this output's own queue."""
        started = process_start_time()
        redactor = Redactor(ctx.pipeline.config)
        while not ctx.stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), interval)
            if ctx.stopping.is_set():
                return
            report = redactor.mask_obj(render_all_report(report_data(ctx.pipeline,
                                                                     started)))
            await ctx.inject([all_report_message(report, ctx.hostname)])

    # the files ----------------------------------------------------------------------------
    def _write(self, msg: Message, data_dir: Path) -> None:
        if msg.type == REPORT_TYPE:
            _write_file(data_dir / REPORT_FILE, msg.payload)
            _write_file(data_dir / SANDBOXES_FILE, self._sandboxes_json())
        elif msg.type == SANDBOX_OUTPUT:
            self._write_sandbox_output(msg, data_dir)
        elif msg.type == SANDBOX_TERMINATED:
            self._write_termination(msg, data_dir)

    def _write_sandbox_output(self, msg: Message, data_dir: Path) -> None:
        payload_type = msg.get_field("payload_type")
        if not isinstance(payload_type, str):
            return  # Heka wrote nothing for a message without one
        payload_name = msg.get_field("payload_name")
        name = payload_name if isinstance(payload_name, str) else ""
        # The Logger is the filter's name; a "/" in it must not leave data_dir.
        logger = msg.logger.replace("/", "_").replace("\0", "_")
        file_name = (f"{logger}.{_NOT_WORD.sub('', name)[:_MAX_NAME]}."
                     f"{_NOT_WORD.sub('', payload_type)}")
        _write_file(data_dir / file_name, msg.payload)
        outputs = self._sandboxes.setdefault(msg.logger, {})
        outputs.setdefault(name, f"{DATA_DIR}/{file_name}")

    def _write_termination(self, msg: Message, data_dir: Path) -> None:
        plugin = msg.get_field("plugin")
        if not isinstance(plugin, str):
            return
        line = f"{msg.timestamp // 1_000_000_000}\t{plugin}\t{msg.payload}"
        if msg.find_field("ProcessMessageCount") is not None:
            line += "".join(f" {key}:{_go_value(msg.get_field(key))}"
                            for key in _TERMINATION_FIELDS)
        with open(data_dir / TERMINATIONS_FILE, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        self._sandboxes.pop(plugin, None)

    def _sandboxes_json(self) -> str:
        items = [{"Name": filt, "Outputs": [{"Name": n, "Filename": f}
                                            for n, f in outputs.items()]}
                 for filt, outputs in self._sandboxes.items()]
        return json.dumps({"sandboxes": items}, separators=(",", ":")) + "\n"


def _go_value(value: Any) -> str:
    """A value as Go's %v printed it (a missing field: <nil>)."""
    return "<nil>" if value is None else str(value)
