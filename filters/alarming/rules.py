"""AFD evaluation: rules over datapoints, alarms over rules, an AFD over its alarms, with
the semantics of LMA's afd_rule.lua, afd_alarm.lua and afd_alarms.lua
(https://github.com/openstack/fuel-plugin-lma-collector, deployment_scripts/puppet/
modules/lma_collector/files/plugins/common/); docs/alarms.md says it for operators.

A rule keeps, per datastore (one, or one per value of its `group_by` fields), the
datapoints of its window * periods in rows of `seconds_per_row` seconds
(filters/alarming/rows.py), and at each evaluation computes its function over them and
compares the result with its threshold:

- `last`: the newest value of the observation window; `diff`: the newest minus the
  oldest; `avg`, `min`, `max`, `sum`, `sd`, `variance` over all the rows.
- A datastore whose newest datapoint is older than the observation window is
  "missing data" (its context has value -1); a rule that never got a datapoint has
  "no data".

An alarm (rules joined by `or` or `and`) takes its severity when its rules match, its
`no_data_policy` status (UNKNOWN by default, none with `skip`) when a rule lacks data,
OKAY otherwise; only an alarm that is not OKAY reports its rules' contexts. An AFD
waits, after its first tick, for its first alarm's first rule's window * periods,
then at each tick evaluates its alarms in order, keeps the worst status, and stops at
the first alarm that is neither OKAY nor UNKNOWN.
"""

from __future__ import annotations

import math
from typing import Any

from hekapy.collector.engine.alarm_status import OKAY, STATUS_LABELS, UNKW, lua_tostring, worst
from hekapy.filters.alarming.definitions import AfdDef, AlarmDef, RuleDef
from hekapy.filters.alarming.matching import ValueMatcher
from hekapy.filters.alarming.rows import RowBuffer

MATCH, NO_MATCH, NO_DATA, MISSING_DATA = 1, 2, 3, 4


def compare(value: float, operator: str, threshold: float) -> bool:
    if operator in ("==", "eq"):
        return value == threshold
    if operator in ("!=", "ne"):
        return value != threshold
    if operator in (">=", "gte"):
        return value >= threshold
    if operator in (">", "gt"):
        return value > threshold
    if operator in ("<=", "lte"):
        return value <= threshold
    if operator in ("<", "lt"):
        return value < threshold
    return False


def _is_number(v: float | None) -> bool:
    return v is not None and not math.isnan(v)


class Datastore:
    __slots__ = ("fields", "rows")

    def __init__(self, fields: dict[str, Any], rows: RowBuffer) -> None:
        self.fields = fields  # what the alarm reports: the rule's fields or the group's
        self.rows = rows


