"""Alarm definitions: conf/alarms.yaml as shipped, the mistakes an operator can make
(each reported with the file, the entry and the key, all at once), which AFDs a node of
given roles runs (LMA's get_afd_filters), the Lua modules LMA's Puppet generated, and
field expressions with Lua patterns."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from hekapy.collector.engine.alarm_status import CRIT, UNKW, WARN
from hekapy.collector.engine.config import load_config
from hekapy.filters.afd import AfdFilter
from hekapy.filters.alarming.definitions import (
    DefinitionError,
    load_alarms_file,
    shipped_alarms_file,
)
from hekapy.filters.alarming.lua_modules import (
    LuaDataError,
    read_alarms,
    read_policies,
    read_topology,
)
from hekapy.filters.alarming.matching import ExpressionError, ValueMatcher, lua_pattern
from hekapy.filters.gse import GseFilter
from tests.helpers.paths import CONF


def write(tmp_path: Path, text: str, name: str = "alarms.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_the_shipped_file_is_what_the_filters_read_by_default():
    assert shipped_alarms_file().resolve() == (CONF / "alarms.yaml").resolve()
    defs = load_alarms_file()
    assert set(defs.gse_levels) == {"service", "node", "global"}
    # LMA's defaults for the five kinds of alarm this file is about
    for name in ("cpu-critical-controller", "root-fs-critical", "nova-logs-error",
                 "nova-api-backends-all-down", "nova-api-http-errors"):
        assert name in defs.alarms
    cpu = defs.alarms["cpu-critical-controller"]
    assert cpu.severity == CRIT and cpu.logical_operator == "or"
    assert [(r.metric, r.function, r.operator, r.threshold, r.window, r.periods)
            for r in cpu.rules] == [("cpu_idle", "avg", "<=", 5, 120, 1),
                                    ("cpu_wait", "avg", ">=", 35, 120, 1)]
    logs = defs.alarms["nova-logs-error"]
    assert logs.no_data == 0 and dict(logs.rules[0].fields) == {"service": "nova",
                                                               "level": "error"}
    other = defs.alarms["other-fs-warning"]
    assert other.rules[0].group_by == ("fs",)
    # every service cluster an AFD reports to has a GSE cluster, and every member one
    service_clusters = defs.gse_levels["service"].clusters
    for (kind, name), cluster in defs.afd_clusters.items():
        if kind == "service":
            assert name in service_clusters, name
            assert {m.name for m in cluster.members} == set(service_clusters[name].members)
    for name, c in defs.gse_levels["global"].clusters.items():
        assert set(c.members) <= set(service_clusters), name


def test_afds_follow_the_node_roles():
    defs = load_alarms_file()
    controller = {a.filter_name for a in defs.afds_for(["controller"])}
    assert "afd_node_controller_cpu_filter" in controller
    assert "afd_service_nova-api_backends_filter" in controller
    assert "afd_service_nova-logs-compute_error_filter" not in controller
    compute = {a.filter_name for a in defs.afds_for(["compute"])}
    assert compute >= {"afd_node_compute_nova-fs_filter",
                       "afd_service_nova-logs-compute_error_filter"}
    assert not any("controller" in n or "nova-api" in n for n in compute)
    # no role: LMA's "default" profile
    assert {a.filter_name for a in defs.afds_for([])} == {
        "afd_node_default_cpu_filter", "afd_node_default_root-fs_filter",
        "afd_node_default_other-fs_filter"}
    both = {a.filter_name for a in defs.afds_for(["controller", "compute"])}
    assert both == controller | compute


def test_collected_on_and_alerting(tmp_path):
    defs = load_alarms_file(write(tmp_path, """
        alarms:
          - name: check
            severity: down
            enabled: 'true'
            trigger:
              rules:
                - {metric: openstack_check_api, function: last, relational_operator: '==',
                   threshold: 0}
          - name: spare
            severity: warning
            enabled: false
            trigger: {rules: [{metric: x, function: last, relational_operator: '>',
                               threshold: 1}]}
        service_cluster_alarms:
          nova-api-check:
            alerting: disabled
            members:
              vip: {alarms: [check, spare]}
        metrics:
          openstack_check_api: {collected_on: aggregator}
    """))
    assert defs.afds_for(["controller"]) == []
    (afd,) = defs.afds_for(["aggregator"])
    assert afd.filter_name == "afd_service_nova-api-check_vip_filter"
    assert [a.name for a in afd.alarms] == ["check"]  # `spare` is not enabled
    assert not afd.activate_alerting


def test_mistakes_are_all_reported_with_where_they_are(tmp_path):
    path = write(tmp_path, """
        alarms:
          - name: cpu
            severity: critcal
            trigger:
              rules:
                - {metric: cpu_idle, function: mean, relational_operator: '<=', threshold: high,
                   window: 60}
          - name: fs
            severity: warning
            no_data_policy: ignore
            trigger:
              logical_operator: xor
              rules:
                - {metric: fs, function: min, relational_operator: '=>', threshold: 5,
                   fields: {fs: '== /a && && =='}, windw: 3}
          - name: cpu
            severity: warning
            trigger: {rules: []}
        node_cluster_alarms:
          controller:
            apply_to_node: controller
            members:
              cpu: {alarms: [cpu, nope]}
        gse_policies:
          p: [{status: fine}]
        gse_cluster_service:
          member_field: source
          output_message_type: t
          output_metric_name: n
          interval: 0
          clusters:
            a: {policy: missing, members: [x]}
            b: {policy: p, members: [x], hints: [c], group_by: host}
    """)
    with pytest.raises(DefinitionError) as e:
        load_alarms_file(path)
    text = str(e.value)
    for expected in (
        "alarms[0] (cpu).severity: 'critcal' is not one of okay, warning, unknown, "
        "critical, down",
        "alarms[0] (cpu).trigger.rules[0].function: 'mean' is not one of last, min, max",
        "alarms[0] (cpu).trigger.rules[0].threshold: expected a number, got 'high'",
        "alarms[1] (fs).no_data_policy: 'ignore' is not one of skip, okay",
        "alarms[1] (fs).trigger.logical_operator: 'xor' is not one of or, and",
        "alarms[1] (fs).trigger.rules[0].relational_operator: '=>' is not one of",
        "alarms[1] (fs).trigger.rules[0].fields.fs: invalid expression",
        "alarms[1] (fs).trigger.rules[0]: unknown key 'windw'",
        "alarms[2] (cpu).trigger.rules: an alarm needs at least one rule",
        "node_cluster_alarms.controller.members.cpu.alarms[1]: no alarm named 'nope'",
        "gse_policies.p[0].status: 'fine' is not one of",
        "gse_cluster_service.input_message_types: expected a list, got None",
        "gse_cluster_service.interval: must be more than 0",
        "gse_cluster_service.clusters.a.policy: no policy named 'missing'",
        "gse_cluster_service.clusters.b.group_by: 'host' is not one of hostname, member",
        "gse_cluster_service.clusters.b.hints: no cluster named 'c'",
    ):
        assert f"{path}: {expected}" in text, expected
    # one line per mistake, each naming the file
    assert all(line.startswith(f"{path}: ") for line in text.splitlines())


def test_a_second_alarm_of_one_name_and_broken_yaml(tmp_path):
    rule = "{metric: m, function: last, relational_operator: '>', threshold: 1}"
    path = write(tmp_path, f"""
        alarms:
          - {{name: a, severity: warning, trigger: {{rules: [{rule}]}}}}
          - {{name: a, severity: warning, trigger: {{rules: [{rule}]}}}}
    """)
    with pytest.raises(DefinitionError, match=r"alarms\[1\]: a second alarm named 'a'"):
        load_alarms_file(path)
    path = write(tmp_path, "alarms:\n  - name: [unclosed\n", "broken.yaml")
    with pytest.raises(DefinitionError, match=r"broken.yaml: line 3, column 1: not valid YAML"):
        load_alarms_file(path)


def test_lmas_hiera_layout_is_read_too(tmp_path):
    defs = load_alarms_file(write(tmp_path, """
        lma_collector:
          alarms:
            - name: a
              severity: warning
              enabled: 'false'
              trigger: {rules: [{metric: m, function: last, relational_operator: '>',
                                 threshold: 1, window: 0, periods: 0}]}
    """))
    a = defs.alarms["a"]
    assert not a.enabled and a.no_data == UNKW
    # window and periods left at 0: LMA's 10 s and one period
    assert (a.rules[0].window, a.rules[0].periods) == (10, 1)


def config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "hekad.toml"
    p.write_text(textwrap.dedent(f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        {textwrap.dedent(body)}
    """))
    return p


