"""SandboxDecoder: Heka's Lua decoder section. When `filename` is one of the LMA
collector's decoder scripts, the section runs hekapy's native decoder for that log
family instead (same messages, spec/lma.md §2), so LMA's TOML runs unchanged:

    [openstack_decoder]
    type = "SandboxDecoder"
    filename = "/usr/share/lma_collector/decoders/openstack_log.lua"
    module_directory = "/usr/share/lma_collector_modules;/usr/share/heka/lua_modules"
      [openstack_decoder.config]
      tz = "Europe/Paris"

The `[X.config]` keys are checked against the native decoder's keys. LMA's rsyslog
templates (`syslog_pattern`, `fallback_syslog_pattern`) are accepted when they are the
templates LMA deployed, which the native syslog decoders understand; another template is
an error rather than a silent mis-parse. Scripts with no native equivalent need the Lua
sandbox host, which hekapy does not have yet: the section is then an error.

Keys: filename (required), script_type ("lua"), preserve_data, memory_limit,
instruction_limit, output_limit, module_directory, config.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import ClassVar

from hekapy.collector.plugin import REGISTRY, Decoder, Option, OptionError, Plugin, register

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
    "notification.lua": "NotificationDecoder",
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
        "filename": Option("str", None, required=True, doc="Lua script"),
        "script_type": Option("str", "lua", choices=("lua",)),
        "preserve_data": Option("bool", False),
        "memory_limit": Option("int", 8 << 20),
        "instruction_limit": Option("int", 1_000_000),
        "output_limit": Option("int", 63 << 10),
        "module_directory": Option("str", ""),
        "config": Option("table", {}, doc="[X.config]: the script's settings"),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        raise OptionError(_no_native(cfg.filename), key="filename")

    @classmethod
    def specialize(cls, cfg: SimpleNamespace, report: Callable[[str | None, str], None]
                   ) -> tuple[type[Plugin], SimpleNamespace] | None:
        script = os.path.basename(cfg.filename or "")
        native_name = NATIVE_DECODERS.get(script)
        if native_name is None:
            report("filename", _no_native(cfg.filename))
            return None
        native = REGISTRY.get(native_name)
        if native is None:
            report("filename", f"{native_name} (the native decoder for {script}) is not "
                   "available in this build")
            return None
        from hekapy.collector.config import ConfigError, convert_options

        settings = dict(cfg.config)
        for key in _TEMPLATE_KEYS:
            template = settings.pop(key, None)
            if template is not None and template not in _LMA_TEMPLATES:
                report(f"config.{key}", f"{native_name} (the native decoder for {script}) "
                       f"reads rsyslog's traditional and RFC 5424 formats, not the custom "
                       f"template {template!r}")
        errors: list[ConfigError] = []
        native_cfg = convert_options(native.all_options(), settings, "", "", errors,
                                     native.defaults, prefix="config.")
        for e in errors:
            report(e.key, e.message)
        if errors:
            return None
        native_cfg.type = native_name
        return native, native_cfg


def _no_native(filename: str) -> str:
    known = ", ".join(sorted(NATIVE_DECODERS))
    return (f"{os.path.basename(filename)!r} has no native decoder, and hekapy does not run "
            f"Lua sandboxes yet; scripts with a native decoder: {known}")
