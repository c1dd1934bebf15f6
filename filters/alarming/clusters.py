"""GSE evaluation: the status of clusters from the statuses of their members, with the
semantics of LMA's gse.lua, gse_cluster.lua and gse_policy.lua
(https://github.com/openstack/fuel-plugin-lma-collector, deployment_scripts/puppet/
modules/lma_collector/files/plugins/common/); docs/alarms.md says it for operators.

A cluster keeps the last status and alarms each member reported ("facts"), per member
and host, and counts groups of them: `group_by: hostname` one group per host (the
worst status of its members), `member` one per member (its last report, whatever the
host), otherwise one per member with the worst status over its hosts. The policy then
reads how many groups are in each status: its steps are tried in order, the first
whose trigger holds (a `count` or a `percent` of the groups in some statuses compared
with a threshold; rules joined by `or` or `and`) gives the status, a step without
trigger always holds, none: UNKNOWN. A cluster that is not OKAY reports its members'
alarms (tagged `dependency_name` = the member, `dependency_level` = direct) and those
of its `hints`, the clusters it depends on, that do not come from its own members
(`dependency_level` = hint).
"""

from __future__ import annotations

import copy
from typing import Any

from hekapy.collector.engine.alarm_status import OKAY, STATUS_LABELS, UNKW, worst
from hekapy.filters.alarming.definitions import ClusterDef, DefinitionError, PolicyDef
from hekapy.filters.alarming.rules import compare


def policy_holds(step: PolicyDef, breakdown: dict[int, int]) -> bool:
    """Whether a policy step's trigger holds for {status: number of groups}."""
    if not step.rules:
        return True
    total = sum(breakdown.values()) if any(r.function == "percent" for r in step.rules) else 0
    one_match = False
    for rule in step.rules:
        value: float = sum(breakdown.get(s, 0) for s in rule.statuses)
        if rule.function == "percent":
            value = value * 100 / total if total else float("nan")
        if compare(value, rule.operator, rule.threshold):
            one_match = True
            if step.logical_operator == "or":
                return True
        elif step.logical_operator == "and":
            return False
    return one_match


class Fact:
    __slots__ = ("alarms", "hostname", "member", "status")

    def __init__(self, status: int, alarms: list[dict[str, Any]], member: str,
                 hostname: str | None) -> None:
        self.status = status
        self.alarms = alarms
        self.member = member
        self.hostname = hostname  # kept for `group_by: hostname` only, as LMA


class ClusterState:
    def __init__(self, definition: ClusterDef) -> None:
        self.definition = definition
        self.members = frozenset(definition.members)
        self.facts: dict[str, dict[str, Fact]] = {}
        self.status = UNKW
        self.alarms: list[dict[str, Any]] = []

    def update_fact(self, member: str, hostname: str | None, status: int,
                    alarms: list[dict[str, Any]]) -> None:
        group_by = self.definition.group_by
        if group_by == "member":
            key1, key2 = member, "__anyhost__"
        else:
            if hostname is None:
                raise ValueError("the message has no Fields[hostname], which "
                                 f"group_by {group_by!r} needs")
            key1, key2 = (hostname, member) if group_by == "hostname" else (member, hostname)
        self.facts.setdefault(key1, {})[key2] = Fact(
            status, copy.deepcopy(alarms), member, hostname if group_by == "hostname" else None)

    def refresh(self) -> int:
        alarms: list[dict[str, Any]] = []
        breakdown: dict[int, int] = {}
        for group_key in sorted(self.facts):
            group_status: int | None = UNKW
            group = self.facts[group_key]
            for sub_key in sorted(group):
                fact = group[sub_key]
                group_status = worst(group_status, fact.status)
                if fact.status != OKAY:
                    for a in fact.alarms:
                        a = copy.deepcopy(a)
                        tags = a.get("tags")
                        if not isinstance(tags, dict):
                            tags = a["tags"] = {}
                        tags["dependency_name"] = fact.member
                        tags["dependency_level"] = "direct"
                        if fact.hostname:
                            a["hostname"] = fact.hostname
                        alarms.append(a)
            assert group_status is not None
            breakdown[group_status] = breakdown.get(group_status, 0) + 1
        self.status = UNKW
        for step in self.definition.policy:
            if policy_holds(step, breakdown):
                self.status = step.status
                break
        self.alarms = alarms if self.status != OKAY else []
        return self.status

    def alarms_not_from(self, other: ClusterState) -> list[dict[str, Any]]:
        """`other`'s alarms that do not come from one of this cluster's members."""
        return [a for a in other.alarms
                if isinstance(a.get("tags"), dict) and a["tags"].get("dependency_name")
                and a["tags"]["dependency_name"] not in self.members]

    # persistence -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {k1: {k2: {"status": f.status, "alarms": f.alarms, "member": f.member,
                          "hostname": f.hostname} for k2, f in group.items()}
                for k1, group in self.facts.items()}

    def restore(self, state: dict[str, Any]) -> None:
        for k1, group in state.items():
            for k2, f in group.items():
                if f.get("status") in STATUS_LABELS and isinstance(f.get("alarms"), list):
                    self.facts.setdefault(k1, {})[k2] = Fact(
                        f["status"], f["alarms"], str(f.get("member")), f.get("hostname"))


def ordered(clusters: dict[str, ClusterDef], source: str = "") -> list[str]:
    """The clusters in the order their statuses are computed and sent: each after the
    clusters it names as hints, otherwise by name. A circular dependency is an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " → ".join([*path[path.index(name):], name])
            raise DefinitionError(source, [f"circular dependency between clusters: {cycle}"])
        state[name] = "visiting"
        for hint in sorted(clusters[name].hints):
            if hint in clusters:
                visit(hint, [*path, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(clusters):
        visit(name, [])
    return order


class GseState:
    """The clusters of one GSE filter and who belongs to which."""

    def __init__(self, clusters: dict[str, ClusterDef], source: str = "") -> None:
        self.clusters = {name: ClusterState(c) for name, c in clusters.items()}
        self.order = ordered(clusters, source)
        self.memberships: dict[str, list[str]] = {}
        for name in self.order:
            for member in clusters[name].members:
                names = self.memberships.setdefault(member, [])
                if name not in names:
                    names.append(name)

    def set_member_status(self, cluster: str, member: str, status: int,
                          alarms: list[dict[str, Any]], hostname: str | None) -> None:
        c = self.clusters.get(cluster)
        if c is not None:
            c.update_fact(member, hostname, status, alarms)

    def resolve(self, name: str) -> tuple[int, list[dict[str, Any]]]:
        """A cluster's status now and the alarms to report with it."""
        cluster = self.clusters[name]
        cluster.refresh()
        alarms = copy.deepcopy(cluster.alarms)
        if cluster.status != OKAY:
            for hint in cluster.definition.hints:
                other = self.clusters.get(hint)
                if other is None:
                    continue
                for a in cluster.alarms_not_from(other):
                    a = copy.deepcopy(a)
                    a["tags"]["dependency_name"] = hint
                    a["tags"]["dependency_level"] = "hint"
                    alarms.append(a)
        return cluster.status, alarms

    def to_state(self) -> dict[str, Any]:
        return {name: c.to_state() for name, c in self.clusters.items()}

    def restore(self, state: dict[str, Any]) -> None:
        for name, facts in state.items():
            c = self.clusters.get(name)
            if c is not None and isinstance(facts, dict):
                c.restore(facts)
