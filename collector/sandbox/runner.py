"""What SandboxDecoder, SandboxFilter and SandboxEncoder share: the common keys of
docs/compatibility.md ("Lua sandbox"), building a sandbox from them, the entry-point
calls with Heka's return conventions and the `heka.sandbox-terminated` message.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.message import STRING, Field, Message
from hekapy.collector.engine.plugin import Option, OptionError
from hekapy.collector.sandbox import preserve
from hekapy.collector.sandbox.api import SandboxApi
from hekapy.collector.sandbox.host import LuaSandbox, SandboxError

# Heka's defaults, for a plugin built without a config (tests, tools): the loader gives
# sandbox plugins the [hekad] share_dir as `cfg.hekad` (config.plugin_globals).
DEFAULT_SHARE_DIR = "/usr/share/heka"
DEFAULT_BASE_DIR = "/var/cache/hekad"

# The [hekad] settings a sandbox plugin reads when it is built (its `hekad_settings`):
# a relative `filename` or `module_directory` is under share_dir (docs/compatibility.md,
# "Lua sandbox").
HEKAD_SETTINGS = ("share_dir",)

SANDBOX_OPTIONS: dict[str, Option] = {
    "filename": Option("str", None, required=True,
                       doc="the Lua script (relative: under [hekad] share_dir)"),
    "script_type": Option("str", "lua", choices=("lua",)),
    "preserve_data": Option("bool", False, doc="save the globals on stop, restore on start"),
    "memory_limit": Option("int", 8 << 20, doc="bytes of Lua memory; 0 = none"),
    "instruction_limit": Option("int", 1_000_000, doc="per call; 0 = none"),
    "output_limit": Option("int", 63 << 10, doc="bytes of payload or injected message"),
    "module_directory": Option("str", "", doc="';'-separated, relative ones under "
                               "[hekad] share_dir; default <share_dir>/lua_modules"),
    "config": Option("table", {}, doc="[X.config]: what the script reads with read_config"),
}

TERMINATED_TYPE = "heka.sandbox-terminated"


def share_dir(cfg: SimpleNamespace) -> str:
    """The [hekad] share_dir the plugin was built with (Heka's default without one)."""
    hekad = getattr(cfg, "hekad", None)
    return getattr(hekad, "share_dir", None) or DEFAULT_SHARE_DIR


def runner_name(owner: str, name: str) -> str:
    """Heka's name for a decoder or encoder instance: the input or output it serves,
    then its own section name ("<input>-<decoder>"); each instance preserves its data
    in a file of its own (`<base_dir>/sandbox_preservation/<runner name>.data`)."""
    return f"{owner}-{name}"


def script_path(filename: str, share_dir: str = DEFAULT_SHARE_DIR) -> str:
    return filename if os.path.isabs(filename) else os.path.join(share_dir, filename)


def module_dirs(module_directory: str, share_dir: str = DEFAULT_SHARE_DIR) -> list[str]:
    dirs = [d.strip() for d in module_directory.split(";") if d.strip()]
    if not dirs:
        dirs = ["lua_modules"]
    return [d if os.path.isabs(d) else os.path.join(share_dir, d) for d in dirs]


def terminated_message(plugin: str, reason: str, hostname: str = "") -> Message:
    """What Heka injects when a sandbox dies: Logger hekad, the reason as Payload."""
    return Message(type=TERMINATED_TYPE, logger="hekad", hostname=hostname, payload=reason,
                   fields=[Field("plugin", [plugin], STRING)])


class Sandbox:
    """A loaded script and its API: `process_message` and `timer_event` with Heka's
    conventions. Construction loads the script (SandboxError on any problem)."""

    def __init__(self, type_name: str, name: str, cfg: SimpleNamespace, kind: str,
                 hostname: str = "") -> None:
        share = share_dir(cfg)
        self.path = script_path(cfg.filename, share)
        self.box = LuaSandbox(type_name, name, self.path, memory_limit=cfg.memory_limit,
                              instruction_limit=cfg.instruction_limit,
                              module_dirs=module_dirs(cfg.module_directory, share),
                              output_limit=cfg.output_limit)
        self.api = SandboxApi(self.box, kind, name, cfg.config, cfg.output_limit, hostname)
        # Made before the script runs, so the script cannot tamper with it.
        self._render = preserve.serializer(self.box) if cfg.preserve_data else None
        self.box.load()
        self._process = self.box.function("process_message")
        if self._process is None:
            raise SandboxError(f"{self.box.describe}: the script defines no "
                               "process_message()")
        self._timer = self.box.function("timer_event")

    @classmethod
    def for_plugin(cls, plugin: Any, kind: str) -> Sandbox:
        """Build for a plugin's constructor: problems become an OptionError on
        `filename` (so `hekapy check` reports them)."""
        try:
            return cls(plugin.type_name, plugin.name, plugin.cfg, kind)
        except SandboxError as e:
            raise OptionError(str(e), key="filename") from None

    @property
    def terminated(self) -> str | None:
        return self.box.terminated

    @property
    def describe(self) -> str:
        return self.box.describe

    @property
    def has_timer_event(self) -> bool:
        return self._timer is not None

    def heka_report(self) -> dict[str, tuple[int, str]]:
        """This sandbox's fields in Heka's report: Memory (now), MaxMemory (the most
        held after a call), MaxOutput (the largest payload or message it made). Not
        MaxInstructions: Lua 5.1 does not tell how many instructions a call ran."""
        box = self.box
        return {"Memory": (box.memory_used(), "B"),
                "MaxMemory": (max(box.max_memory_used, box.memory_used()), "B"),
                "MaxOutput": (self.api.max_output, "B")}

    def process_message(self, msg: Message) -> tuple[int, str | None]:
        """(status, error text). Raises SandboxTerminated on a fatal error, a limit, a
        missing status, or a status above 0."""
        self.api.begin(msg)
        r = self.box.call(self._process, "process_message")
        if type(r) is tuple:
            status, err = r[0], r[1] if len(r) > 1 else None
        else:
            status, err = r, None
        if isinstance(status, bool) or not isinstance(status, (int, float)):
            raise self.box.terminate("process_message() must return a numeric status code")
        text = None if err is None else (err.decode("utf-8", "replace")
                                          if isinstance(err, bytes) else str(err))
        if status > 0:
            raise self.box.terminate(f"process_message() returned {status:g}"
                                     + (f": {text}" if text else ""))
        return int(status), text

    def timer_event(self, now_ns: int) -> None:
        if self._timer is None:
            return
        self.api.begin(None)
        self.box.call(self._timer, "timer_event", now_ns)

    def save(self, path: str) -> int:
        """preserve_data: write the globals (not after a termination, as Heka)."""
        if self._render is None or self.terminated is not None:
            return 0
        return preserve.save(self.box, self._render, path)

    def restore(self, path: str) -> bool:
        return preserve.restore(self.box, path)

    # preserve_data, as the three plugins use it ---------------------------------------
    def restore_preserved(self, base_dir: str, name: str, log: logging.Logger) -> None:
        """At start, with preserve_data: the globals saved under `name` (the filter's
        name, or a decoder's or encoder's runner_name), if there is a file."""
        if self._render is None:
            return
        path = preserve.preservation_path(base_dir, name)
        try:
            if self.restore(path):
                log.info("restored preserved data from %s", path)
        except SandboxError as e:
            # A broken data file must not keep the plugin from starting (Heka
            # terminated the sandbox); the script starts from its initial state.
            log.error("%s", e)

    def save_preserved(self, base_dir: str, name: str, log: logging.Logger) -> None:
        """At stop, with preserve_data: save the globals (not after a termination)."""
        if self._render is None or self.terminated is not None:
            return
        path = preserve.preservation_path(base_dir, name)
        try:
            n = self.save(path)
            log.info("preserved %d bytes of data in %s", n, path)
        except (SandboxError, OSError) as e:
            log.error("preserve_data failed: %s", e)