def test_config_errors_name_the_file_section_and_key(tmp_path):
    bad = write(tmp_path, """
        alarms:
          - {name: a, severity: serious, trigger: {rules: []}}
    """)
    cfg = load_config(config(tmp_path, f"""
        [afd_filter]
        type = "AfdFilter"
        alarms_file = "{bad}"
        [relative]
        type = "AfdFilter"
        alarms_file = "alarms.yaml"
        [gse]
        type = "GseFilter"
        level = "services"
        [one]
        type = "AfdFilter"
        afd_type = "node"
        afd_cluster_name = "controller"
        [lua]
        type = "AfdFilter"
        afd_type = "node"
        afd_cluster_name = "controller"
        afd_logical_name = "cpu"
        afd_file = "lma_alarms_missing"
        module_directory = "{tmp_path}"
    """))
    errors = {(e.section, e.key): e.message for e in cfg.errors}
    assert f"{bad}: alarms[0] (a).severity: 'serious' is not one of" in \
        errors[("afd_filter", "alarms_file")]
    assert "must be an absolute path" in errors[("relative", "alarms_file")]
    assert "'services' is not a GSE level" in errors[("gse", "level")]
    assert "(levels: global, node, service" in errors[("gse", "level")]
    assert "afd_logical_name missing" in errors[("one", "afd_logical_name")]
    assert "Lua module 'lma_alarms_missing' not found" in errors[("lua", "afd_file")]


