"""Alarm, AFD, GSE policy and cluster definitions, checked and frozen.

They come from a YAML file (conf/alarms.yaml, laid out as LMA's alarming.yaml and
clusters.yaml: https://github.com/openstack/fuel-plugin-lma-collector,
deployment_scripts/puppet/modules/fuel_lma_collector/templates/) or from the Lua
modules LMA's Puppet generated from them (filters/alarming/lua_modules.py); both go
through `Checker`, so a mistake is reported the same way: file, where, what.

An AFD ("anomaly and fault detection") is one member of a node or service cluster:
a list of alarms whose rules are evaluated over metrics. LMA ran one Heka filter per
AFD; which AFDs a node runs follows LMA's get_afd_filters: a cluster's members apply
when its `apply_to_node` is one of the node's roles, or when a rule's metric is
`collected_on` one of them (the `metrics` table).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hekapy.collector.engine.alarm_status import SEVERITY_NAMES
from hekapy.filters.alarming.matching import ExpressionError, ValueMatcher

# LMA's afd_rule.lua: a window left out (or 0) is 10 s, periods at least 1.
MIN_WINDOW = 10
MIN_PERIODS = 1
FUNCTIONS = ("last", "min", "max", "avg", "sum", "variance", "sd", "diff")
OPERATORS = ("==", "!=", ">=", ">", "<=", "<", "eq", "ne", "gte", "gt", "lte", "lt")
ALERTING = ("enabled", "disabled", "enabled_with_notification")
POLICY_FUNCTIONS = ("count", "percent")
GROUP_BY = ("hostname", "member")


class DefinitionError(ValueError):
    """Definitions with mistakes; the message has one line per mistake."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class RuleDef:
    metric: str
    function: str
    operator: str
    threshold: float
    window: float
    periods: float
    fields: tuple[tuple[str, str], ...] = ()
    group_by: tuple[str, ...] = ()
    value: str | None = None  # the field of a multi-value metric


@dataclass(frozen=True)
class AlarmDef:
    name: str
    description: str
    severity: int
    # The status when a rule has no data; None: skip (no status at all).
    no_data: int | None
    logical_operator: str
    rules: tuple[RuleDef, ...]
    enabled: bool = True

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.metric for r in self.rules))


@dataclass(frozen=True)
class AfdDef:
    """One AFD: what one of LMA's afd.lua filters evaluated."""

    kind: str  # "node" or "service"
    cluster: str  # node_role or service of its messages
    member: str  # their `source`
    alarms: tuple[AlarmDef, ...]
    metrics: frozenset[str]  # the metrics it takes
    activate_alerting: bool = True

    @property
    def filter_name(self) -> str:
        """The name LMA's Puppet gave its filter (its messages' Logger)."""
        return f"afd_{self.kind}_{self.cluster}_{self.member}_filter"


@dataclass(frozen=True)
class MemberDef:
    name: str
    alarm_names: tuple[str, ...]
    activate_alerting: bool


@dataclass(frozen=True)
class AfdClusterDef:
    kind: str
    name: str
    apply_to_node: str | None
    members: tuple[MemberDef, ...]


@dataclass(frozen=True)
class PolicyRuleDef:
    function: str  # count | percent
    statuses: tuple[int, ...]
    operator: str
    threshold: float


@dataclass(frozen=True)
class PolicyDef:
    """One step of a policy: `status` when its trigger holds (no trigger: always)."""

    status: int
    logical_operator: str
    rules: tuple[PolicyRuleDef, ...]


@dataclass(frozen=True)
class ClusterDef:
    name: str
    members: tuple[str, ...]
    hints: tuple[str, ...]
    group_by: str  # hostname | member | none
    policy_name: str
    policy: tuple[PolicyDef, ...]


@dataclass(frozen=True)
class GseLevelDef:
    """One GSE filter's settings and clusters (LMA's gse_cluster_service/node/global)."""

    name: str
    input_message_types: tuple[str, ...]
    aggregator_flag: bool
    cluster_field: str | None
    member_field: str
    output_message_type: str
    output_metric_name: str
    interval: float
    warm_up_period: float
    activate_alerting: bool
    clusters: dict[str, ClusterDef] = field(default_factory=dict)


