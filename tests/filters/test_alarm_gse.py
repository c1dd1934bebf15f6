"""GSE evaluation against the semantics of LMA's gse.lua, gse_cluster.lua and
gse_policy.lua (docs/alarms.md, "GSE"), with vectors of our own: the shipped policies,
how members are grouped, hints, and GseFilter's timing (the VIP, warm-up, interval,
max_inject), messages and saved state; then what consumes its messages: the
annotations, the Nagios passive checks and LMA's InfluxDB accumulator."""

from __future__ import annotations

import json
import textwrap
import urllib.parse
from pathlib import Path

import pytest

from hekapy.collector.engine.alarm_status import CRIT, DOWN, OKAY, UNKW, WARN
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.filters.alarming.clusters import ClusterState, GseState, ordered, policy_holds
from hekapy.filters.alarming.definitions import ClusterDef, DefinitionError, load_alarms_file
from hekapy.filters.influxdb_accumulator import InfluxdbAccumulatorFilter, encode_point
from hekapy.outputs.encoders.nagios import NagiosEncoder, truncate, url_encode
from tests.helpers.plugins import make_plugin

S = 1_000_000_000
T0 = 1_700_000_000 * S
POLICIES = load_alarms_file().policies


def status_of_policy(name: str, breakdown: dict[int, int]) -> int:
    for step in POLICIES[name]:
        if policy_holds(step, breakdown):
            return step.status
    return UNKW


@pytest.mark.parametrize("policy, breakdown, expected", [
    ("highest_severity", {}, UNKW),
    ("highest_severity", {OKAY: 3}, OKAY),
    ("highest_severity", {OKAY: 3, UNKW: 1}, OKAY),
    ("highest_severity", {OKAY: 3, WARN: 1, CRIT: 1}, CRIT),
    ("highest_severity", {DOWN: 1, CRIT: 2}, DOWN),
    ("majority_of_members", {OKAY: 1, DOWN: 2}, DOWN),  # > 50 % down
    ("majority_of_members", {OKAY: 2, DOWN: 2}, OKAY),  # 50 % down, 50 % okay
    ("majority_of_members", {OKAY: 1, CRIT: 1, WARN: 1}, CRIT),
    ("majority_of_members", {OKAY: 1, WARN: 2}, WARN),
    ("availability_of_members", {OKAY: 0, DOWN: 3}, DOWN),
    ("availability_of_members", {OKAY: 1, CRIT: 2}, CRIT),
    ("availability_of_members", {OKAY: 1, CRIT: 1}, WARN),
    ("availability_of_members", {OKAY: 3}, OKAY),
    ("availability_of_members", {}, DOWN),  # no member okay
    ("status_of_members", {DOWN: 2}, DOWN),
    ("status_of_members", {OKAY: 1, UNKW: 1}, CRIT),
    ("status_of_members", {OKAY: 2, CRIT: 1}, WARN),
    ("status_of_members", {OKAY: 2}, OKAY),
    ("majority_of_node_members", {DOWN: 4}, DOWN),
    ("majority_of_node_members", {OKAY: 2, CRIT: 1, DOWN: 1}, CRIT),
    ("majority_of_node_members", {OKAY: 9, UNKW: 1}, WARN),
    ("majority_of_node_members", {OKAY: 9}, OKAY),
])
def test_shipped_policies(policy, breakdown, expected):
    assert status_of_policy(policy, breakdown) == expected


def cluster(group_by: str, members=("a", "b"), hints=(), policy="highest_severity"
            ) -> ClusterDef:
    return ClusterDef("c", tuple(members), tuple(hints), group_by, policy, POLICIES[policy])


def alarm(metric: str) -> dict:
    return {"severity": "WARN", "function": "last", "metric": metric, "fields": {},
            "tags": {}, "operator": ">", "value": 2, "threshold": 1, "window": 10,
            "periods": 1, "message": f"{metric} high"}


