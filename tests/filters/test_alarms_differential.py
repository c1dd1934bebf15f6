"""The native alarm plugins against Lua scripts written to the same contract
(tests/data/alarms/lua/: an AFD filter, a GSE filter, the annotation filter and the
Nagios encoder, named as LMA's scripts are), run by SandboxFilter/SandboxEncoder with
`native = false`, on the same input: every message and every byte must agree.

The definitions are generated here as the Lua modules LMA's Puppet wrote
(`lma_alarms_*.lua`, `gse_*_topology.lua`, `gse_policies.lua`, with numbers as
strings as its templates wrote them); the Lua scripts `require` them and the native
plugins read the same files without Lua. Both sides get the same metric messages and
the same timer ticks, driven step by step through the plugins' own contexts."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.message import DOUBLE, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.sandbox.sandbox_encoder import SandboxEncoder
from hekapy.collector.sandbox.sandbox_filter import SandboxFilter
from hekapy.filters.afd import AfdFilter
from hekapy.filters.gse import GseFilter
from hekapy.filters.influxdb_annotation import InfluxdbAnnotationFilter
from hekapy.outputs.encoders.nagios import NagiosEncoder
from tests.helpers.paths import TEST_DATA

LUA = TEST_DATA / "alarms" / "lua"
S = 1_000_000_000
T0 = 1_700_000_000 * S  # a multiple of 5 s

# --- LMA's generated Lua modules --------------------------------------------------------------


def lua(value: Any, indent: str = "") -> str:
    """A Lua constructor in the style of LMA's templates (numbers as strings where they
    wrote strings is up to the caller)."""
    if isinstance(value, dict):
        inner = indent + "  "
        items = "".join(f"{inner}['{k}'] = {lua(v, inner)},\n" for k, v in value.items())
        return "{\n" + items + indent + "}"
    if isinstance(value, list):
        inner = indent + "  "
        return "{\n" + "".join(f"{inner}{lua(v, inner)},\n" for v in value) + indent + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def alarms_module(alarms: list[dict]) -> str:
    """lma_alarms.lua.erb's shape: thresholds, windows and periods as strings."""
    out = []
    for a in alarms:
        rules = []
        for r in a["trigger"]["rules"]:
            rule = {"metric": r["metric"], "fields": r.get("fields", {}),
                    "relational_operator": r["relational_operator"],
                    "threshold": str(r["threshold"]), "window": str(r["window"]),
                    "periods": str(r.get("periods", 0)), "function": r["function"],
                    "group_by": r.get("group_by", [])}
            if "value" in r:
                rule["value"] = r["value"]
            rules.append(rule)
        alarm = {"name": a["name"], "description": a["description"], "severity": a["severity"]}
        if "no_data_policy" in a:
            alarm["no_data_policy"] = a["no_data_policy"]
        alarm["trigger"] = {"logical_operator": a["trigger"].get("logical_operator", "or"),
                            "rules": rules}
        out.append(alarm)
    return ("-- generated\nlocal M = {}\nsetfenv(1, M) -- as LMA's\n\nlocal alarms = "
            + lua(out) + "\n\nreturn alarms\n")


def topology_module(clusters: dict[str, dict]) -> str:
    body = {name: {"members": c["members"], "hints": c.get("hints", []),
                   "group_by": c.get("group_by", ""), "policy": c["policy"]}
            for name, c in sorted(clusters.items())}
    return "local M = {}\nsetfenv(1, M)\n\nclusters = " + lua(body) + "\n\nreturn M\n"


def policies_module(policies: dict[str, list]) -> str:
    lines = ["local gse_policy = require 'gse_policy'", "", "local M = {}", "setfenv(1, M)",
             "", "local policies = {"]
    for name, steps in policies.items():
        lines.append(f"  ['{name}'] = {{")
        for step in steps:
            lines.append(f"    gse_policy.new({lua(step, '    ')}),")
        lines.append("  },")
    lines += ["}", "", "function find(policy)", "  return policies[policy]", "end", "",
              "return M", ""]
    return "\n".join(lines)


