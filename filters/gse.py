"""GseFilter: LMA's GSE filters (gse_cluster_filter.lua), natively. Takes the status
metrics of AFDs (or of other GSE filters), keeps each cluster member's last status and
alarms, and every `interval` seconds injects each cluster's status under its policy
(docs/alarms.md): Type `heka.sandbox.<output_message_type>` (e.g.
gse_cluster_metric), Fields name = output_metric_name (e.g. cluster_status), value
= the status, cluster_name, tag_fields = [cluster_name], interval, source,
no_alerting (only when alerting is disabled), Payload `{"alarms":[...]}`; Logger =
this section's name. At most `max_inject` clusters per tick (the rest follow on the
next ticks, as LMA's max_timer_inject made it), nothing during `warm_up_period`
seconds after the first tick, and nothing unless this node holds the Pacemaker
resource `vip_resource` (the pacemaker_local_resource_active metric of this host
says 1): only the aggregator that has the VIP speaks.

Either `alarms_file` (YAML; unset: hekapy's conf/alarms.yaml) and `level`: the
settings and clusters of its `gse_cluster_<level>` section, and a message_matcher made
from them when the section has none; or LMA's keys (output_message_type,
cluster_field, member_field, output_metric_name, interval, warm_up_period) with its
generated Lua modules `topology_file` and `policies_file` in `module_directory`: a
SandboxFilter section naming LMA's gse_cluster_filter.lua becomes this.

Keys: alarms_file, level, output_message_type, cluster_field, member_field,
output_metric_name, interval, warm_up_period, topology_file, policies_file,
module_directory, source (the `source` field; default gse_<level>_filter),
max_inject (10), activate_alerting (true), enable_notification (accepted, no effect),
vip_resource ("vip__management"; "" = emit always), preserve_data (false: the
members' facts are saved to <base_dir>/alarm_state/<name>.json), ticker_interval (1).

    [gse_service_filter]
    type = "GseFilter"
    level = "service"
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

from hekapy.collector.engine.alarm_status import (
    NotEncodable,
    decode_alarms,
    encode_payload,
    status_of,
)
from hekapy.collector.engine.contexts import FilterContext
from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message
from hekapy.collector.engine.plugin import Filter, Option, OptionError, Plugin, register
from hekapy.filters.alarming.clusters import GseState
from hekapy.filters.alarming.definitions import (
    ClusterDef,
    DefinitionError,
    GseLevelDef,
    load_alarms_file,
)
from hekapy.filters.alarming.lua_modules import (
    LuaDataError,
    find_module,
    module_dirs,
    read_policies,
    read_topology,
)
from hekapy.filters.alarming.state_file import load_state, save_state

PACEMAKER_METRIC = "pacemaker_local_resource_active"
# The keys that come from the YAML level when `level` is set.
LEVEL_KEYS = ("output_message_type", "cluster_field", "member_field", "output_metric_name",
              "interval", "warm_up_period")


def level_matcher(level: GseLevelDef, vip_resource: str) -> str:
    """The message_matcher LMA's Puppet wrote for a GSE filter."""
    flag = "!=" if level.aggregator_flag else "=="
    types = " || ".join(f"Type =~ /{t}$/" for t in level.input_message_types)
    inputs = f"(Fields[aggregator] {flag} NIL && ({types}))"
    if not vip_resource:
        return inputs
    return (f"(Fields[name] == '{PACEMAKER_METRIC}' && Fields[resource] == "
            f"'{vip_resource}') || {inputs}")


def _level(cfg: SimpleNamespace) -> GseLevelDef:
    try:
        defs = load_alarms_file(cfg.alarms_file or None)
    except (OSError, DefinitionError) as e:
        raise OptionError(str(e), key="alarms_file") from None
    level = defs.gse_levels.get(cfg.level)
    if level is None:
        raise OptionError(f"{cfg.level!r} is not a GSE level of {defs.source} (levels: "
                          f"{', '.join(sorted(defs.gse_levels)) or 'none'}: its "
                          "gse_cluster_<level> sections)", key="level")
    return level