def test_grouping_by_hostname_member_or_neither():
    # two hosts: node-1 has a WARN member and an OKAY one, node-2 only OKAY
    facts = [("a", "node-1", WARN), ("b", "node-1", OKAY), ("a", "node-2", OKAY)]
    for group_by, breakdown in (("hostname", {WARN: 1, OKAY: 1}),
                                ("member", {OKAY: 2}),  # the last report of each member
                                ("none", {WARN: 1, OKAY: 1})):  # each member's worst
        c = ClusterState(cluster(group_by, policy="status_of_members"))
        for member, host, status in facts:
            c.update_fact(member, host, status, [alarm(member)] if status else [])
        counted: dict[int, int] = {}
        for group in c.facts.values():
            worst = max(group.values(), key=lambda f: (f.status != UNKW, f.status)).status
            counted[worst] = counted.get(worst, 0) + 1
        assert counted == breakdown, group_by
    c = ClusterState(cluster("hostname"))
    for member, host, status in facts:
        c.update_fact(member, host, status, [alarm(member)] if status else [])
    assert c.refresh() == WARN
    (a,) = c.alarms
    assert (a["tags"], a["hostname"]) == ({"dependency_name": "a",
                                           "dependency_level": "direct"}, "node-1")
    c.update_fact("a", "node-1", OKAY, [])
    assert c.refresh() == OKAY and c.alarms == []
    with pytest.raises(ValueError, match="no Fields\\[hostname\\]"):
        c.update_fact("a", None, OKAY, [])


def test_hints_bring_the_alarms_of_clusters_depended_on():
    clusters = {
        "api": ClusterDef("api", ("backends",), ("db",), "member", "highest_severity",
                          POLICIES["highest_severity"]),
        "db": ClusterDef("db", ("mysql", "backends"), (), "member", "highest_severity",
                         POLICIES["highest_severity"]),
    }
    gse = GseState(clusters)
    assert gse.order == ["db", "api"]  # a cluster after its hints
    gse.set_member_status("db", "mysql", CRIT, [alarm("mysql_check")], None)
    gse.set_member_status("db", "backends", WARN, [alarm("shared")], None)
    gse.set_member_status("api", "backends", OKAY, [], None)
    assert gse.resolve("db")[0] == CRIT
    assert gse.resolve("api") == (OKAY, [])  # okay: no hints
    gse.set_member_status("api", "backends", WARN, [alarm("haproxy")], None)
    status, alarms = gse.resolve("api")
    assert status == WARN
    # db's alarm from `backends`, a member of api too, is not repeated as a hint
    assert [(a["metric"], a["tags"]["dependency_name"], a["tags"]["dependency_level"])
            for a in alarms] == [("haproxy", "backends", "direct"),
                                 ("mysql_check", "db", "hint")]


def test_circular_hints_are_refused():
    p = POLICIES["highest_severity"]
    with pytest.raises(DefinitionError, match="circular dependency between clusters: "
                                              "a → b → a"):
        ordered({"a": ClusterDef("a", (), ("b",), "member", "p", p),
                 "b": ClusterDef("b", (), ("a",), "member", "p", p)}, "x.yaml")


# --- GseFilter ------------------------------------------------------------------------------------

ALARMS = """
gse_policies:
  highest_severity:
    - status: critical
      trigger: {rules: [{function: count, arguments: [critical], relational_operator: '>',
                         threshold: 0}]}
    - status: okay
gse_cluster_service:
  input_message_types: [afd_service_metric]
  aggregator_flag: true
  cluster_field: service
  member_field: source
  output_message_type: gse_service_cluster_metric
  output_metric_name: cluster_service_status
  interval: 10
  warm_up_period: 3
  alerting: disabled
  clusters:
    a: {policy: highest_severity, group_by: member, members: [x]}
    b: {policy: highest_severity, group_by: member, members: [x]}
    c: {policy: highest_severity, group_by: member, members: [x]}
"""


