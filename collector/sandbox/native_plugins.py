"""LMA's filter and encoder scripts that hekapy runs as native plugins, as
sandbox_decoder.py's NATIVE_DECODERS does for its decoders: a SandboxFilter or
SandboxEncoder section naming one of these scripts builds the native plugin from its
`[X.config]` keys (checked against the native plugin's keys) and its own filter keys
(matcher, ticker, preserve_data, module_directory, ...); `native = false` runs the
script in Lua instead. docs/alarms.md lists what differs."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace

from hekapy.collector import catalog
from hekapy.collector.engine.plugin import Plugin

NATIVE_FILTERS: dict[str, str] = {
    "afd.lua": "AfdFilter",
    "gse_cluster_filter.lua": "GseFilter",
    "influxdb_accumulator.lua": "InfluxdbAccumulatorFilter",
    "influxdb_annotation.lua": "InfluxdbAnnotationFilter",
}

NATIVE_ENCODERS: dict[str, str] = {
    "status_nagios.lua": "NagiosEncoder",
}

# The section's own keys that mean the same to the native plugin, when it has them.
_CARRIED = ("retries", "can_exit", "message_matcher", "message_signer", "ticker_interval",
            "use_buffering", "buffering", "preserve_data", "module_directory")


def native_plugin(cfg: SimpleNamespace, natives: dict[str, str],
                  report: Callable[[str | None, str], None]
                  ) -> tuple[type[Plugin], SimpleNamespace] | None:
    """The native plugin and its options for a sandbox section whose script is one of
    `natives`; None to run the Lua (not one of them, `native = false`, or errors, which
    go to `report`)."""
    script = os.path.basename(cfg.filename or "")
    native_name = natives.get(script)
    if native_name is None or not cfg.native:
        return None
    native = catalog.plugin_class(native_name)
    if native is None:
        return None
    from hekapy.collector.engine.config import ConfigError, convert_options

    options = native.all_options()
    errors: list[ConfigError] = []
    native_cfg = convert_options(options, dict(cfg.config), "", "", errors, native.defaults,
                                 prefix="config.")
    for e in errors:
        report(e.key, f"{e.message} (keys of {native_name}, the native plugin for {script}; "
               "native = false runs the Lua script instead)")
    if errors:
        return None
    for key in _CARRIED:
        if key in options and hasattr(cfg, key):
            setattr(native_cfg, key, getattr(cfg, key))
    native_cfg.type = native_name
    return native, native_cfg