@register
class GseFilter(Filter):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "alarms_file": Option("str", "", doc="definitions (YAML); unset: hekapy's own"),
        "level": Option("str", "", doc="the gse_cluster_<level> section of alarms_file"),
        "output_message_type": Option("str", ""),
        "cluster_field": Option("str", ""),
        "member_field": Option("str", ""),
        "output_metric_name": Option("str", ""),
        "interval": Option("float", 0.0, doc="seconds between two statuses"),
        "warm_up_period": Option("float", 0.0),
        "topology_file": Option("str", "", doc="LMA's generated Lua module of clusters"),
        "policies_file": Option("str", "", doc="LMA's generated Lua module of policies"),
        "module_directory": Option("str", ""),
        "source": Option("str", ""),
        "max_inject": Option("int", 10),
        "activate_alerting": Option("bool", True),
        "enable_notification": Option("bool", False, doc="LMA's key; no effect"),
        "vip_resource": Option("str", "vip__management"),
        "preserve_data": Option("bool", False),
    }
    defaults: ClassVar[dict[str, Any]] = {"ticker_interval": 1}
    hekad_settings: ClassVar[tuple[str, ...]] = ("share_dir",)

    @classmethod
    def specialize(cls, cfg: SimpleNamespace, report: Any
                   ) -> tuple[type[Plugin], SimpleNamespace] | None:
        # A `level` section without a matcher gets the one LMA's Puppet wrote.
        if cfg.level and not cfg.message_matcher.strip():
            try:
                cfg.message_matcher = level_matcher(_level(cfg), cfg.vip_resource)
            except OptionError as e:
                report(e.key, str(e))
        return None

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if cfg.max_inject < 1:
            raise OptionError("must be at least 1", key="max_inject")
        if cfg.level:
            for key in (*LEVEL_KEYS, "topology_file", "policies_file"):
                if getattr(cfg, key):
                    raise OptionError(f"comes from {cfg.alarms_file or 'alarms.yaml'}'s "
                                      f"gse_cluster_{cfg.level} when `level` is set", key=key)
            level = _level(cfg)
            self.settings = level
            clusters = level.clusters
            self.activate_alerting = level.activate_alerting and cfg.activate_alerting
            self.source = cfg.source or f"gse_{cfg.level}_filter"
        else:
            for key in ("output_message_type", "member_field", "output_metric_name",
                        "topology_file", "policies_file", "source"):
                if not getattr(cfg, key):
                    raise OptionError(f"{key} is required (or `level` with alarms_file)",
                                      key=key)
            if cfg.interval <= 0:
                raise OptionError("must be more than 0", key="interval")
            clusters = self._lua_clusters(cfg)
            self.settings = GseLevelDef(
                "", (), False, cfg.cluster_field or None, cfg.member_field,
                cfg.output_message_type, cfg.output_metric_name, cfg.interval,
                cfg.warm_up_period, cfg.activate_alerting, clusters)
            self.activate_alerting = cfg.activate_alerting
            self.source = cfg.source
        try:
            self.gse = GseState(clusters, cfg.alarms_file or cfg.topology_file)
        except DefinitionError as e:
            raise OptionError(str(e), key="level" if cfg.level else "topology_file") from None
        self.active = not cfg.vip_resource
        self.first_tick: int | None = None
        self.last_tick = 0
        self.last_index: int | None = None

    @staticmethod
    def _lua_clusters(cfg: SimpleNamespace) -> dict[str, ClusterDef]:
        share = getattr(getattr(cfg, "hekad", None), "share_dir", "/usr/share/heka")
        dirs = module_dirs(cfg.module_directory, share)
        try:
            policies = read_policies(find_module(cfg.policies_file, dirs))
        except (OSError, LuaDataError, DefinitionError) as e:
            raise OptionError(str(e), key="policies_file") from None
        try:
            return read_topology(find_module(cfg.topology_file, dirs), policies)
        except (OSError, LuaDataError, DefinitionError) as e:
            raise OptionError(str(e), key="topology_file") from None

    # lifecycle ---------------------------------------------------------------------------
    def init(self, ctx: FilterContext) -> None:
        if self.cfg.preserve_data:
            state = load_state(ctx.hekad.base_dir, self.name, ctx.log)
            if state:
                self.gse.restore(state)

    def shutdown(self, ctx: FilterContext) -> None:
        if self.cfg.preserve_data:
            save_state(ctx.hekad.base_dir, self.name, self.gse.to_state(), ctx.log)

    # messages ------------------------------------------------------------------------------
    def process(self, messages: list[Message], ctx: FilterContext) -> None:
        for m in messages:
            problem = self._take(m)
            if problem:
                ctx.stats.errors += 1
                ctx.limited_log(30, "%s (Type %r, Logger %r)", problem, m.type, m.logger)

    def _take(self, m: Message) -> str | None:
        vip = self.cfg.vip_resource
        if vip and m.get_field("name") == PACEMAKER_METRIC and m.get_field("resource") == vip:
            if m.hostname == m.get_field("hostname"):  # about this node, not another
                self.active = m.get_field("value") == 1
            return None
        s = self.settings
        member = m.get_field(s.member_field)
        if member is None:
            return f"no Fields[{s.member_field}] (the member) in the status message"
        status = status_of(m.get_field("value"))
        if status is None:
            return f"no status (0..4) in Fields[value]: {m.get_field('value')!r}"
        alarms = decode_alarms(m.payload)
        if alarms is None:
            return "no alarms in the Payload"
        if s.cluster_field:
            cluster = m.get_field(s.cluster_field)
            if cluster is None:
                return f"no Fields[{s.cluster_field}] (the cluster) in the status message"
            if cluster not in self.gse.clusters:
                return None  # not a cluster of this filter's
            names = [cluster]
        else:
            names = self.gse.memberships.get(str(member), [])
        hostname = m.get_field("hostname")
        try:
            for name in names:
                self.gse.set_member_status(name, str(member), status, alarms,
                                           None if hostname is None else str(hostname))
        except ValueError as e:
            return str(e)
        return None

    def timer_event(self, now_ns: int, ctx: FilterContext) -> None:
        if not self.active:
            return  # not the aggregator holding the VIP
        if self.first_tick is None:
            self.first_tick = now_ns
            return
        s = self.settings
        if now_ns - self.first_tick <= s.warm_up_period * 1e9:
            return
        if self.last_index is None and now_ns - self.last_tick < s.interval * 1e9:
            return
        self.last_tick = now_ns
        injected = 0
        for i, name in enumerate(self.gse.order):
            if self.last_index is not None and i <= self.last_index:
                continue
            msg = self.status_message(name, now_ns, ctx.hostname)
            if msg is None:
                ctx.stats.errors += 1
                ctx.limited_log(40, "cluster %s: an alarm value cannot be written as JSON",
                                name)
            else:
                ctx.inject(msg)
            self.last_index = i
            injected += 1
            if injected >= self.cfg.max_inject:
                return
        self.last_index = None

    def status_message(self, cluster: str, now_ns: int, hostname: str) -> Message | None:
        status, alarms = self.gse.resolve(cluster)
        try:
            payload = encode_payload(alarms)
        except NotEncodable:
            return None
        s = self.settings
        fields = [Field("name", [s.output_metric_name], STRING),
                  Field("value", [float(status)], DOUBLE),
                  Field("cluster_name", [cluster], STRING),
                  Field("tag_fields", ["cluster_name"], STRING),
                  Field("interval", [float(s.interval)], DOUBLE),
                  Field("source", [self.source], STRING)]
        if not self.activate_alerting:
            fields.append(Field("no_alerting", [True], BOOL))
        return Message(type=f"heka.sandbox.{s.output_message_type}", logger=self.name,
                       hostname=hostname, timestamp=now_ns, payload=payload, fields=fields)