def gse_pipeline(tmp_path: Path, **keys: object):
    (tmp_path / "alarms.yaml").write_text(ALARMS)
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    conf = tmp_path / "hekad.toml"
    conf.write_text(textwrap.dedent(f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        hostname = "ctl-1"
        [gse_service_filter]
        type = "GseFilter"
        alarms_file = "{tmp_path / 'alarms.yaml'}"
        level = "service"
        max_inject = 2
        preserve_data = true
    """) + extra)
    p = Pipeline(load_config(conf, strict=True))
    ((plugin, ctx, _q),) = p.filters
    plugin.init(ctx)
    return plugin, ctx


def afd_status(cluster: str, value: int, host: str = "node-1") -> Message:
    payload = json.dumps({"alarms": [alarm("m")]}) if value else '{"alarms":[]}'
    return Message(type="heka.sandbox.afd_service_metric", hostname=host, payload=payload,
                   fields=[Field("name", ["service_status"], STRING),
                           Field("value", [float(value)], DOUBLE),
                           Field("service", [cluster], STRING), Field("source", ["x"], STRING),
                           Field("hostname", [host], STRING)])


def vip(active: int, host: str = "ctl-1", reported_by: str = "ctl-1") -> Message:
    return Message(type="metric", hostname=reported_by, fields=[
        Field("name", ["pacemaker_local_resource_active"], STRING),
        Field("resource", ["vip__management"], STRING), Field("hostname", [host], STRING),
        Field("value", [float(active)], DOUBLE)])


def ticks(gse, ctx, seconds) -> list[tuple[int, list[str]]]:
    out = []
    for s in seconds:
        gse.timer_event(T0 + s * S, ctx)
        got = ctx.take_injected()
        if got:
            out.append((s, [m.get_field("cluster_name") for m in got]))
    return out


async def test_gse_speaks_only_with_the_vip_after_warm_up_every_interval(tmp_path):
    gse, ctx = gse_pipeline(tmp_path)
    gse.process([afd_status("a", CRIT), afd_status("zzz", CRIT)], ctx)  # zzz: not ours
    assert ticks(gse, ctx, range(0, 5)) == []  # not the VIP holder
    gse.process([vip(1, host="ctl-2", reported_by="ctl-1")], ctx)  # about another node
    assert ticks(gse, ctx, range(5, 8)) == []
    gse.process([vip(1)], ctx)
    # first tick at 10, warm-up of 3 s: from 14 on; 2 clusters per tick, the third on
    # the next tick; the next round 10 s after the last tick of the round
    assert ticks(gse, ctx, range(10, 40)) == [(14, ["a", "b"]), (15, ["c"]),
                                              (25, ["a", "b"]), (26, ["c"]),
                                              (36, ["a", "b"]), (37, ["c"])]
    gse.process([vip(0)], ctx)
    assert ticks(gse, ctx, range(40, 60)) == []
    assert ctx.stats.errors == 0


async def test_gse_messages_and_saved_facts(tmp_path):
    gse, ctx = gse_pipeline(tmp_path, vip_resource="")
    gse.process([afd_status("a", CRIT, "node-2")], ctx)
    gse.timer_event(T0, ctx)
    gse.timer_event(T0 + 4 * S, ctx)
    a, b = ctx.take_injected()
    assert (a.type, a.logger, a.hostname) == ("heka.sandbox.gse_service_cluster_metric",
                                              "gse_service_filter", "ctl-1")
    assert a.fields == [Field("name", ["cluster_service_status"], STRING),
                        Field("value", [3.0], DOUBLE), Field("cluster_name", ["a"], STRING),
                        Field("tag_fields", ["cluster_name"], STRING),
                        Field("interval", [10.0], DOUBLE),
                        Field("source", ["gse_service_filter"], STRING),
                        Field("no_alerting", [True], BOOL)]  # alerting: disabled
    (reported,) = json.loads(a.payload)["alarms"]
    assert reported["tags"] == {"dependency_name": "x", "dependency_level": "direct"}
    assert "hostname" not in reported  # group_by member: the host is not kept
    assert b.get_field("value") == OKAY and b.payload == '{"alarms":[]}'
    # not a status: counted, the cluster unchanged
    gse.process([Message(type="heka.sandbox.afd_service_metric", payload="{}",
                         fields=[Field("source", ["x"], STRING),
                                 Field("value", [9.0], DOUBLE)])], ctx)
    assert ctx.stats.errors == 1
    gse.shutdown(ctx)
    again, ctx2 = gse_pipeline(tmp_path, vip_resource="")
    again.timer_event(T0, ctx2)
    again.timer_event(T0 + 4 * S, ctx2)
    assert ctx2.take_injected()[0].get_field("value") == CRIT  # the fact survived


# --- the consumers --------------------------------------------------------------------------------

def cluster_status(name: str, value: int, alarms=(), ts: int = T0) -> Message:
    payload = json.dumps({"alarms": list(alarms)}) if alarms else '{"alarms":[]}'
    return Message(type="heka.sandbox.gse_cluster_metric", timestamp=ts, payload=payload,
                   fields=[Field("name", ["cluster_status"], STRING),
                           Field("value", [float(value)], DOUBLE),
                           Field("cluster_name", [name], STRING)])


async def test_annotations_on_status_changes(tmp_path):
    conf = tmp_path / "hekad.toml"
    conf.write_text(textwrap.dedent(f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        hostname = "ctl-1"
        [influxdb_annotation_filter]
        type = "InfluxdbAnnotationFilter"
        preserve_data = true
    """))
    p = Pipeline(load_config(conf, strict=True))
    ((ann, ctx, _q),) = p.filters
    ann.init(ctx)
    hint = {**alarm("mysql_check"), "tags": {"dependency_level": "hint",
                                             "dependency_name": "mysql"}}
    direct = {**alarm("log_messages"), "fields": {"service": "nova", "level": "error"},
              "hostname": "node-2", "tags": {"dependency_level": "direct"}}
    ann.process([cluster_status("nova", OKAY),  # new and fine: nothing
                 cluster_status("nova", WARN, [hint, direct], T0 + S),
                 cluster_status("nova", WARN, [direct], T0 + 2 * S),  # unchanged
                 cluster_status("keystone", CRIT, [], T0 + 3 * S),
                 cluster_status("nova", OKAY, [], T0 + 4 * S)], ctx)
    first, second, third = ctx.take_injected()
    assert (first.type, first.severity, first.timestamp, first.hostname) == (
        "heka.sandbox.metric", 6, T0 + S, "ctl-1")
    assert first.get_field("name") == "annotations"
    assert first.find_field("value_fields").values == ["title", "tags", "text"]
    assert first.find_field("tag_fields").values == ["cluster"]
    assert (first.get_field("cluster"), first.get_field("tags"),
            first.get_field("source")) == ("nova", "nova", "influxdb_annotation")
    assert first.get_field("title") == "General status is WARN"
    assert first.get_field("text") == (
        "log_messages high (WARN, rule='last(log_messages[level=\"error\",service=\"nova\"])>1'"
        ", current=2.00, host=node-2)<br />Other related alarms:<br />"
        "mysql_check high (WARN, rule='last(mysql_check)>1', current=2.00)")
    assert second.get_field("title") == "General status is CRITICAL"
    assert (third.get_field("title"), third.get_field("text")) == (
        "General status WARN -> OKAY", "")
    ann.shutdown(ctx)
    p2 = Pipeline(load_config(conf, strict=True))
    ((ann2, ctx2, _q),) = p2.filters
    ann2.init(ctx2)
    ann2.process([cluster_status("keystone", CRIT), cluster_status("nova", OKAY)], ctx2)
    assert ctx2.take_injected() == []  # remembered across the restart


