"""AfdFilter: LMA's AFD filters (afd.lua), natively. Evaluates node and service alarms
over metric messages and, every `ticker_interval`, injects each AFD's status as LMA's
did (docs/alarms.md): Type `heka.sandbox.afd_node_metric` (Fields name = node_status,
node_role = the cluster) or `heka.sandbox.afd_service_metric` (name = service_status,
service = the cluster), value = the status (0 OKAY, 1 WARN, 2 UNKNOWN, 3 CRITICAL,
4 DOWN), source = the AFD's member, hostname, tag_fields, no_alerting (only when
alerting is disabled), and Payload `{"alarms":[...]}`; Logger = LMA's filter name
(`afd_node_controller_cpu_filter`), or this section's when it runs one AFD.

One section runs every AFD of this node's roles (`node_roles`, LMA's node profiles:
what alarms.yaml's clusters `apply_to_node`), or one AFD (`afd_type`,
`afd_cluster_name`, `afd_logical_name`, LMA's keys), from `alarms_file` (YAML; unset:
hekapy's conf/alarms.yaml) or from LMA's generated Lua module (`afd_file`, found in
`module_directory`): a SandboxFilter section naming LMA's afd.lua becomes this.

Keys: alarms_file (""; an absolute path), node_roles (a list, or names separated by
spaces or commas; none: "default"), afd_type, afd_cluster_name, afd_logical_name,
afd_file, module_directory (";"-separated; relative: under [hekad] share_dir),
hostname (of the messages; [hekad] hostname), activate_alerting (true),
enable_notification (accepted, as LMA's script, without effect), seconds_per_row (5:
LMA's rows; smaller only for tests), preserve_data (false: the datapoints and start
times are saved to <base_dir>/alarm_state/<name>.json on stop and read on start),
ticker_interval (10), message_matcher (metric types).

    [afd_filter]
    type = "AfdFilter"
    node_roles = ["controller"]
    preserve_data = true
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from hekapy.collector.engine.alarm_status import NotEncodable, encode_payload
from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message
from hekapy.collector.engine.metrics import metric_value
from hekapy.collector.engine.plugin import Filter, Option, OptionError, register
from hekapy.filters.alarming.definitions import (
    AfdDef,
    DefinitionError,
    load_alarms_file,
)
from hekapy.filters.alarming.lua_modules import (
    LuaDataError,
    find_module,
    module_dirs,
    read_alarms,
)
from hekapy.filters.alarming.rules import AfdState
from hekapy.filters.alarming.state_file import load_state, save_state

METRIC_TYPES = ("Type == 'metric' || Type == 'heka.sandbox.metric' || "
                "Type == 'multivalue_metric' || Type == 'heka.sandbox.multivalue_metric'")

# afd_type → (message Type without heka.sandbox., metric name, cluster field)
KINDS = {"node": ("afd_node_metric", "node_status", "node_role"),
         "service": ("afd_service_metric", "service_status", "service")}


def _roles(value: Any) -> list[str]:
    if isinstance(value, str):
        return [r for r in re.split(r"[\s,]+", value) if r]
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return [r for r in value if r]
    raise OptionError(f"expected a list of role names, got {value!r}")


def _absolute(value: str) -> str:
    if value and not Path(value).is_absolute():
        raise OptionError(f"{value!r} must be an absolute path")
    return value


@register
class AfdFilter(Filter):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "alarms_file": Option("str", "", check=_absolute,
                              doc="alarm definitions (YAML); unset: hekapy's own"),
        "node_roles": Option("any", [], check=_roles, doc="this node's roles"),
        "afd_type": Option("str", "", choices=("", "node", "service")),
        "afd_cluster_name": Option("str", ""),
        "afd_logical_name": Option("str", ""),
        "afd_file": Option("str", "", doc="LMA's generated Lua module of alarms"),
        "module_directory": Option("str", "", doc="where afd_file is"),
        "hostname": Option("str", "", doc="of the messages; default [hekad] hostname"),
        "activate_alerting": Option("bool", True),
        "enable_notification": Option("bool", False, doc="LMA's key; no effect"),
        "seconds_per_row": Option("int", 5),
        "preserve_data": Option("bool", False),
    }
    defaults: ClassVar[dict[str, Any]] = {"message_matcher": METRIC_TYPES,
                                          "ticker_interval": 10}
    hekad_settings: ClassVar[tuple[str, ...]] = ("share_dir",)

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if cfg.seconds_per_row < 1:
            raise OptionError("must be at least 1", key="seconds_per_row")
        self.afds = [self._state(afd) for afd in self._definitions(cfg)]
        self.hostname = cfg.hostname  # [hekad] hostname when unset (init)
        # metric name → the AFDs that take it
        self.by_metric: dict[str, list[AfdState]] = {}
        for afd in self.afds:
            for metric in afd.fields_of:
                if afd.takes(metric):
                    self.by_metric.setdefault(metric, []).append(afd)

    def _state(self, afd: AfdDef) -> AfdState:
        try:
            return AfdState(afd, self.cfg.seconds_per_row)
        except ValueError as e:
            raise OptionError(f"AFD {afd.filter_name}: {e}", key="seconds_per_row") from None

    def _definitions(self, cfg: SimpleNamespace) -> list[AfdDef]:
        one = (cfg.afd_type, cfg.afd_cluster_name, cfg.afd_logical_name)
        if any(one) and not all(one):
            missing = [k for k, v in zip(("afd_type", "afd_cluster_name", "afd_logical_name"),
                                         one, strict=True) if not v]
            raise OptionError(f"one AFD needs afd_type, afd_cluster_name and "
                              f"afd_logical_name; {', '.join(missing)} missing",
                              key=missing[0])
        if cfg.afd_file:
            if not all(one):
                raise OptionError("afd_file needs afd_type, afd_cluster_name and "
                                  "afd_logical_name", key="afd_file")
            if cfg.node_roles or cfg.alarms_file:
                raise OptionError("afd_file (LMA's Lua module) and alarms_file/node_roles "
                                  "are two ways to name the alarms; use one", key="afd_file")
            share = getattr(getattr(cfg, "hekad", None), "share_dir", "/usr/share/heka")
            try:
                path = find_module(cfg.afd_file, module_dirs(cfg.module_directory, share))
                alarms = read_alarms(path)
            except (OSError, LuaDataError, DefinitionError) as e:
                raise OptionError(str(e), key="afd_file") from None
            metrics = frozenset(m for a in alarms for m in a.metrics)
            return [AfdDef(cfg.afd_type, cfg.afd_cluster_name, cfg.afd_logical_name, alarms,
                           metrics, cfg.activate_alerting)]
        try:
            defs = load_alarms_file(cfg.alarms_file or None)
        except (OSError, DefinitionError) as e:
            raise OptionError(str(e), key="alarms_file") from None
        if all(one):
            if cfg.node_roles:
                raise OptionError("node_roles selects AFDs by role, afd_type/"
                                  "afd_cluster_name/afd_logical_name name one; use one",
                                  key="node_roles")
            try:
                afd = defs.afd(cfg.afd_type, cfg.afd_cluster_name, cfg.afd_logical_name)
            except KeyError as e:
                raise OptionError(e.args[0], key="afd_cluster_name") from None
            return [_with_alerting(afd, cfg.activate_alerting)]
        return [_with_alerting(a, cfg.activate_alerting) for a in defs.afds_for(cfg.node_roles)]

    @property
    def single(self) -> bool:
        return bool(self.cfg.afd_type)

    # lifecycle -----------------------------------------------------------------------------
    def init(self, ctx: FilterContext) -> None:
        if not self.hostname:
            self.hostname = ctx.hostname
        if self.cfg.preserve_data:
            state = load_state(ctx.hekad.base_dir, self.name, ctx.log) or {}
            for afd in self.afds:
                saved = state.get(afd.afd.filter_name)
                if isinstance(saved, dict):
                    afd.restore(saved)

    def shutdown(self, ctx: FilterContext) -> None:
        if self.cfg.preserve_data:
            save_state(ctx.hekad.base_dir, self.name,
                       {afd.afd.filter_name: afd.to_state() for afd in self.afds}, ctx.log)

    # messages --------------------------------------------------------------------------------
    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        by_metric = self.by_metric
        for m in messages:
            name = m.get_field("name")
            afds = by_metric.get(name) if isinstance(name, str) else None
            if not afds:
                continue
            value = metric_value(m)
            if value is None:
                ctx.stats.errors += 1
                ctx.limited_log(30, "metric %r: no Fields[value] (or value_fields)", name)
                continue
            for afd in afds:
                fields = {}
                for f in afd.fields_of[name]:
                    v = m.get_field(f)
                    if v is None:
                        break
                    fields[f] = v
                else:
                    afd.add_value(m.timestamp, name, value, fields)
                    continue
                ctx.stats.errors += 1
                ctx.limited_log(30, "cannot find Fields[%s] for the metric %s (%s)", f, name,
                                afd.afd.filter_name)

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        for afd in self.afds:
            result = afd.tick(now_ns)
            if result is None:
                continue
            msg = self.status_message(afd.afd, result[0], result[1], now_ns, ctx.hostname)
            if msg is None:
                ctx.stats.errors += 1
                ctx.limited_log(40, "%s: an alarm value cannot be written as JSON (NaN or "
                                "infinite); no status sent", afd.afd.filter_name)
            else:
                ctx.inject(msg)

    def status_message(self, afd: AfdDef, status: int, alarms: list[dict[str, Any]],
                       now_ns: int, collector: str) -> Message | None:
        """The status message; `collector` is its Hostname header (the collector's, as
        for any filter's message), Fields[hostname] the node the AFD speaks for."""
        kind, metric_name, cluster_field = KINDS[afd.kind]
        try:
            payload = encode_payload(alarms)
        except NotEncodable:
            return None
        fields = [Field("name", [metric_name], STRING), Field("value", [float(status)], DOUBLE),
                  Field("hostname", [self.hostname], STRING),
                  Field("source", [afd.member], STRING),
                  Field("tag_fields", [cluster_field, "source", "hostname"], STRING),
                  Field(cluster_field, [afd.cluster], STRING)]
        if not afd.activate_alerting:
            fields.append(Field("no_alerting", [True], BOOL))
        return Message(type=f"heka.sandbox.{kind}", logger=self.name if self.single
                       else afd.filter_name, hostname=collector, timestamp=now_ns,
                       payload=payload, fields=fields)


def _with_alerting(afd: AfdDef, activate: bool) -> AfdDef:
    if activate:
        return afd
    return AfdDef(afd.kind, afd.cluster, afd.member, afd.alarms, afd.metrics, False)