def test_sections_naming_lmas_scripts_check_their_keys(tmp_path):
    cfg = load_config(config(tmp_path, """
        [afd_node_controller_cpu_filter]
        type = "SandboxFilter"
        filename = "/usr/share/lma_collector/filters/afd.lua"
        message_matcher = "Type == 'metric'"
          [afd_node_controller_cpu_filter.config]
          afd_type = "node"
          afd_cluster_name = "controller"
          afd_logical_name = "cpu"
          afd_file = "lma_alarms_cpu"
          afd_typo = 1
        [nagios_encoder]
        type = "SandboxEncoder"
        filename = "/usr/share/lma_collector/encoders/status_nagios.lua"
          [nagios_encoder.config]
          nagios_host = "node-1"
    """))
    errors = {(e.section, e.key): e.message for e in cfg.errors}
    assert "unknown key" in errors[("afd_node_controller_cpu_filter", "config.afd_typo")]
    assert "AfdFilter, the native plugin for afd.lua; native = false runs the Lua" in \
        errors[("afd_node_controller_cpu_filter", "config.afd_typo")]
    assert "is required" in errors[("nagios_encoder", "service_template")]


def test_a_gse_level_gets_lmas_matcher(tmp_path):
    cfg = load_config(config(tmp_path, """
        [gse_service_filter]
        type = "GseFilter"
        level = "service"
        [gse_global_filter]
        type = "GseFilter"
        level = "global"
        vip_resource = ""
        [gse_node_filter]
        type = "GseFilter"
        level = "node"
        message_matcher = "Type == 'x'"
    """), strict=True)
    spec = cfg.plugins["gse_service_filter"]
    assert spec.cls is GseFilter
    assert spec.cfg.message_matcher == (
        "(Fields[name] == 'pacemaker_local_resource_active' && "
        "Fields[resource] == 'vip__management') || "
        "(Fields[aggregator] != NIL && (Type =~ /afd_service_metric$/))")
    assert cfg.plugins["gse_global_filter"].cfg.message_matcher == (
        "(Fields[aggregator] == NIL && (Type =~ /gse_service_cluster_metric$/ || "
        "Type =~ /gse_node_cluster_metric$/))")
    assert cfg.plugins["gse_node_filter"].cfg.message_matcher == "Type == 'x'"
    built = spec.build()
    assert isinstance(built, GseFilter) and built.source == "gse_service_filter"
    assert built.settings.warm_up_period == 20 and built.settings.cluster_field == "service"