def test_nagios_passive_checks():
    enc = make_plugin(NagiosEncoder, service_template="%{node_role}.%{source}",
                      nagios_host="node-1")
    m = Message(type="heka.sandbox.afd_node_metric", hostname="ctl", payload=json.dumps(
        {"alarms": [{**alarm("cpu_idle"), "severity": "CRITICAL", "value": 3.14159,
                     "message": "CPU / 100% busy"}]}),
        fields=[Field("value", [3.0], DOUBLE), Field("node_role", ["controller"], STRING),
                Field("source", ["cpu"], STRING)])
    body = enc.encode(m).decode()
    assert body == (
        "cmd_typ=30&cmd_mod=2&host=node-1&service=controller.cpu&plugin_state=2"
        "&plugin_output=controller.cpu+CRITICAL%5CnCPU+%2F+100%25+busy+%28CRITICAL%2C+rule"
        "%3D%27last%28cpu_idle%29%3E1%27%2C+current%3D3.14%29&performance_data=")
    fields = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    assert fields["plugin_output"].split("\\n") == [
        "controller.cpu CRITICAL", "CPU / 100% busy (CRITICAL, rule='last(cpu_idle)>1', "
        "current=3.14)"]
    okay = Message(payload='{"alarms":[]}', fields=[
        Field("value", [0.0], DOUBLE), Field("cluster_name", ["nova"], STRING)])
    gse = make_plugin(NagiosEncoder, service_template="global-%{cluster_name}")
    assert gse.encode(okay) == (b"cmd_typ=30&cmd_mod=2&service=global-nova&plugin_state=0"
                                b"&plugin_output=global-nova+OKAY%5Cnno+details"
                                b"&performance_data=")
    unknown = Message(payload='{"alarms":{}}',  # cjson's empty table
                      fields=[Field("value", [2.0], DOUBLE)])
    assert b"plugin_state=3" in gse.encode(unknown)
    assert b"service=global-%25%7Bcluster_name%7D" in gse.encode(unknown)  # left as is
    with pytest.raises(ValueError, match="no alarms"):
        gse.encode(Message(payload="not json", fields=[Field("value", [1.0], DOUBLE)]))


