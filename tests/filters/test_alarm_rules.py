"""AFD evaluation against the semantics of LMA's afd_rule.lua, afd_alarm.lua and
afd_alarms.lua (docs/alarms.md, "Rules"), with vectors of our own: the rows datapoints
are kept in, each function, missing and absent data, no_data_policy, `and`/`or`,
group_by, the wait before the first status, the order alarms are evaluated in, and
the messages AfdFilter injects (fields, payload, Logger), with its state kept across a
stop and a start."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from hekapy.collector.engine.alarm_status import (
    CRIT,
    DOWN,
    OKAY,
    UNKW,
    WARN,
    NotEncodable,
    encode_payload,
)
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.filters.alarming.definitions import AfdDef, Checker
from hekapy.filters.alarming.rows import RowBuffer
from hekapy.filters.alarming.rules import (
    MATCH,
    MISSING_DATA,
    NO_DATA,
    NO_MATCH,
    AfdState,
    AlarmState,
    RuleState,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a multiple of 5 s


def rule_def(**r):
    r = {"metric": "m", "function": "last", "relational_operator": ">", "threshold": 10,
         "window": 20, **r}
    checker = Checker("test")
    out = checker.rule(r, "rule")
    checker.done()
    return out


def alarm_def(rules, severity="critical", logical_operator="or", **extra):
    checker = Checker("test")
    out = checker.alarm({"name": "a", "description": "it is bad", "severity": severity,
                         "trigger": {"rules": rules, "logical_operator": logical_operator},
                         **extra}, "alarm")
    checker.done()
    return out


# --- rows ------------------------------------------------------------------------------------

def test_rows_move_with_the_datapoints():
    rows = RowBuffer(3, 1, 5)
    assert rows.set(T0, 0, 1.0) == 1.0
    assert rows.current_time_ns() == T0
    assert rows.set(T0 + 4 * S, 0, 2.0) == 2.0  # same row: overwritten
    assert rows.get(T0, 0) == 2.0
    rows.set(T0 + 10 * S, 0, 3.0)  # two rows on: the one between is empty
    assert math.isnan(rows.get(T0 + 5 * S, 0))
    assert rows.get(T0 + 15 * S, 0) is None  # after the newest row
    assert rows.set(T0 - 5 * S, 0, 9.0) is None  # older than the oldest row
    assert rows.compute("sum", 0) == 5.0
    rows.set(T0 + 60 * S, 0, 4.0)  # far ahead: everything else cleared
    assert rows.compute("sum", 0) == 4.0 and rows.compute("min", 0) == 4.0


def test_rows_compute_skips_empty_cells():
    rows = RowBuffer(4, 1, 5)
    for i, v in enumerate([2.0, float("nan"), 4.0, 0.0]):
        if not math.isnan(v):
            rows.set(T0 + i * 5 * S, 0, v)
    assert rows.compute("sum", 0) == 6.0
    assert rows.compute("avg", 0) == 2.0
    assert rows.compute("min", 0) == 0.0 and rows.compute("max", 0) == 4.0
    assert rows.compute("variance", 0) == pytest.approx(8 / 3)
    assert rows.compute("sd", 0) == pytest.approx(math.sqrt(8 / 3))
    empty = RowBuffer(2, 1, 5)
    assert empty.compute("sum", 0) == 0.0 and empty.compute("avg", 0) == 0.0
    assert math.isnan(empty.compute("min", 0)) and math.isnan(empty.compute("max", 0))
    low = RowBuffer(2, 1, 5, ("max",))
    low.set(T0, 0, -3.0)
    low.set(T0, 0, -5.0)  # a max column keeps the larger
    assert low.compute("max", 0) == -3.0


def test_rows_restore_only_their_own_geometry():
    rows = RowBuffer(3, 2, 5)
    rows.add(T0, 1, 2.5)
    state = json.loads(json.dumps(rows.to_state()))
    copy = RowBuffer(3, 2, 5)
    assert copy.restore(state) and copy.get(T0, 1) == 2.5 and math.isnan(copy.get(T0, 0))
    assert not RowBuffer(4, 2, 5).restore(state)


# --- rules -------------------------------------------------------------------------------------

def feed(rs: RuleState, points: list[tuple[int, float]], **fields) -> None:
    for seconds, value in points:
        rs.add_value(T0 + seconds * S, value, fields)


@pytest.mark.parametrize("function, expected", [
    ("last", 4.0), ("min", 1.0), ("max", 7.0), ("sum", 12.0), ("avg", 3.0),
    ("diff", 3.0),  # newest - oldest of the window
    ("variance", 6.0), ("sd", math.sqrt(6.0)),  # of 1, 7, 4
])
def test_rule_functions(function, expected):
    rs = RuleState(rule_def(function=function, relational_operator="==", threshold=expected,
                            window=20), 5)
    feed(rs, [(0, 1.0), (5, 7.0), (10, 0.0), (10, 3.0)] if function == "avg" else
         [(0, 1.0), (5, 7.0), (15, 4.0)])
    outcome, contexts = rs.evaluate(T0 + 17 * S)
    if function == "avg":  # avg adds: rows (1), (7), (0 + 3): 11 / 4 datapoints
        assert contexts == [] and outcome == NO_MATCH
        rs2 = RuleState(rule_def(function="avg", relational_operator="==", threshold=2.75,
                                 window=20), 5)
        feed(rs2, [(0, 1.0), (5, 7.0), (10, 0.0), (10, 3.0)])
        assert rs2.evaluate(T0 + 17 * S) == (MATCH, [(2.75, {})])
        return
    assert outcome == MATCH
    ((value, fields),) = contexts
    assert value == pytest.approx(expected) and fields == {}


@pytest.mark.parametrize("operator, threshold, matches", [
    (">", 5, True), (">", 6, False), ("gt", 5, True), (">=", 6, True), ("gte", 7, False),
    ("<", 7, True), ("lt", 6, False), ("<=", 6, True), ("lte", 5, False),
    ("==", 6, True), ("eq", 5, False), ("!=", 5, True), ("ne", 6, False),
])
def test_relational_operators(operator, threshold, matches):
    rs = RuleState(rule_def(relational_operator=operator, threshold=threshold), 5)
    feed(rs, [(0, 6.0)])
    assert rs.evaluate(T0 + S)[0] == (MATCH if matches else NO_MATCH)


def test_last_looks_back_over_empty_rows_within_the_window():
    rs = RuleState(rule_def(window=20), 5)
    feed(rs, [(0, 11.0)])
    # 18 s later the newest datapoint is still within the 20 s observation window
    assert rs.evaluate(T0 + 18 * S) == (MATCH, [(11.0, {})])
    # 21 s: nothing received over the window: missing data
    assert rs.evaluate(T0 + 21 * S) == (MISSING_DATA, [(-1, {})])


def test_no_datapoint_ever_and_fields_that_do_not_match():
    rs = RuleState(rule_def(fields={"fs": "/"}), 5)
    assert rs.evaluate(T0) == (NO_DATA, [(-1, {"fs": "/"})])
    feed(rs, [(0, 50.0)], fs="/var/log")
    assert rs.evaluate(T0) == (NO_DATA, [(-1, {"fs": "/"})])
    feed(rs, [(0, 50.0)], fs="/")
    assert rs.evaluate(T0) == (MATCH, [(50.0, {"fs": "/"})])


def test_group_by_evaluates_each_value_on_its_own():
    rs = RuleState(rule_def(function="min", relational_operator="<", threshold=10,
                            fields={"fs": "!= /"}, group_by=["fs"]), 5)
    feed(rs, [(0, 50.0)], fs="/")
    feed(rs, [(0, 5.0)], fs="/srv")
    feed(rs, [(0, 40.0), (5, 8.0)], fs="/data")
    feed(rs, [(0, 90.0)], fs="/home")
    outcome, contexts = rs.evaluate(T0 + 6 * S)
    assert outcome == MATCH
    assert contexts == [(5.0, {"fs": "/srv"}), (8.0, {"fs": "/data"})]
    # a group gone silent is missing data, reported alongside the matches
    feed(rs, [(30, 1.0)], fs="/srv")
    outcome, contexts = rs.evaluate(T0 + 31 * S)
    assert outcome == MATCH
    assert contexts == [(1.0, {"fs": "/srv"}), (-1, {"fs": "/data"}), (-1, {"fs": "/home"})]


def test_a_multi_value_metric_gives_the_rule_its_field():
    rs = RuleState(rule_def(value="upper_90", threshold=0.3), 5)
    rs.add_value(T0, {"upper_90": 0.5, "count": 40.0}, {})
    rs.add_value(T0, {"count": 40.0}, {})  # without the field: ignored
    assert rs.evaluate(T0 + S) == (MATCH, [(0.5, {})])


def test_a_window_must_span_two_rows():
    with pytest.raises(ValueError, match="must span more than one row of 5 s"):
        RuleState(rule_def(window=5), 5)


# --- alarms ------------------------------------------------------------------------------------

def test_or_and_and():
    rules = [{"metric": m, "function": "last", "relational_operator": ">", "threshold": 1,
              "window": 20} for m in ("a", "b")]
    either = AlarmState(alarm_def(rules, severity="warning"), 5)
    both = AlarmState(alarm_def(rules, severity="warning", logical_operator="and"), 5)
    for a in (either, both):
        a.add_value(T0, "a", 5.0, {})
        a.add_value(T0, "b", 0.0, {})
    state, alerts = either.evaluate(T0 + S)
    assert state == WARN and [x["metric"] for x in alerts] == ["a"]
    assert alerts[0] == {"function": "last", "metric": "a", "fields": {}, "operator": ">",
                         "value": 5.0, "threshold": 1, "window": 20, "periods": 1,
                         "message": "it is bad"}
    assert both.evaluate(T0 + S) == (OKAY, [])
    both.add_value(T0 + S, "b", 3.0, {})
    state, alerts = both.evaluate(T0 + 2 * S)
    assert state == WARN and [x["metric"] for x in alerts] == ["a", "b"]


@pytest.mark.parametrize("policy, logical, expected", [
    (None, "or", UNKW), ("okay", "or", OKAY), ("skip", "or", None), ("down", "or", DOWN),
    (None, "and", UNKW), ("skip", "and", None),
])
def test_no_data_policy(policy, logical, expected):
    extra = {"no_data_policy": policy} if policy else {}
    checker = Checker("t")
    a = checker.alarm({"name": "a", "severity": "critical", **extra, "trigger": {
        "logical_operator": logical, "rules": [
            {"metric": "a", "function": "last", "relational_operator": ">", "threshold": 1,
             "window": 20},
            {"metric": "b", "function": "last", "relational_operator": ">", "threshold": 1,
             "window": 20}]}}, "a")
    checker.done()
    state = AlarmState(a, 5)
    state.add_value(T0, "a", 0.0, {})  # a does not match, b never came
    status, alerts = state.evaluate(T0 + S)
    assert status == expected
    if expected in (UNKW, DOWN):
        assert alerts == [{"function": "last", "metric": "b", "fields": {}, "operator": ">",
                           "value": -1, "threshold": 1, "window": 20, "periods": 1,
                           "message": "No datapoint have been received ever"}]
    else:
        assert alerts == []


def test_a_match_wins_over_missing_data_with_or():
    state = AlarmState(alarm_def([
        {"metric": "a", "function": "last", "relational_operator": ">", "threshold": 1,
         "window": 20},
        {"metric": "b", "function": "last", "relational_operator": ">", "threshold": 1,
         "window": 20}]), 5)
    state.add_value(T0, "a", 5.0, {})
    state.add_value(T0 - 60 * S, "b", 5.0, {})
    status, alerts = state.evaluate(T0 + S)
    assert status == CRIT
    assert [(x["metric"], x["value"], x["message"]) for x in alerts] == [
        ("a", 5.0, "it is bad"),
        ("b", -1, "No datapoint have been received over the last 20 seconds")]


# --- AFDs ----------------------------------------------------------------------------------------

def afd_of(*alarms) -> AfdState:
    metrics = frozenset(m for a in alarms for m in a.metrics)
    return AfdState(AfdDef("node", "controller", "cpu", tuple(alarms), metrics), 5)


def test_the_first_status_waits_for_the_first_rules_window():
    # LMA compared seconds with nanoseconds: the first rule's window * periods decides
    afd = afd_of(alarm_def([
        {"metric": "a", "function": "last", "relational_operator": ">", "threshold": 1,
         "window": 20, "periods": 2},
        {"metric": "b", "function": "last", "relational_operator": ">", "threshold": 1,
         "window": 100}]))
    assert afd.tick(T0) is None  # the first tick starts the clock
    afd.add_value(T0 + S, "a", 5.0, {})
    assert afd.tick(T0 + 39 * S) is None
    status, alerts = afd.tick(T0 + 40 * S)
    assert status == CRIT and alerts[0]["severity"] == "CRITICAL"
    assert list(alerts[0]) == ["severity", "function", "metric", "fields", "tags", "operator",
                               "value", "threshold", "window", "periods", "message"]


def test_alarms_are_evaluated_in_order_until_one_is_neither_okay_nor_unknown():
    unknown = alarm_def([{"metric": "gone", "function": "last", "relational_operator": ">",
                          "threshold": 1, "window": 20}], name="u", severity="warning")
    warn = alarm_def([{"metric": "x", "function": "last", "relational_operator": ">",
                       "threshold": 1, "window": 20}], name="w", severity="warning")
    crit = alarm_def([{"metric": "x", "function": "last", "relational_operator": ">",
                       "threshold": 2, "window": 20}], name="c", severity="critical")
    afd = afd_of(unknown, warn, crit)
    afd.tick(T0 - 100 * S)
    afd.add_value(T0, "x", 5.0, {})
    status, alerts = afd.tick(T0 + S)
    # the unknown alarm's alert, then the warning stops the walk: the critical one
    # (which would match) is not evaluated
    assert status == WARN
    assert [(a["severity"], a["metric"]) for a in alerts] == [("UNKNOWN", "gone"),
                                                              ("WARN", "x")]
    # all skipped: no status at all
    skipped = afd_of(alarm_def([{"metric": "gone", "function": "last",
                                 "relational_operator": ">", "threshold": 1, "window": 20}],
                               no_data_policy="skip"))
    skipped.tick(T0)
    assert skipped.tick(T0 + 100 * S) is None


def test_payloads_are_written_as_lmas_cjson_wrote_them():
    payload = encode_payload([{"severity": "WARN", "fields": {"fs": "/var/log"}, "tags": {},
                               "value": 1 / 3, "threshold": 120.0, "message": 'a "b"\n'}])
    assert payload == ('{"alarms":[{"severity":"WARN","fields":{"fs":"\\/var\\/log"},'
                       '"tags":{},"value":0.33333333333333,"threshold":120,'
                       '"message":"a \\"b\\"\\n"}]}')
    assert json.loads(payload)["alarms"][0]["fields"] == {"fs": "/var/log"}
    assert encode_payload([]) == '{"alarms":[]}'
    with pytest.raises(NotEncodable):
        encode_payload([{"value": float("nan")}])


# --- AfdFilter in a pipeline's contexts -----------------------------------------------------

ALARMS = """
alarms:
  - name: cpu-critical
    description: The CPU usage is too high
    severity: critical
    trigger:
      rules:
        - {metric: cpu_idle, function: avg, relational_operator: '<=', threshold: 5, window: 20}
  - name: fs-low
    description: The filesystem's free space is low
    severity: warning
    trigger:
      rules:
        - {metric: fs_space_percent_free, fields: {fs: '!= /boot'}, group_by: [fs],
           function: min, relational_operator: '<', threshold: 10, window: 20}