# --- LMA's generated Lua modules ----------------------------------------------------------

ALARMS_LUA = """\
local M = {}
setfenv(1, M) -- Remove external access to contain everything in the module

local alarms = {
  {
    ['name'] = 'other-fs-warning',
    ['description'] = 'The filesystem\\'s free space is low',
    ['severity'] = 'warning',
    ['no_data_policy'] = 'okay',
    ['trigger'] = {
      ['logical_operator'] = 'or',
      ['rules'] = {
        {
          ['metric'] = 'fs_space_percent_free',
          ['fields'] = {
            ['fs'] = '!= / && !~ ceph%-%d+$',
          },
          ['relational_operator'] = '<',
          ['threshold'] = '10',
          ['window'] = '60',
          ['periods'] = '0',
          ['function'] = 'min',
          ['group_by'] = {
              fs,
          },
        },
      },
    },
  },
}

return alarms
"""


def test_lmas_alarm_module_is_read_as_its_lua_read_it(tmp_path):
    path = tmp_path / "lma_alarms_controller_other_fs.lua"
    path.write_text(ALARMS_LUA)
    (alarm,) = read_alarms(path)
    assert alarm.name == "other-fs-warning" and alarm.severity == WARN and alarm.no_data == 0
    assert alarm.description == "The filesystem's free space is low"
    (rule,) = alarm.rules
    assert (rule.threshold, rule.window, rule.periods) == (10, 60, 1)  # strings, + 0
    assert dict(rule.fields) == {"fs": "!= / && !~ ceph%-%d+$"}
    # Puppet wrote the group_by names unquoted: Lua read nil, so no grouping
    assert rule.group_by == ()


def test_lmas_topology_and_policies_modules(tmp_path):
    (tmp_path / "gse_policies.lua").write_text(textwrap.dedent("""\
        -- Copyright
        local gse_policy = require 'gse_policy'

        local M = {}
        setfenv(1, M) -- Remove external access to contain everything in the module

        local policies = {
            ['highest_severity']={
                gse_policy.new({
                    status='down',
                    trigger={
                        logical_operator='or',
                        rules={
                            {
                                ['function']='count',
                                ['arguments']={'down'},
                                ['relational_operator']='>',
                                ['threshold']=0,
                            },
                        }
                    },
                }),
                gse_policy.new({
                    status='unknown',
                }),
            },
        }

        function find(policy)
            return policies[policy]
        end

        return M
    """))
    (tmp_path / "gse_global_topology.lua").write_text(textwrap.dedent("""\
        local M = {}
        setfenv(1, M) -- Remove external access to contain everything in the module

        clusters = {
            ['nova']={
                ['members']={'nova-api','nova-logs'},
                ['hints']={'keystone'},
                ['group_by']='member',
                ['policy']='highest_severity'
            },
            ['keystone']={
                ['members']={'keystone-logs'},
                ['hints']={},
                ['group_by']='',
                ['policy']='highest_severity'
            },
        }

        return M
    """))
    policies = read_policies(tmp_path / "gse_policies.lua")
    (down, unknown) = policies["highest_severity"]
    assert (down.status, down.logical_operator, len(down.rules)) == (4, "or", 1)
    assert (unknown.status, unknown.rules) == (UNKW, ())
    clusters = read_topology(tmp_path / "gse_global_topology.lua", policies)
    assert clusters["nova"].members == ("nova-api", "nova-logs")
    assert clusters["nova"].hints == ("keystone",)
    assert clusters["keystone"].group_by == "none"