@dataclass
class Definitions:
    source: str
    alarms: dict[str, AlarmDef] = field(default_factory=dict)
    afd_clusters: dict[tuple[str, str], AfdClusterDef] = field(default_factory=dict)
    collected_on: dict[str, str] = field(default_factory=dict)
    policies: dict[str, tuple[PolicyDef, ...]] = field(default_factory=dict)
    gse_levels: dict[str, GseLevelDef] = field(default_factory=dict)

    def afds_for(self, roles: Iterable[str]) -> list[AfdDef]:
        """The AFDs a node of these roles runs, in the file's order."""
        profiles = set(roles) or {"default"}
        out = []
        for cluster in self.afd_clusters.values():
            for member in cluster.members:
                afd = self._afd(cluster, member, profiles)
                if afd is not None:
                    out.append(afd)
        return out

    def afd(self, kind: str, cluster_name: str, member_name: str) -> AfdDef:
        """One AFD by its cluster and member, whatever the roles; KeyError if unknown."""
        cluster = self.afd_clusters.get((kind, cluster_name))
        if cluster is None:
            raise KeyError(f"no {kind} cluster {cluster_name!r} in {self.source}")
        for member in cluster.members:
            if member.name == member_name:
                metrics = {m for name in member.alarm_names for m in self.alarms[name].metrics}
                return self._make(cluster, member, frozenset(metrics))
        raise KeyError(f"{kind} cluster {cluster_name!r} has no member {member_name!r}")

    def _afd(self, cluster: AfdClusterDef, member: MemberDef, profiles: set[str]
             ) -> AfdDef | None:
        # LMA's get_afd_filters: once a rule matched the node, every later rule's
        # metric is taken too.
        matches = False
        metrics: set[str] = set()
        for name in member.alarm_names:
            for rule in self.alarms[name].rules:
                if self.collected_on.get(rule.metric) in profiles or (
                        cluster.apply_to_node in profiles):
                    matches = True
                if matches:
                    metrics.add(rule.metric)
        return self._make(cluster, member, frozenset(metrics)) if matches else None

    def _make(self, cluster: AfdClusterDef, member: MemberDef, metrics: frozenset[str]
              ) -> AfdDef:
        alarms = tuple(self.alarms[n] for n in member.alarm_names if self.alarms[n].enabled)
        return AfdDef(cluster.kind, cluster.name, member.name, alarms, metrics,
                      member.activate_alerting)


# --- reading --------------------------------------------------------------------------------

def shipped_alarms_file() -> Path:
    """hekapy's own conf/alarms.yaml (LMA's default alarms)."""
    return Path(str(resources.files("hekapy.conf").joinpath("alarms.yaml")))


_CACHE: dict[str, tuple[float, int, Definitions]] = {}


def load_alarms_file(path: str | os.PathLike | None = None) -> Definitions:
    """The definitions of a YAML file ("" or None: the shipped one); DefinitionError
    naming every mistake, OSError when it cannot be read. Kept while the file is
    unchanged (the config check and the pipeline build each filter more than once)."""
    import yaml

    p = Path(path) if path else shipped_alarms_file()
    source = str(p)
    st = p.stat()
    cached = _CACHE.get(source)
    if cached is not None and cached[:2] == (st.st_mtime, st.st_size):
        return cached[2]
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise DefinitionError(source, [f"{where}not valid YAML ({problem})"]) from None
    except UnicodeDecodeError as e:
        raise DefinitionError(source, [f"not UTF-8 text ({e})"]) from None
    if isinstance(doc, dict) and set(doc) == {"lma_collector"}:
        doc = doc["lma_collector"]  # LMA's hiera files nest it all under this key
    defs = Checker(source).definitions(doc)
    _CACHE[source] = (st.st_mtime, st.st_size, defs)
    return defs


# --- checking -------------------------------------------------------------------------------