def test_nagios_output_is_cut_at_a_whole_line():
    lines = "\\n".join(["head", "a" * 10, "b" * 10, "c" * 10])
    assert truncate(lines, 100, "\\n") == lines
    assert truncate(lines, 29, "\\n") == "head\\n" + "a" * 10 + "\\n" + "b" * 10
    assert truncate(lines, 20, "\\n") == "head\\n" + "a" * 10
    assert truncate("x" * 50, 20, "\\n") == "x" * 20  # no line fits: cut at the limit
    assert url_encode("a b/é~-_.") == "a+b%2F%C3%A9~-_."


async def test_lmas_accumulator_writes_its_line_protocol(tmp_path):
    assert encode_point(T0 + 123_456_789, "cpu idle", 5, {"b": "x y", "a": "1,2", "e": ""},
                        "ms") == "cpu\\ idle,a=1\\,2,b=x\\ y value=5.000000 1700000000123"
    assert encode_point(T0, "annotations", {"title": 'a "b"', "n": 2, "ok": True}, {},
                        "s") == 'annotations n=2.000000,ok="true",title="a \\"b\\"" 1700000000'
    acc = make_plugin(InfluxdbAccumulatorFilter, tag_fields="deployment_id",
                      time_precision="ms", flush_count=2)
    conf = tmp_path / "hekad.toml"
    conf.write_text('[hekad]\nhostname = "ctl-1"\n[acc]\ntype = "InfluxdbAccumulatorFilter"\n')
    ((_, ctx, _q),) = Pipeline(load_config(conf, strict=True)).filters
    single = Message(type="heka.sandbox.gse_cluster_metric", timestamp=T0, fields=[
        Field("name", ["cluster_status"], STRING), Field("value", [3.0], DOUBLE),
        Field("cluster_name", ["nova"], STRING), Field("tag_fields", ["cluster_name"], STRING),
        Field("deployment_id", ["42"], STRING)])
    bulk = Message(type="heka.sandbox.bulk_metric", timestamp=T0, payload=json.dumps([
        {"name": "log_messages", "value": 0.5, "tags": {"level": "error"}},
        {"name": "http", "values": {"count": 3}, "tags": {}}]),
        fields=[Field("deployment_id", ["42"], STRING)])
    acc.process([single], ctx)
    assert ctx.take_injected() == []  # waits for the tick (or more than flush_count)
    acc.timer_event(T0, ctx)
    (out,) = ctx.take_injected()
    assert (out.type, out.logger, out.get_field("payload_type"),
            out.get_field("payload_name")) == ("heka.sandbox-output", "p", "txt", "influxdb")
    assert out.payload == "cluster_status,cluster_name=nova,deployment_id=42 value=3.000000 " \
                          "1700000000000\n"
    acc.process([bulk, single], ctx)  # three lines: more than flush_count
    (out,) = ctx.take_injected()
    assert out.payload.splitlines() == [
        "log_messages,deployment_id=42,level=error value=0.500000 1700000000000",
        "http,deployment_id=42 count=3.000000 1700000000000",
        "cluster_status,cluster_name=nova,deployment_id=42 value=3.000000 1700000000000"]
    acc.process([Message(type="metric", fields=[Field("value", [1.0], DOUBLE)])], ctx)
    assert ctx.stats.errors == 1  # no Fields[name]