node_cluster_alarms:
  controller:
    apply_to_node: controller
    members:
      cpu: {alarms: [cpu-critical]}
      fs: {alarms: [fs-low], alerting: disabled}
"""


def afd_pipeline(tmp_path: Path) -> tuple[Pipeline, object, object]:
    (tmp_path / "alarms.yaml").write_text(ALARMS)
    conf = tmp_path / "hekad.toml"
    conf.write_text(textwrap.dedent(f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        hostname = "collector-host"
        deployment_tags = {{ deployment_id = "42" }}
        [afd_filter]
        type = "AfdFilter"
        alarms_file = "{tmp_path / 'alarms.yaml'}"
        node_roles = ["controller"]
        hostname = "node-1"
        preserve_data = true
    """))
    p = Pipeline(load_config(conf, strict=True))
    ((plugin, ctx, _q),) = p.filters
    plugin.init(ctx)
    return p, plugin, ctx


def metric(name: str, value: float, ts: int, **fields) -> Message:
    return Message(type="metric", timestamp=ts, fields=[
        Field("name", [name], STRING), Field("value", [value], DOUBLE),
        *(Field(k, [v], STRING) for k, v in fields.items())])


async def test_afd_filter_messages(tmp_path):
    _p, afd, ctx = afd_pipeline(tmp_path)
    afd.timer_event(T0, ctx)
    assert ctx.take_injected() == []
    afd.process([metric("cpu_idle", 3.0, T0 + S, cpu_number="0"),
                 metric("fs_space_percent_free", 4.5, T0 + S, fs="/srv"),
                 metric("fs_space_percent_free", 1.0, T0 + S, fs="/boot"),
                 metric("fs_space_percent_free", 1.0, T0 + S)],  # no fs field
                ctx)
    assert ctx.stats.errors == 1
    afd.timer_event(T0 + 20 * S, ctx)
    cpu, fs = ctx.take_injected()
    assert (cpu.type, cpu.logger, cpu.hostname, cpu.severity, cpu.timestamp) == (
        "heka.sandbox.afd_node_metric", "afd_node_controller_cpu_filter", "collector-host", 7,
        T0 + 20 * S)
    assert cpu.fields == [
        Field("name", ["node_status"], STRING), Field("value", [3.0], DOUBLE),
        Field("hostname", ["node-1"], STRING), Field("source", ["cpu"], STRING),
        Field("tag_fields", ["node_role", "source", "hostname"], STRING),
        Field("node_role", ["controller"], STRING),
        Field("deployment_id", ["42"], STRING)]
    assert json.loads(cpu.payload) == {"alarms": [{
        "severity": "CRITICAL", "function": "avg", "metric": "cpu_idle", "fields": {},
        "tags": {}, "operator": "<=", "value": 3, "threshold": 5, "window": 20, "periods": 1,
        "message": "The CPU usage is too high"}]}
    assert fs.logger == "afd_node_controller_fs_filter" and fs.get_field("value") == 1.0
    assert fs.find_field("no_alerting") == Field("no_alerting", [True], BOOL)
    assert json.loads(fs.payload)["alarms"][0]["fields"] == {"fs": "/srv"}


async def test_afd_filter_keeps_its_datapoints_across_a_restart(tmp_path):
    _p, afd, ctx = afd_pipeline(tmp_path)
    afd.timer_event(T0, ctx)
    afd.process([metric("cpu_idle", 3.0, T0 + S)], ctx)
    afd.shutdown(ctx)
    assert (tmp_path / "state" / "alarm_state" / "afd_filter.json").exists()
    _p2, again, ctx2 = afd_pipeline(tmp_path)
    # started and fed before: no new wait, and the datapoint is still there
    again.timer_event(T0 + 20 * S, ctx2)
    cpu = ctx2.take_injected()[0]
    assert cpu.get_field("value") == CRIT
    # without preserve_data nothing is read
    (tmp_path / "state" / "alarm_state" / "afd_filter.json").write_text("{not json")
    _p3, fresh, ctx3 = afd_pipeline(tmp_path)
    fresh.timer_event(T0 + 20 * S, ctx3)
    assert ctx3.take_injected() == []  # a broken state file: started afresh