class RuleState:
    """One rule of one alarm, with its datapoints."""

    def __init__(self, rule: RuleDef, seconds_per_row: int) -> None:
        self.rule = rule
        self.matchers = [(name, ValueMatcher(expr)) for name, expr in rule.fields]
        self.spr = seconds_per_row
        span = rule.window * rule.periods
        self.n_rows = math.ceil(span / seconds_per_row)
        if self.n_rows < 2:
            raise ValueError(f"rule on {rule.metric!r}: window * periods ({lua_tostring(span)}"
                             f" s) must span more than one row of {seconds_per_row} s")
        self.observation_window = math.ceil(span)
        parts = [rule.metric, rule.function, lua_tostring(rule.window),
                 lua_tostring(rule.periods)]
        parts += [f"({k}={v})" for k, v in sorted(rule.fields)]
        self.rule_id = "/".join(parts)
        self.stores: dict[str, Datastore] = {}  # in order of creation

    @property
    def reported_fields(self) -> dict[str, Any]:
        return dict(self.rule.fields)

    def _new_rows(self) -> RowBuffer:
        fn = self.rule.function
        if fn == "avg":
            return RowBuffer(self.n_rows, 2, self.spr)
        if fn in ("min", "max"):
            return RowBuffer(self.n_rows, 1, self.spr, (fn,))
        return RowBuffer(self.n_rows, 1, self.spr)

    def accepts(self, fields: dict[str, Any]) -> bool:
        """Every matcher's field matches (LMA: at least one of them present)."""
        if not self.matchers:
            return True
        present = False
        for name, matcher in self.matchers:
            if name in fields:
                if not matcher.matches(fields[name]):
                    return False
                present = True
        return present

    def add_value(self, ts: int, value: Any, fields: dict[str, Any]) -> None:
        if not self.accepts(fields):
            return
        if isinstance(value, dict):
            value = value.get(self.rule.value) if self.rule.value is not None else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        key = self.rule_id
        if self.rule.group_by:
            key = "/".join([key, *(lua_tostring(fields.get(g)) for g in self.rule.group_by)])
        store = self.stores.get(key)
        if store is None:
            store = self.stores[key] = Datastore(
                dict(fields) if self.rule.group_by else self.reported_fields, self._new_rows())
        if self.rule.function == "avg":
            store.rows.add(ts, 0, value)
            store.rows.add(ts, 1, 1)
        else:
            store.rows.set(ts, 0, value)

    def evaluate(self, ns: int) -> tuple[int, list[tuple[float, dict[str, Any]]]]:
        """The outcome (MATCH, NO_MATCH, NO_DATA, MISSING_DATA) and the contexts
        (value, fields) to report."""
        contexts: list[tuple[float, dict[str, Any]]] = []
        one_match = one_no_match = one_missing = False
        horizon = self.observation_window * 1e9
        step = self.spr * 1e9
        fn = self.rule.function
        for store in self.stores.values():
            rows = store.rows
            if ns - rows.current_time_ns() > horizon:
                one_missing = True
                contexts.append((-1, store.fields))
                continue
            result: float | None
            if fn == "avg":
                total, count = rows.compute("sum", 0), rows.compute("sum", 1)
                result = total / count if count else (
                    math.nan if total == 0 else math.copysign(math.inf, total))
            elif fn in ("last", "diff"):
                last = self._newest(rows, ns, step, horizon)
                first = self._oldest(rows, ns, step, horizon) if (
                    fn == "diff" and _is_number(last)) else None
                if not _is_number(last) or (fn == "diff" and not _is_number(first)):
                    one_missing = True
                    contexts.append((-1, store.fields))
                    continue
                assert last is not None
                result = last if first is None else last - first
            else:
                result = rows.compute(fn, 0)
            if compare(result, self.rule.operator, self.rule.threshold):
                one_match = True
                contexts.append((result, store.fields))
            else:
                one_no_match = True
        if one_match:
            return MATCH, contexts
        if one_missing:
            return MISSING_DATA, contexts
        if one_no_match:
            return NO_MATCH, []
        return NO_DATA, [(-1, self.reported_fields)]

    @staticmethod
    def _newest(rows: RowBuffer, ns: int, step: float, horizon: float) -> float | None:
        value, t = None, float(ns)
        while not _is_number(value) and t >= ns - horizon:
            value = rows.get(t, 0)
            t -= step
        return value

    @staticmethod
    def _oldest(rows: RowBuffer, ns: int, step: float, horizon: float) -> float | None:
        value, t = None, ns - horizon
        while not _is_number(value) and t <= ns:
            value = rows.get(t, 0)
            t += step
        return value

    # persistence -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id,
                "stores": [[key, s.fields, s.rows.to_state()] for key, s in self.stores.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("rule_id") != self.rule_id:
            return  # the rule changed: its old datapoints mean nothing now
        for key, fields, rows_state in state.get("stores", []):
            rows = self._new_rows()
            if rows.restore(rows_state):
                self.stores[key] = Datastore(fields, rows)


class AlarmState:
    def __init__(self, alarm: AlarmDef, seconds_per_row: int) -> None:
        self.alarm = alarm
        self.rules = [RuleState(r, seconds_per_row) for r in alarm.rules]
        # LMA compared seconds with nanoseconds here, so in effect the first rule's
        # window * periods is the wait (kept: it decides when the first status comes).
        wait = 0.0
        for r in alarm.rules:
            span = r.window * r.periods
            if span > wait:
                wait = span * 1e9
        self.initial_wait = wait
        self.start_ns = 0

    def add_value(self, ts: int, metric: str, value: Any, fields: dict[str, Any]) -> None:
        for rule in self.rules:
            if rule.rule.metric == metric:
                rule.add_value(ts, value, fields)

    def evaluate(self, ns: int) -> tuple[int | None, list[dict[str, Any]]]:
        """The alarm's status (None: skipped for lack of data) and its alerts."""
        alarm = self.alarm
        matches = 0
        one_unknown = False
        alerts: list[dict[str, Any]] = []
        message = ""
        for rs in self.rules:
            outcome, contexts = rs.evaluate(ns)
            if outcome == MATCH:
                matches += 1
                message = alarm.description
            elif outcome == MISSING_DATA:
                message = (f"No datapoint have been received over the last "
                           f"{lua_tostring(rs.observation_window)} seconds")
                one_unknown = True
            elif outcome == NO_DATA:
                message = "No datapoint have been received ever"
                one_unknown = True
            r = rs.rule
            for value, fields in contexts:
                alerts.append({"function": r.function, "metric": r.metric, "fields": fields,
                               "operator": r.operator, "value": value,
                               "threshold": r.threshold, "window": r.window,
                               "periods": r.periods, "message": message})
        state: int | None = OKAY
        no_data = alarm.no_data
        if alarm.logical_operator == "and":
            if one_unknown:
                state = no_data
            elif matches == len(self.rules):
                state = alarm.severity
        elif matches > 0:
            state = alarm.severity
        elif one_unknown:
            state = no_data
        if state is None or state == OKAY:
            alerts = []
        return state, alerts


class AfdState:
    """One AFD: its alarms, the fields its metrics must carry, when it started."""

    def __init__(self, afd: AfdDef, seconds_per_row: int) -> None:
        self.afd = afd
        self.alarms = [AlarmState(a, seconds_per_row) for a in afd.alarms]
        self.started = False
        # Per metric: the fields every alarm's rules on it read (matchers and group_by).
        self.fields_of: dict[str, list[str]] = {}
        for a in afd.alarms:
            for r in a.rules:
                names = self.fields_of.setdefault(r.metric, [])
                for name in [k for k, _ in r.fields] + list(r.group_by):
                    if name not in names:
                        names.append(name)

    def takes(self, metric: str) -> bool:
        return metric in self.afd.metrics and metric in self.fields_of

    def add_value(self, ts: int, metric: str, value: Any, fields: dict[str, Any]) -> None:
        for alarm in self.alarms:
            alarm.add_value(ts, metric, value, fields)

    def tick(self, ns: int) -> tuple[int, list[dict[str, Any]]] | None:
        """The AFD's status and alarms at a tick, or None when it has none to send
        (its first tick, still waiting, or every alarm skipped)."""
        if not self.started:
            self.started = True
            for a in self.alarms:
                a.start_ns = ns
            return None
        status: int | None = None
        alerts: list[dict[str, Any]] = []
        for a in self.alarms:
            if ns - a.start_ns < a.initial_wait:
                continue
            state, found = a.evaluate(ns)
            status = worst(state, status)
            for alert in found:  # LMA's layout: afd.lua's add_to_alarms
                assert state is not None
                alerts.append({"severity": STATUS_LABELS[state], "function": alert["function"],
                               "metric": alert["metric"], "fields": alert["fields"],
                               "tags": {}, "operator": alert["operator"],
                               "value": alert["value"], "threshold": alert["threshold"],
                               "window": alert["window"], "periods": alert["periods"],
                               "message": alert["message"]})
            if status is not None and status not in (OKAY, UNKW):
                break
        if status is None:
            return None
        return status, alerts

    # persistence -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"started": self.started,
                "alarms": {a.alarm.name: {"start_ns": a.start_ns,
                                          "rules": [r.to_state() for r in a.rules]}
                           for a in self.alarms}}

    def restore(self, state: dict[str, Any]) -> None:
        self.started = bool(state.get("started"))
        saved = state.get("alarms", {})
        for a in self.alarms:
            s = saved.get(a.alarm.name)
            if not isinstance(s, dict):
                continue
            a.start_ns = int(s.get("start_ns", 0))
            for rule, rule_state in zip(a.rules, s.get("rules", []), strict=False):
                if isinstance(rule_state, dict):
                    rule.restore(rule_state)