# --- the definitions under test ----------------------------------------------------------------

def rule(metric: str, function: str, op: str, threshold: float, window: int = 20, **extra
         ) -> dict:
    return {"metric": metric, "function": function, "relational_operator": op,
            "threshold": threshold, "window": window, **extra}


def alarm(name: str, severity: str, rules: list[dict], **extra) -> dict:
    return {"name": name, "description": f"{name} happened", "severity": severity,
            "trigger": {"rules": rules, **extra.pop("trigger", {})}, **extra}


AFDS: dict[str, tuple[str, str, str, list[dict]]] = {
    # section name: (afd_type, cluster, member, alarms)
    "afd_cpu": ("node", "controller", "cpu", [
        alarm("cpu-critical", "critical", [rule("cpu_idle", "avg", "<=", 5),
                                           rule("cpu_wait", "avg", ">=", 35)]),
        alarm("cpu-warning", "warning", [rule("cpu_idle", "avg", "<=", 15),
                                         rule("cpu_wait", "avg", ">=", 25)]),
    ]),
    "afd_fs": ("node", "controller", "fs", [
        alarm("root-fs", "critical", [rule("fs_space_percent_free", "min", "<", 10,
                                           fields={"fs": "/"})]),
        alarm("other-fs", "warning", [rule("fs_space_percent_free", "min", "<", 20,
                                           fields={"fs": "!= / && !~ ^/boot"},
                                           group_by=["fs"])], no_data_policy="okay"),
    ]),
    "afd_logs": ("service", "nova-logs", "error", [
        alarm("nova-logs-error", "warning",
              [rule("log_messages", "max", ">", 0.1, window=30,
                    fields={"service": "nova", "level": "error"})], no_data_policy="okay"),
    ]),
    "afd_api": ("service", "nova-api", "checks", [
        alarm("http-5xx", "critical", [rule("haproxy_backend_response_5xx", "diff", ">", 0,
                                            window=20, periods=2,
                                            fields={"backend": "== nova-api || == nova-meta"})]),
        alarm("slow-and-busy", "warning", [rule("response_time", "last", ">", 0.5,
                                                value="upper_90"),
                                           rule("requests", "sum", ">=", 10)],
              trigger={"logical_operator": "and"}),
        alarm("jitter", "warning", [rule("response_time", "sd", ">", 0.2, value="upper_90")],
              no_data_policy="skip"),
        alarm("spread", "unknown", [rule("requests", "variance", ">", 100)]),
    ]),
}

POLICIES = {
    "highest_severity": [
        {"status": s, "trigger": {"logical_operator": "or", "rules": [
            {"function": "count", "arguments": [s], "relational_operator": ">",
             "threshold": 0}]}} for s in ("down", "critical", "warning", "okay")
    ] + [{"status": "unknown"}],
    "majority_of_members": [
        {"status": "down", "trigger": {"logical_operator": "or", "rules": [
            {"function": "percent", "arguments": ["down"], "relational_operator": ">",
             "threshold": 50}]}},
        {"status": "critical", "trigger": {"logical_operator": "and", "rules": [
            {"function": "percent", "arguments": ["down", "critical"],
             "relational_operator": ">", "threshold": 20},
            {"function": "percent", "arguments": ["okay"], "relational_operator": "<",
             "threshold": 50}]}},
        {"status": "warning", "trigger": {"logical_operator": "or", "rules": [
            {"function": "percent", "arguments": ["okay"], "relational_operator": "<",
             "threshold": 50}]}},
        {"status": "okay"},
    ],
}