def test_a_module_that_is_more_than_data_is_refused(tmp_path):
    path = tmp_path / "lma_alarms_x.lua"
    path.write_text("local alarms = {}\nos.execute('rm -rf /')\nreturn alarms\n")
    with pytest.raises(LuaDataError, match=r"lma_alarms_x.lua, line 2: expected a statement, "
                                           r"found 'os' \(only Lua data tables are read"):
        read_alarms(path)
    path.write_text("local alarms = {\n  os.execute('rm -rf /'),\n}\nreturn alarms\n")
    with pytest.raises(LuaDataError, match=r"line 2: call of os.execute is not data"):
        read_alarms(path)
    path.write_text("local alarms = {{['name'] = 'a', ['severity'] = 'warning', "
                    "['trigger'] = {['rules'] = {{['metric'] = 'm', ['threshold'] = '',"
                    "['window'] = '60', ['function'] = 'last', "
                    "['relational_operator'] = '>'}}}}}\nreturn alarms\n")
    with pytest.raises(DefinitionError, match=r"rules\[0\].threshold: expected a number, got "
                                              r"''"):
        read_alarms(path)


# --- field expressions ----------------------------------------------------------------------

@pytest.mark.parametrize("expression, value, expected", [
    ("nova", "nova", True),
    ("nova", "neutron", False),
    ("5", 5.0, True),  # a number field equal to the expression read as a number
    ("5", "5", True),
    ("5", "5.0", False),  # text compared as text
    ("== nova || == glance", "glance", True),
    ('== "nova api"', "nova api", True),
    ("!= /var/log && != /", "/srv", True),
    ("!= /var/log && != /", "/", False),
    ("!~ ceph%-%d+$", "/var/lib/ceph/osd/ceph-12", False),
    ("!~ ceph%-%d+$", "/var/lib/ceph/osd/ceph-x", True),
    ("=~ ^/var/lib/%a+$", "/var/lib/nova", True),
    ("=~ ^/var/lib/%a+$", "/var/lib/nova2", False),
    ("> 10 && < 20", "15", True),  # numeric: the field read as a number
    ("> 10 && < 20", 25.0, False),
    ("> 10 || == 2", 2.0, True),
    ("> 10", "not a number", False),
    ("<= 1.5", 1.5, True),
])
def test_field_expressions(expression, value, expected):
    assert ValueMatcher(expression).matches(value) is expected


@pytest.mark.parametrize("expression", ["", "   ", "== a && && == b", "=~ [a", "=~ %bxy"])
def test_field_expressions_that_are_not(expression):
    with pytest.raises(ExpressionError):
        ValueMatcher(expression)


@pytest.mark.parametrize("pattern, text, found", [
    ("^nova%-api$", "nova-api", True),
    ("^nova%-api$", "nova-api-2", False),
    ("a.-b", "axxbyyb", True),
    ("^[%w_]+$", "abc_12", True),
    ("^[%w_]+$", "abc-12", False),
    ("^[^%d]+$", "abc", True),
    ("%s%S", "a b", True),
    ("^(%a+)=%1$", "ab=ab", True),
    ("^(%a+)=%1$", "ab=cd", False),
    ("x?y+z*$", "yyy", True),
    ("%.", "a.b", True),
    ("%.", "ab", False),
    ("[%]]", "]", True),
    ("$^", "a$^b", True),  # anchors only at the ends
])
def test_lua_patterns(pattern, text, found):
    assert (lua_pattern(pattern).search(text) is not None) is found


def test_an_afd_filter_runs_the_afds_of_its_roles(tmp_path):
    cfg = load_config(config(tmp_path, """
        [afd_filter]
        type = "AfdFilter"
        node_roles = "controller, compute"
    """), strict=True)
    afd = cfg.plugins["afd_filter"].build()
    assert isinstance(afd, AfdFilter)
    names = {a.afd.filter_name for a in afd.afds}
    assert "afd_node_controller_cpu_filter" in names
    assert "afd_node_compute_cpu_filter" in names
    assert set(afd.by_metric) >= {"cpu_idle", "cpu_wait", "fs_space_percent_free",
                                  "log_messages", "haproxy_backend_servers",
                                  "haproxy_backend_servers_percent",
                                  "haproxy_backend_response_5xx"}
    assert re.fullmatch(r"Type == 'metric' \|\| .*multivalue_metric'",
                        cfg.plugins["afd_filter"].cfg.message_matcher)
