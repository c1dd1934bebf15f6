"""SandboxFilter: Heka's Lua filter (docs/compatibility.md, "Lua sandbox"), run by hekapy's
Lua sandbox (collector/sandbox/).

process_message() runs for every matched message, timer_event(ns) every
`ticker_interval` seconds (and once more at shutdown with `timer_event_on_shutdown`).
Injected messages get Type `heka.sandbox.<Type>` (inject_message) or
`heka.sandbox-output` (inject_payload), Logger = the filter's name and the collector's
Hostname; each call may inject at most [hekad] max_process_inject (process_message) or
max_timer_inject (timer_event) messages, and never one that its own message_matcher
would take. A negative status counts as a failure (logged with its reason). A Lua
error, a limit, a status above 0 or a refused injection terminates the filter: it
leaves the router, a `heka.sandbox-terminated` message (Logger hekad, field `plugin`,
the reason as Payload) is injected and the pipeline goes on (can_exit defaults to true).

Keys: filename (required; relative ⇒ under [hekad] share_dir), script_type ("lua"),
preserve_data (false: globals saved to <base_dir>/sandbox_preservation/<name>.data on
stop and restored on start), memory_limit (8 MiB), instruction_limit (1000000),
output_limit (64512), module_directory (<share_dir>/lua_modules), config,
timer_event_on_shutdown (false), profile (accepted, ignored), and the filter keys
message_matcher, ticker_interval, can_exit (true).

    [http_counter]
    type = "SandboxFilter"
    filename = "/etc/hekapy/lua/http_counter.lua"
    message_matcher = "Type == 'log' && Fields[http_status] != NIL"
    ticker_interval = 60
    preserve_data = true
      [http_counter.config]
      payload_name = "http_status_counts"
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import ClassVar

from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import Filter, Option, Plugin, register
from hekapy.collector.sandbox import (
    HEKAD_SETTINGS,
    SANDBOX_OPTIONS,
    ApiError,
    Sandbox,
    SandboxTerminated,
    terminated_message,
)
from hekapy.collector.sandbox.api import FILTER
from hekapy.collector.sandbox.native_plugins import NATIVE_FILTERS, native_plugin


@register
class SandboxFilter(Filter):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        **SANDBOX_OPTIONS,
        "timer_event_on_shutdown": Option("bool", False),
        "profile": Option("bool", False, doc="accepted for Heka configs; no effect"),
        "native": Option("bool", True, doc="run hekapy's native filter for a known LMA "
                         "script (native_plugins.py); false runs the Lua"),
    }
    defaults = {"can_exit": True}
    hekad_settings: ClassVar[tuple[str, ...]] = HEKAD_SETTINGS

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self.sandbox = Sandbox.for_plugin(self, FILTER)
        self.sandbox.api.sink = self._inject
        self._ctx: FilterContext | None = None
        self._injects = 0
        self._inject_limit = 1
        self._limit_name = "max_process_inject"

    @classmethod
    def specialize(cls, cfg: SimpleNamespace, report: Callable[[str | None, str], None]
                   ) -> tuple[type[Plugin], SimpleNamespace] | None:
        return native_plugin(cfg, NATIVE_FILTERS, report)

    # lifecycle ------------------------------------------------------------------------
    def init(self, ctx: FilterContext) -> None:
        self._ctx = ctx
        self.sandbox.api.hostname = ctx.hostname
        self.sandbox.restore_preserved(ctx.hekad.base_dir, self.name, ctx.log)

    def heka_report(self) -> dict[str, tuple[int, str]]:
        return self.sandbox.heka_report()  # Memory, MaxMemory, MaxOutput

    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        sb = self.sandbox
        if sb.terminated is not None:
            return
        self._begin(ctx.hekad.max_process_inject, "max_process_inject")
        for m in messages:
            self._injects = 0
            try:
                status, err = sb.process_message(m)
            except SandboxTerminated as e:
                self._terminated(e, ctx)
                return
            if status < 0:
                ctx.stats.errors += 1
                ctx.limited_log(logging.WARNING, "process_message() failed (%d): %s",
                                status, err or "no reason given")

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        sb = self.sandbox
        if sb.terminated is not None or not sb.has_timer_event:
            return
        self._begin(ctx.hekad.max_timer_inject, "max_timer_inject")
        try:
            sb.timer_event(now_ns)
        except SandboxTerminated as e:
            self._terminated(e, ctx)

    def shutdown(self, ctx: FilterContext) -> None:
        if self.cfg.timer_event_on_shutdown:
            self.timer_event(time.time_ns(), ctx)
        self.sandbox.save_preserved(ctx.hekad.base_dir, self.name, ctx.log)

    # injection ------------------------------------------------------------------------
    def _begin(self, limit: int, name: str) -> None:
        self._injects = 0
        self._inject_limit = limit
        self._limit_name = name

    def _inject(self, msg: Message) -> None:
        """inject_message / inject_payload of the script (Heka's filter rules)."""
        self._injects += 1
        if self._injects > self._inject_limit:
            raise ApiError(f"inject_message() exceeded {self._limit_name} "
                           f"({self._inject_limit})")
        ctx = self._ctx
        if ctx is None:
            raise ApiError("inject_message() called before the filter started")
        if not ctx.inject(msg):
            raise ApiError("inject_message() refused: the message matches this filter's "
                           "own message_matcher")

    def _terminated(self, e: SandboxTerminated, ctx: FilterContext) -> None:
        ctx.stats.errors += 1
        ctx.log.error("%s", e)
        # Heka takes a terminated filter out of the router; later batches are consumed
        # unseen until the pipeline stops.
        ctx.pipeline.router.remove(ctx.name)
        # The collector's message, not the filter's: it bypasses the self-match rule of
        # ctx.inject (a "TRUE" matcher would refuse it) and goes out with the batch.
        ctx._injected.append(terminated_message(self.name, str(e), ctx.hostname))
        ctx.stats.injected += 1