SERVICE_CLUSTERS = {
    "nova-logs": {"policy": "highest_severity", "group_by": "hostname", "members": ["error"]},
    "nova-api": {"policy": "highest_severity", "group_by": "member",
                 "members": ["backends", "checks"]},
    "rabbitmq": {"policy": "majority_of_members", "group_by": "hostname", "members": ["check"]},
}
GLOBAL_CLUSTERS = {
    "nova": {"policy": "highest_severity", "group_by": "member",
             "members": ["nova-logs", "nova-api"], "hints": ["messaging"]},
    "messaging": {"policy": "highest_severity", "group_by": "member", "members": ["rabbitmq"]},
}


def write_modules(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (_kind, _cluster, _member, alarms) in AFDS.items():
        (directory / f"lma_alarms_{name}.lua").write_text(alarms_module(alarms))
    (directory / "gse_policies.lua").write_text(policies_module(POLICIES))
    (directory / "gse_service_topology.lua").write_text(topology_module(SERVICE_CLUSTERS))
    (directory / "gse_global_topology.lua").write_text(topology_module(GLOBAL_CLUSTERS))
    return f"{LUA / 'modules'};{directory}"


VIP_MATCHER = ("(Fields[name] == 'pacemaker_local_resource_active' && "
               "Fields[resource] == 'vip__management')")


def config_text(modules: str, base_dir: Path, native: bool) -> str:
    lua_only = "" if native else "native = false\n"
    sections = [f'[hekad]\nbase_dir = "{base_dir}"\nhostname = "aggregator-1"\n'
                'deployment_tags = { deployment_id = "42" }\n']
    for name, (kind, cluster, member, _alarms) in AFDS.items():
        sections.append(f"""
[{name}]
type = "SandboxFilter"
filename = "{LUA / 'filters' / 'afd.lua'}"
module_directory = "{modules}"
message_matcher = "Type == 'metric'"
ticker_interval = 10
{lua_only}  [{name}.config]
  hostname = "node-1"
  afd_type = "{kind}"
  afd_cluster_name = "{cluster}"
  afd_logical_name = "{member}"
  afd_file = "lma_alarms_{name}"
  activate_alerting = {"false" if name == "afd_fs" else "true"}
""")
    for level, flag, types, member, cluster_field, out in (
            ("service", "!=", "afd_service_metric", "source", "service",
             ("gse_service_cluster_metric", "cluster_service_status")),
            ("global", "==", "gse_service_cluster_metric", "cluster_name", None,
             ("gse_cluster_metric", "cluster_status"))):
        cluster_key = f'  cluster_field = "{cluster_field}"\n' if cluster_field else ""
        sections.append(f"""
[gse_{level}_filter]
type = "SandboxFilter"
filename = "{LUA / 'filters' / 'gse_cluster_filter.lua'}"
module_directory = "{modules}"
message_matcher = "{VIP_MATCHER} || (Fields[aggregator] {flag} NIL && Type =~ /{types}$/)"
ticker_interval = 1
{lua_only}  [gse_{level}_filter.config]
  output_message_type = "{out[0]}"
  output_metric_name = "{out[1]}"
  member_field = "{member}"
{cluster_key}  source = "gse_{level}_filter"
  topology_file = "gse_{level}_topology"
  policies_file = "gse_policies"
  interval = 10
  max_inject = 2
  warm_up_period = 5
  activate_alerting = {"false" if level == "service" else "true"}
""")
    sections.append(f"""
[influxdb_annotation_filter]
type = "SandboxFilter"
filename = "{LUA / 'filters' / 'influxdb_annotation.lua'}"
module_directory = "{modules}"
message_matcher = "Type == 'heka.sandbox.gse_cluster_metric'"
{lua_only}
[nagios_encoder]
type = "SandboxEncoder"
filename = "{LUA / 'encoders' / 'status_nagios.lua'}"
module_directory = "{modules}"
{lua_only}  [nagios_encoder.config]
  nagios_host = "node-1"
  service_template = "%{{node_role}}%{{cluster_name}}.%{{source}}"
  truncate_size = 400

[sink]
type = "CollectOutput"
message_matcher = "Type == 'never'"
encoder = "nagios_encoder"
""")
    return "".join(sections)


class Side:
    """One configuration's plugins, driven without the pipeline's tasks."""

    def __init__(self, tmp: Path, modules: str, native: bool) -> None:
        path = tmp / f"{'native' if native else 'lua'}.toml"
        path.write_text(config_text(modules, tmp / ("native" if native else "lua"), native))
        self.config = load_config(path, strict=True)
        self.pipeline = Pipeline(self.config)
        self.filters = {ctx.name: (plugin, ctx) for plugin, ctx, _q in self.pipeline.filters}
        for plugin, ctx in self.filters.values():
            plugin.init(ctx)
        self.encoder = self.config.plugins["nagios_encoder"].build()

    def process(self, name: str, messages: list[Message]) -> None:
        plugin, ctx = self.filters[name]
        plugin.process(messages, ctx)
        assert ctx.stats.errors == 0, f"{name}: process errors"

    def tick(self, name: str, ns: int) -> list[Message]:
        plugin, ctx = self.filters[name]
        plugin.timer_event(ns, ctx)
        assert ctx.stats.errors == 0, f"{name}: timer errors"
        return ctx.take_injected()


def metric(name: str, value: Any, ts: int, **fields: Any) -> Message:
    m = Message(type="metric", logger="collectd", hostname="node-1", timestamp=ts, severity=6,
                fields=[Field("name", [name], STRING)])
    if isinstance(value, dict):
        m.fields.append(Field("value_fields", list(value), STRING))
        m.fields += [Field(k, [float(v)], DOUBLE) for k, v in value.items()]
    else:
        m.fields.append(Field("value", [float(value)], DOUBLE))
    m.fields += [Field(k, [v], STRING) for k, v in fields.items()]
    m.fields.append(Field("hostname", ["node-1"], STRING))
    return m


def view(m: Message) -> dict[str, Any]:
    """A message as both sides must agree on it (Lua leaves field order to its hash
    tables, and a Lua filter's messages are stamped with the clock)."""
    fields: dict[str, list] = {}
    for f in m.fields:
        fields.setdefault(f.name, []).append((f.value_type, f.values))
    payload: Any = m.payload
    if payload.startswith("{"):
        payload = json.loads(payload)
    return {"type": m.type, "logger": m.logger, "hostname": m.hostname,
            "severity": m.severity, "payload": payload,
            "fields": {k: sorted(v, key=repr) for k, v in sorted(fields.items())}}


def same(native: list[Message], lua_side: list[Message], what: str) -> None:
    assert [view(m) for m in native] == [view(m) for m in lua_side], what


def cpu_input(step: int, ts: int) -> list[Message]:
    # idle falls, then the node goes silent (missing data), then recovers
    if 24 <= step < 34:
        return []
    # thresholds hit exactly: avg(idle) == 15, then == 5; avg(wait) == 35 at the end
    idle = 60 if step < 8 else 15 if step < 16 else 5 if step < 24 else 70
    wait = 2 if step < 30 else 35
    return [metric("cpu_idle", idle, ts, cpu_number="0"),
            metric("cpu_wait", wait, ts, cpu_number="0")]


def fs_input(step: int, ts: int) -> list[Message]:
    out = [metric("fs_space_percent_free", 30 - step * 0.5, ts, fs="/")]
    if step < 20:
        out.append(metric("fs_space_percent_free", 25 - step, ts, fs="/srv"))
    out.append(metric("fs_space_percent_free", 5, ts, fs="/boot"))
    out.append(metric("fs_space_percent_free", 50 - step * 2, ts, fs="/var/log"))
    return out


def logs_input(step: int, ts: int) -> list[Message]:
    rate = 0.0 if step < 6 else 0.5 if step < 15 else 0.0
    out = [metric("log_messages", rate, ts, service="nova", level="error"),
           metric("log_messages", 3.0, ts, service="nova", level="info"),
           metric("log_messages", 2.0, ts, service="neutron", level="error")]
    return out if step % 3 else out[:1]


def api_input(step: int, ts: int) -> list[Message]:
    out = []
    if step % 2 == 0:
        out.append(metric("haproxy_backend_response_5xx", 100 + (step // 10) * 3 + (step > 20),
                          ts, backend="nova-api"))
        out.append(metric("haproxy_backend_response_5xx", 7, ts, backend="glance-api"))
    if 5 < step < 30:
        out.append(metric("response_time", {"upper_90": 0.3 + (step % 4) * 0.2, "count": 3},
                          ts))
        out.append(metric("requests", (step % 5) * 4, ts))
    return out


INPUTS = {"afd_cpu": cpu_input, "afd_fs": fs_input, "afd_logs": logs_input,
          "afd_api": api_input}


def test_lma_script_sections_become_native_unless_told(tmp_path):
    modules = write_modules(tmp_path / "generated")
    native, lua_side = Side(tmp_path, modules, True), Side(tmp_path, modules, False)
    assert {type(p) for p, _ in native.filters.values()} == {
        AfdFilter, GseFilter, InfluxdbAnnotationFilter}
    assert {type(p) for p, _ in lua_side.filters.values()} == {SandboxFilter}
    assert type(native.encoder) is NagiosEncoder
    assert type(lua_side.encoder) is SandboxEncoder


async def test_afd_statuses_agree(tmp_path):
    modules = write_modules(tmp_path / "generated")
    native, lua_side = Side(tmp_path, modules, True), Side(tmp_path, modules, False)
    seen: dict[str, set] = {name: set() for name in AFDS}
    for step in range(44):
        ts = T0 + step * 5 * S + 1_234_567
        for name, make in INPUTS.items():
            batch = make(step, ts)
            if batch:
                native.process(name, batch)
                lua_side.process(name, [m.copy() for m in batch])
        if step % 2 == 1:  # a tick every 10 s, on the metrics' clock
            for name in AFDS:
                got = native.tick(name, ts + 2 * S)
                same(got, lua_side.tick(name, ts + 2 * S), f"{name} at step {step}")
                for m in got:
                    seen[name].add(m.get_field("value"))
                    encoded = native.encoder.encode(m)
                    assert encoded == lua_side.encoder.encode(m), f"nagios of {name}"
    # The scenario went through the statuses each AFD can take.
    assert seen["afd_cpu"] >= {0.0, 1.0, 2.0, 3.0}
    assert seen["afd_fs"] >= {1.0, 3.0}
    assert seen["afd_logs"] == {0.0, 1.0}
    assert seen["afd_api"] >= {0.0, 1.0, 3.0}


def status(kind: str, cluster: str, member: str, value: int, host: str,
           alarms: Iterable[dict] = ()) -> Message:
    cluster_field = "service" if kind == "service" else "node_role"
    alarms = list(alarms)
    payload = json.dumps({"alarms": alarms}) if alarms else '{"alarms":[]}'
    return Message(type=f"heka.sandbox.afd_{kind}_metric", logger="afd", hostname=host,
                   payload=payload, fields=[
                       Field("name", [f"{kind}_status"], STRING),
                       Field("value", [float(value)], DOUBLE),
                       Field("source", [member], STRING),
                       Field(cluster_field, [cluster], STRING),
                       Field("hostname", [host], STRING),
                       Field("aggregator", ["present"], STRING)])


def an_alarm(metric_name: str, value: float, severity: str) -> dict:
    return {"severity": severity, "function": "max", "metric": metric_name,
            "fields": {"service": "nova"}, "tags": {}, "operator": ">", "value": value,
            "threshold": 0.1, "window": 30, "periods": 1, "message": "too many errors"}


def pacemaker(active: int, host: str = "aggregator-1") -> Message:
    return Message(type="metric", hostname=host, fields=[
        Field("name", ["pacemaker_local_resource_active"], STRING),
        Field("resource", ["vip__management"], STRING), Field("hostname", [host], STRING),
        Field("value", [float(active)], DOUBLE)])


def gse_input(second: int) -> list[Message]:
    out = []
    if second == 0:
        out.append(pacemaker(1, "aggregator-2"))  # another node's VIP: not this one
    if second == 2:
        out.append(pacemaker(1))
    if second == 60:
        out.append(pacemaker(0))
    if second == 70:
        out.append(pacemaker(1))
    bad = 12 <= second < 40
    for host in ("node-1", "node-2", "node-3"):
        nova_logs = 1 if bad and host == "node-2" else 0
        alarms = [an_alarm("log_messages", 0.7, "WARN")] if nova_logs else []
        out.append(status("service", "nova-logs", "error", nova_logs, host, alarms))
        rabbit = 3 if second >= 25 and host != "node-3" else 0
        out.append(status("service", "rabbitmq", "check", rabbit, host,
                          [an_alarm("rabbitmq_check", 0, "CRITICAL")] if rabbit else []))
    if second % 3 == 0:
        api = 4 if 30 <= second < 50 else 0
        out.append(status("service", "nova-api", "backends", api, "node-1",
                          [an_alarm("haproxy_backend_servers", 0, "DOWN")] if api else []))
        out.append(status("service", "nova-api", "checks", 0, "node-2"))
    out.append(status("service", "unknown-cluster", "x", 1, "node-1"))
    return out


async def test_gse_annotation_and_nagios_agree(tmp_path):
    modules = write_modules(tmp_path / "generated")
    native, lua_side = Side(tmp_path, modules, True), Side(tmp_path, modules, False)
    statuses: set[tuple[str, float]] = set()
    annotations = []
    for second in range(90):
        ns = T0 + second * S + 500_000_000
        batch = gse_input(second)
        native.process("gse_service_filter", batch)
        lua_side.process("gse_service_filter", [m.copy() for m in batch])
        vip = [m for m in batch if m.get_field("resource") == "vip__management"]
        native.process("gse_global_filter", vip)
        lua_side.process("gse_global_filter", [m.copy() for m in vip])
        for level in ("gse_service_filter", "gse_global_filter"):
            got = native.tick(level, ns)
            same(got, lua_side.tick(level, ns), f"{level} at second {second}")
            assert len(got) <= 2  # max_inject
            for m in got:
                statuses.add((m.get_field("cluster_name"), m.get_field("value")))
                assert native.encoder.encode(m) == lua_side.encoder.encode(m), "nagios"
            if level == "gse_service_filter" and got:
                native.process("gse_global_filter", got)
                lua_side.process("gse_global_filter", [m.copy() for m in got])
            if level == "gse_global_filter" and got:
                native.process("influxdb_annotation_filter", got)
                lua_side.process("influxdb_annotation_filter", [m.copy() for m in got])
                a = native.filters["influxdb_annotation_filter"][1].take_injected()
                same(a, lua_side.filters["influxdb_annotation_filter"][1].take_injected(),
                     f"annotations at second {second}")
                annotations += a
    assert {("nova-logs", 1.0), ("nova-logs", 0.0), ("rabbitmq", 3.0), ("nova-api", 4.0),
            ("nova", 4.0), ("nova", 1.0), ("messaging", 3.0)} <= statuses
    # nova, not okay, reported messaging's alarms as hints
    assert any("Other related alarms:" in a.get_field("text") for a in annotations)
    titles = [a.get_field("title") for a in annotations]
    assert "General status is WARN" in titles and "General status WARN -> DOWN" in titles
    assert all(not math.isnan(v) for _c, v in statuses)