class Checker:
    """Turns parsed YAML (or converted Lua tables) into Definitions, collecting every
    mistake with where it is; `definitions` raises DefinitionError if there is any."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}" if where else message)

    def done(self) -> None:
        if self.problems:
            raise DefinitionError(self.source, self.problems)

    # scalar checks (None: reported) ----------------------------------------------------
    def text(self, value: Any, where: str, required: bool = True) -> str | None:
        if value is None and not required:
            return None
        if isinstance(value, str) and (value or not required):
            return value
        self.problem(where, f"expected {'a non-empty ' if required else 'a '}string, got "
                     f"{value!r}")
        return None

    def number(self, value: Any, where: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not math.isfinite(value)):
            self.problem(where, f"expected a number, got {value!r}")
            return None
        return value

    def choice(self, value: Any, choices: Iterable[str], where: str) -> str | None:
        choices = tuple(choices)
        text = value.lower() if isinstance(value, str) else value
        if text in choices:
            return text
        self.problem(where, f"{value!r} is not one of {', '.join(choices)}")
        return None

    def flag(self, value: Any, where: str) -> bool | None:
        """A boolean; LMA's YAML wrote 'true' and 'false' as strings too."""
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(where, f"expected true or false, got {value!r}")
        return None

    def mapping(self, value: Any, where: str) -> dict:
        if isinstance(value, dict):
            return value
        self.problem(where, f"expected a mapping, got {value!r}")
        return {}

    def sequence(self, value: Any, where: str) -> list:
        if isinstance(value, list):
            return value
        self.problem(where, f"expected a list, got {value!r}")
        return []

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        out = []
        for i, item in enumerate(self.sequence(value, where)):
            text = self.text(item, f"{where}[{i}]")
            if text is not None:
                out.append(text)
        return tuple(out)

    def unknown_keys(self, body: dict, known: Iterable[str], where: str) -> None:
        for key in body:
            if key not in known:
                self.problem(where, f"unknown key {key!r} (known: "
                             f"{', '.join(sorted(known))})")

    # the document ---------------------------------------------------------------------
    def definitions(self, doc: Any) -> Definitions:
        defs = Definitions(self.source)
        if doc is None:
            doc = {}
        body = self.mapping(doc, "")
        known = {"alarms", "node_cluster_alarms", "service_cluster_alarms", "metrics",
                 "gse_policies"}
        self.unknown_keys({k: v for k, v in body.items()
                           if not str(k).startswith("gse_cluster_")}, known, "")
        for i, a in enumerate(self.sequence(body.get("alarms", []), "alarms")):
            alarm = self.alarm(a, f"alarms[{i}]")
            if alarm is None:
                continue
            if alarm.name in defs.alarms:
                self.problem(f"alarms[{i}]", f"a second alarm named {alarm.name!r}")
            defs.alarms[alarm.name] = alarm
        for kind in ("node", "service"):
            key = f"{kind}_cluster_alarms"
            for name, c in self.mapping(body.get(key, {}), key).items():
                cluster = self.afd_cluster(kind, name, c, f"{key}.{name}", defs.alarms)
                if cluster is not None:
                    defs.afd_clusters[(kind, cluster.name)] = cluster
        for metric, m in self.mapping(body.get("metrics", {}), "metrics").items():
            where = f"metrics.{metric}"
            m = self.mapping(m, where)
            self.unknown_keys(m, ("collected_on",), where)
            role = self.text(m.get("collected_on"), f"{where}.collected_on")
            if role is not None:
                defs.collected_on[str(metric)] = role
        for name, p in self.mapping(body.get("gse_policies", {}), "gse_policies").items():
            policy = self.policy(p, f"gse_policies.{name}")
            defs.policies[str(name)] = policy
        for key, level_body in body.items():
            if str(key).startswith("gse_cluster_"):
                level = self.gse_level(str(key)[len("gse_cluster_"):], level_body,
                                       str(key), defs.policies)
                if level is not None:
                    defs.gse_levels[level.name] = level
        self.done()
        return defs

    def alarm(self, a: Any, where: str) -> AlarmDef | None:
        a = self.mapping(a, where)
        name = self.text(a.get("name"), f"{where}.name")
        if name is not None:
            where = f"{where} ({name})"
        self.unknown_keys(a, ("name", "description", "severity", "enabled", "no_data_policy",
                              "trigger"), where)
        description = self.text(a.get("description", ""), f"{where}.description",
                                required=False) or ""
        severity = self.choice(a.get("severity"), SEVERITY_NAMES, f"{where}.severity")
        enabled = self.flag(a.get("enabled", True), f"{where}.enabled")
        no_data: int | None = SEVERITY_NAMES["unknown"]
        if "no_data_policy" in a:
            policy = self.choice(a["no_data_policy"], ("skip", *SEVERITY_NAMES),
                                 f"{where}.no_data_policy")
            no_data = None if policy in (None, "skip") else SEVERITY_NAMES[policy]
        trigger = self.mapping(a.get("trigger"), f"{where}.trigger")
        self.unknown_keys(trigger, ("logical_operator", "rules"), f"{where}.trigger")
        logical = self.choice(trigger.get("logical_operator", "or"), ("or", "and"),
                              f"{where}.trigger.logical_operator")
        raw_rules = self.sequence(trigger.get("rules"), f"{where}.trigger.rules")
        if not raw_rules and isinstance(trigger.get("rules"), list):
            self.problem(f"{where}.trigger.rules", "an alarm needs at least one rule")
        rules = [self.rule(r, f"{where}.trigger.rules[{i}]") for i, r in enumerate(raw_rules)]
        if name is None or severity is None or enabled is None or logical is None or (
                None in rules) or not rules:
            return None
        return AlarmDef(name, description, SEVERITY_NAMES[severity], no_data, logical,
                        tuple(r for r in rules if r is not None), enabled)

    def rule(self, r: Any, where: str) -> RuleDef | None:
        r = self.mapping(r, where)
        self.unknown_keys(r, ("metric", "fields", "group_by", "function",
                              "relational_operator", "threshold", "window", "periods",
                              "value"), where)
        metric = self.text(r.get("metric"), f"{where}.metric")
        function = self.choice(r.get("function"), FUNCTIONS, f"{where}.function")
        operator = self.choice(r.get("relational_operator"), OPERATORS,
                               f"{where}.relational_operator")
        threshold = self.number(r.get("threshold"), f"{where}.threshold")
        window = self.number(r.get("window", 0), f"{where}.window")
        periods = self.number(r.get("periods", 0), f"{where}.periods")
        fields = []
        for k, expr in self.mapping(r.get("fields", {}), f"{where}.fields").items():
            expr = self.text(expr, f"{where}.fields.{k}") if not isinstance(
                expr, (int, float)) or isinstance(expr, bool) else str(expr)
            if expr is None:
                continue
            try:
                ValueMatcher(expr)
            except ExpressionError as e:
                self.problem(f"{where}.fields.{k}", str(e))
                continue
            fields.append((str(k), expr))
        group_by = self.strings(r.get("group_by", []), f"{where}.group_by")
        value = self.text(r.get("value"), f"{where}.value", required=False)
        if (metric is None or function is None or operator is None or threshold is None
                or window is None or periods is None):
            return None
        return RuleDef(metric, function, operator, threshold,
                       window if window > 0 else MIN_WINDOW,
                       periods if periods > 0 else MIN_PERIODS, tuple(fields), group_by, value)

    def afd_cluster(self, kind: str, name: Any, c: Any, where: str,
                    alarms: dict[str, AlarmDef]) -> AfdClusterDef | None:
        c = self.mapping(c, where)
        self.unknown_keys(c, ("apply_to_node", "alerting", "members"), where)
        apply_to = self.text(c.get("apply_to_node"), f"{where}.apply_to_node", required=False)
        alerting = self.choice(c.get("alerting", "enabled"), ALERTING, f"{where}.alerting")
        members = []
        for member, m in self.mapping(c.get("members"), f"{where}.members").items():
            mwhere = f"{where}.members.{member}"
            m = self.mapping(m, mwhere)
            self.unknown_keys(m, ("alarms", "alerting"), mwhere)
            m_alerting = self.choice(m.get("alerting", alerting or "enabled"), ALERTING,
                                     f"{mwhere}.alerting")
            names = self.strings(m.get("alarms"), f"{mwhere}.alarms")
            for i, alarm in enumerate(names):
                if alarm not in alarms:
                    self.problem(f"{mwhere}.alarms[{i}]", f"no alarm named {alarm!r}")
            members.append(MemberDef(str(member), names, m_alerting != "disabled"))
        return AfdClusterDef(kind, str(name), apply_to, tuple(members))

    def policy(self, p: Any, where: str) -> tuple[PolicyDef, ...]:
        steps = []
        items = self.sequence(p, where)
        if not items and isinstance(p, list):
            self.problem(where, "a policy needs at least one status")
        for i, step in enumerate(items):
            swhere = f"{where}[{i}]"
            step = self.mapping(step, swhere)
            self.unknown_keys(step, ("status", "trigger"), swhere)
            status = self.choice(step.get("status"), SEVERITY_NAMES, f"{swhere}.status")
            rules = []
            logical = "or"
            if "trigger" in step:
                trigger = self.mapping(step["trigger"], f"{swhere}.trigger")
                self.unknown_keys(trigger, ("logical_operator", "rules"), f"{swhere}.trigger")
                logical = self.choice(trigger.get("logical_operator", "or"), ("or", "and"),
                                      f"{swhere}.trigger.logical_operator") or "or"
                for j, r in enumerate(self.sequence(trigger.get("rules", []),
                                                    f"{swhere}.trigger.rules")):
                    rule = self.policy_rule(r, f"{swhere}.trigger.rules[{j}]")
                    if rule is not None:
                        rules.append(rule)
            if status is not None:
                steps.append(PolicyDef(SEVERITY_NAMES[status], logical, tuple(rules)))
        return tuple(steps)

    def policy_rule(self, r: Any, where: str) -> PolicyRuleDef | None:
        r = self.mapping(r, where)
        self.unknown_keys(r, ("function", "arguments", "relational_operator", "threshold"),
                          where)
        function = self.choice(r.get("function"), POLICY_FUNCTIONS, f"{where}.function")
        statuses = []
        for i, arg in enumerate(self.sequence(r.get("arguments"), f"{where}.arguments")):
            s = self.choice(arg, SEVERITY_NAMES, f"{where}.arguments[{i}]")
            if s is not None:
                statuses.append(SEVERITY_NAMES[s])
        operator = self.choice(r.get("relational_operator"), OPERATORS,
                               f"{where}.relational_operator")
        threshold = self.number(r.get("threshold"), f"{where}.threshold")
        if function is None or operator is None or threshold is None:
            return None
        return PolicyRuleDef(function, tuple(statuses), operator, threshold)

    def gse_level(self, name: str, body: Any, where: str,
                  policies: dict[str, tuple[PolicyDef, ...]]) -> GseLevelDef | None:
        body = self.mapping(body, where)
        self.unknown_keys(body, ("input_message_types", "aggregator_flag", "cluster_field",
                                 "member_field", "output_message_type", "output_metric_name",
                                 "interval", "warm_up_period", "alerting", "clusters"), where)
        types = self.strings(body.get("input_message_types"), f"{where}.input_message_types")
        if not types and isinstance(body.get("input_message_types"), list):
            self.problem(f"{where}.input_message_types", "needs at least one type")
        flag = self.flag(body.get("aggregator_flag", False), f"{where}.aggregator_flag")
        cluster_field = self.text(body.get("cluster_field"), f"{where}.cluster_field",
                                  required=False) or None
        member_field = self.text(body.get("member_field"), f"{where}.member_field")
        out_type = self.text(body.get("output_message_type"), f"{where}.output_message_type")
        out_name = self.text(body.get("output_metric_name"), f"{where}.output_metric_name")
        interval = self.number(body.get("interval", 10), f"{where}.interval")
        warm_up = self.number(body.get("warm_up_period", 0), f"{where}.warm_up_period")
        alerting = self.choice(body.get("alerting", "enabled_with_notification"), ALERTING,
                               f"{where}.alerting")
        if interval is not None and interval <= 0:
            self.problem(f"{where}.interval", "must be more than 0")
        clusters: dict[str, ClusterDef] = {}
        for cname, c in self.mapping(body.get("clusters"), f"{where}.clusters").items():
            cluster = self.gse_cluster(str(cname), c, f"{where}.clusters.{cname}", policies)
            if cluster is not None:
                clusters[cluster.name] = cluster
        for cluster in clusters.values():
            for hint in cluster.hints:
                if hint not in clusters:
                    self.problem(f"{where}.clusters.{cluster.name}.hints",
                                 f"no cluster named {hint!r} in {where}")
        if (flag is None or member_field is None or out_type is None or out_name is None
                or interval is None or warm_up is None or alerting is None):
            return None
        return GseLevelDef(name, types, flag, cluster_field, member_field, out_type, out_name,
                           interval, warm_up, alerting != "disabled", clusters)

    def gse_cluster(self, name: str, c: Any, where: str,
                    policies: dict[str, tuple[PolicyDef, ...]]) -> ClusterDef | None:
        c = self.mapping(c, where)
        self.unknown_keys(c, ("policy", "group_by", "members", "hints"), where)
        policy = self.text(c.get("policy"), f"{where}.policy")
        if policy is not None and policy not in policies:
            self.problem(f"{where}.policy", f"no policy named {policy!r} in gse_policies"
                         f" (defined: {', '.join(sorted(policies)) or 'none'})")
            policy = None
        group_by = c.get("group_by")
        if group_by is not None and group_by not in GROUP_BY:
            self.problem(f"{where}.group_by", f"{group_by!r} is not one of "
                         f"{', '.join(GROUP_BY)}")
        members = self.strings(c.get("members"), f"{where}.members")
        hints = self.strings(c.get("hints", []), f"{where}.hints")
        if policy is None:
            return None
        return ClusterDef(name, members, hints, group_by or "none", policy, policies[policy])
