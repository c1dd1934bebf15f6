"""SandboxDecoder: Heka's Lua decoder (docs/compatibility.md, "Lua sandbox"), run by
hekapy's Lua sandbox (collector/sandbox/), or, when `filename` is one of the LMA collector's decoder
scripts, by hekapy's native decoder for that log family (same messages, docs/compatibility.md),
which is several times faster. `native = false` runs such a script in Lua all the same.

    [openstack_decoder]
    type = "SandboxDecoder"
    filename = "/usr/share/lma_collector/decoders/openstack_log.lua"
    module_directory = "/usr/share/lma_collector_modules;/usr/share/heka/lua_modules"
      [openstack_decoder.config]
      tz = "Europe/Paris"

    [my_decoder]
    type = "SandboxDecoder"
    filename = "/etc/hekapy/lua/my_app.lua"
    memory_limit = 8388608
    instruction_limit = 1000000
      [my_decoder.config]
      tz = "UTC"

Keys: filename (required; relative ⇒ under [hekad] share_dir), script_type ("lua"),
preserve_data (false), memory_limit (8 MiB), instruction_limit (1000000),
output_limit (64512), module_directory (<share_dir>/lua_modules), config
([X.config], read with read_config; `tz` reinterprets the timestamps the script sets as
wall-clock time in that zone, as Heka did), native (true: a known LMA script runs the
native decoder; hekapy's own key).

Native path: the `[X.config]` keys are checked against the native decoder's keys. LMA's
rsyslog templates (`syslog_pattern`, `fallback_syslog_pattern`) are accepted when they
are the templates LMA deployed, which the native syslog decoders understand; another
template is an error rather than a silent mis-parse.

Lua path: process_message returning 0 passes the record's message on (possibly changed
by write_message) unless the script injected messages, which then replace it; a
negative status is a decode failure (the optional second value is the reason). A Lua
error, a limit, or a status above 0 terminates the sandbox: the record that did it
becomes a `heka.sandbox-terminated` message, every later record a decode failure, and
the pipeline goes on (Heka stopped hekad instead). With `preserve_data`, the globals
are saved when the pipeline stops (after the input drained) and restored on start, as
in Heka per decoder instance: each input has its own, saved in
<base_dir>/sandbox_preservation/<input>-<decoder>.data.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, ClassVar

from hekapy.collector import catalog
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import (
    DecodeError,
    Decoder,
    Option,
    OptionError,
    Plugin,
    register,
)
from hekapy.collector.engine.wallclock import WallClock, load_location
from hekapy.collector.sandbox import (
    HEKAD_SETTINGS,
    SANDBOX_OPTIONS,
    Sandbox,
    SandboxTerminated,
    runner_name,
    terminated_message,
)
from hekapy.collector.sandbox.api import DECODER
from hekapy.collector.sandbox.runner import script_path, share_dir

if TYPE_CHECKING:
    from hekapy.collector.engine.contexts import InputContext

# LMA's decoder scripts → native decoder types.
NATIVE_DECODERS: dict[str, str] = {
    "openstack_log.lua": "OpenStackLogDecoder",
    "keystone_wsgi_log.lua": "KeystoneWsgiDecoder",
    "generic_syslog.lua": "SyslogDecoder",
    "mysql_log.lua": "MysqlLogDecoder",
    "pacemaker_log.lua": "PacemakerLogDecoder",
    "rabbitmq.lua": "RabbitmqLogDecoder",
    "libvirt_log.lua": "LibvirtLogDecoder",
    "ovs_log.lua": "OvsLogDecoder",
    "collectd.lua": "CollectdDecoder",
    "metric.lua": "MetricDecoder",
    "notification.lua": "NotificationDecoder",
    "noop.lua": "NoopDecoder",
}

_RSYSLOG = "%TIMESTAMP% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg%\\n"
# The rsyslog templates LMA configured (with and without the PRI), as TOML gives them
# (with a real newline or the two characters backslash-n).
_LMA_TEMPLATES = frozenset(t.replace("\\n", nl) for t in ("<%PRI%>" + _RSYSLOG, _RSYSLOG)
                           for nl in ("\n", "\\n"))
_TEMPLATE_KEYS = ("syslog_pattern", "fallback_syslog_pattern")


@register
class SandboxDecoder(Decoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        **SANDBOX_OPTIONS,
        "native": Option("bool", True, doc="run hekapy's native decoder for a known LMA "
                         "script; false runs the Lua"),
    }
    hekad_settings: ClassVar[tuple[str, ...]] = HEKAD_SETTINGS

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self.log = logging.getLogger(f"hekapy.{name}")
        path = script_path(cfg.filename, share_dir(cfg))
        if not os.path.isfile(path):
            raise OptionError(_missing(cfg.filename, path), key="filename")
        self.sandbox = Sandbox.for_plugin(self, DECODER)
        tz = cfg.config.get("tz")
        if isinstance(tz, str) and tz not in ("", "UTC"):
            try:
                clock = WallClock(load_location(tz))
            except ValueError as e:
                raise OptionError(str(e), key="config.tz") from None
            self.sandbox.api.retime = lambda ns: _in_zone(clock, ns)

    # The pipeline's start and stop calls (collector/engine/pipeline.py start_stage/stop_stage),
    # with the context of the input this instance decodes for.
    def init(self, ctx: InputContext) -> None:
        self.sandbox.restore_preserved(ctx.hekad.base_dir, runner_name(ctx.name, self.name),
                                       self.log)

    def shutdown(self, ctx: InputContext) -> None:
        self.sandbox.save_preserved(ctx.hekad.base_dir, runner_name(ctx.name, self.name),
                                    self.log)

    def heka_report(self) -> dict[str, tuple[int, str]]:
        return self.sandbox.heka_report()  # Memory, MaxMemory, MaxOutput

    def decode(self, msg: Message) -> Message | list[Message] | None:
        sb = self.sandbox
        if sb.terminated is not None:
            raise DecodeError(f"sandbox terminated: {sb.terminated}")
        try:
            status, err = sb.process_message(msg)
        except SandboxTerminated as e:
            self.log.error("%s", e)
            return terminated_message(self.name, str(e), msg.hostname)
        if status < 0:
            raise DecodeError(err or f"process_message() returned {status}")
        injected = sb.api.injected
        if injected:
            sb.api.injected = []
            return injected
        return sb.api.msg

    @classmethod
    def specialize(cls, cfg: SimpleNamespace, report: Callable[[str | None, str], None]
                   ) -> tuple[type[Plugin], SimpleNamespace] | None:
        script = os.path.basename(cfg.filename or "")
        native_name = NATIVE_DECODERS.get(script)
        if native_name is None or not cfg.native:
            return None  # the Lua sandbox runs it
        native = catalog.plugin_class(native_name)
        if native is None:
            return None
        from hekapy.collector.engine.config import ConfigError, convert_options

        settings = dict(cfg.config)
        for key in _TEMPLATE_KEYS:
            template = settings.pop(key, None)
            if template is not None and template not in _LMA_TEMPLATES:
                report(f"config.{key}", f"{native_name} (the native decoder for {script}) "
                       f"reads rsyslog's traditional and RFC 5424 formats, not the custom "
                       f"template {template!r}; set native = false to run the Lua")
        errors: list[ConfigError] = []
        native_cfg = convert_options(native.all_options(), settings, "", "", errors,
                                     native.defaults, prefix="config.")
        for e in errors:
            report(e.key, f"{e.message} (keys of {native_name}, the native decoder for "
                   f"{script}; native = false runs the Lua script instead)")
        if errors:
            return None
        native_cfg.type = native_name
        return native, native_cfg


def _in_zone(clock: WallClock, ns: int) -> int:
    """Heka's config.tz: the script's time, read as wall-clock time in the zone."""
    sec, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(sec)
    try:
        return clock.to_ns(t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                           frac)
    except ValueError:
        return ns


def _missing(filename: str, path: str) -> str:
    base = os.path.basename(filename)
    if base in NATIVE_DECODERS:
        return f"the Lua script {path} does not exist"
    return f"{base!r} has no native decoder, and the Lua script {path} does not exist"
