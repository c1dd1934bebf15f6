"""Reads hekapy's Grafana files as Grafana would use them against InfluxDB: every
panel's queries with the template variables resolved from the database (each variable's
own query, run in order) and substituted as Grafana formats them, and every alert rule's
queries evaluated with its reduce, math and threshold expressions.

Used by tests/conf/test_grafana_dashboards.py (every query must return data) and by
scripts/render-dashboards (the pictures)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GRAFANA = Path(__file__).resolve().parents[1] / "conf" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
ALERT_RULES = GRAFANA / "provisioning" / "alerting" / "hekapy-rules.yaml"
VARIABLE_RE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
# Grafana's macros and the built-in interval; the rest are template variables.
MACROS = {"timeFilter", "__interval", "__interval_ms"}

Query = Callable[[str], Awaitable[list[dict[str, Any]]]]


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def load_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERT_RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries (rows excluded), in order."""
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def regex_escape(value: str) -> str:
    """What Grafana does to a value it puts into an InfluxQL regex."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


@dataclass(frozen=True)
class Choice:
    """A template variable's value: one of its values, or "All" (its allValue)."""

    value: str
    all: bool = False


def substitute(text: str, variables: dict[str, dict[str, Any]], choice: dict[str, Choice],
               interval: str, time_filter: str) -> str:
    """`text` with the macros and the chosen variable values, formatted as Grafana does
    for InfluxQL: a multi-value or "All"-able variable inside /.../ is regex-escaped
    (its allValue is used as it is); inside quotes, the value as it is."""
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name == "timeFilter":
            return time_filter
        if name in ("interval", "__interval"):
            return interval
        if name not in variables:
            return m.group(0)  # $tag_x in an alias, $values in an annotation
        c = choice[name]
        var = variables[name]
        if c.all:
            return var["allValue"]
        regex_context = text[m.end():].startswith("$/")  # =~ /^$name$/
        if regex_context and (var.get("multi") or var.get("includeAll")):
            return regex_escape(c.value)
        return c.value
    return VARIABLE_RE.sub(one, text)


def uses(text: str, name: str) -> bool:
    return any((m.group(1) or m.group(2)) == name for m in VARIABLE_RE.finditer(text))


async def resolve_variables(dashboard: dict[str, Any], query: Query, time_filter: str,
                            prefer: dict[str, str]) -> tuple[dict[str, list[str]],
                                                             dict[str, Choice]]:
    """Each query variable's values, from its own query (earlier variables substituted
    with their chosen value: `prefer[name]` when present, else the first); the values
    and the chosen ones."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    values: dict[str, list[str]] = {}
    choice: dict[str, Choice] = {}
    for v in dashboard["templating"]["list"]:
        name = v["name"]
        if v["type"] == "interval":
            values[name] = ["auto"]
            choice[name] = Choice("auto")
            continue
        if any(uses(v["query"], other) and other not in choice for other in variables):
            values[name] = []  # a variable it depends on has no value yet
            continue
        q = substitute(v["query"], variables, choice, "1m", time_filter)
        found: list[str] = []
        for series in await query(q):
            column = "name" if q.upper().startswith("SHOW MEASUREMENTS") else "value"
            idx = series["columns"].index(column)
            found += [row[idx] for row in series["values"]]
        if v.get("regex"):
            pattern = re.compile(v["regex"].strip("/"))
            found = [m.group(1) if m.groups() else m.group(0)
                     for f in found if (m := pattern.search(f))]
        found = sorted(set(found))
        values[name] = found
        if found:
            want = prefer.get(name)
            choice[name] = Choice(want if want in found else found[0])
    return values, choice


def choices(dashboard: dict[str, Any], values: dict[str, list[str]],
            base: dict[str, Choice]) -> list[tuple[str, dict[str, Choice]]]:
    """The base choice, then each other value of each variable (and its "All") with the
    rest as in the base: (what changed, choice)."""
    out = [("base", base)]
    for v in dashboard["templating"]["list"]:
        name = v["name"]
        if v["type"] == "interval":
            continue
        for value in values.get(name, []):
            if value != base[name].value:
                out.append((f"{name}={value}", {**base, name: Choice(value)}))
        if v.get("includeAll") and v.get("allValue"):
            out.append((f"{name}=All", {**base, name: Choice("", all=True)}))
    return out


def has_data(series: list[dict[str, Any]]) -> bool:
    """At least one series with a non-null value (besides time)."""
    for s in series:
        for row in s.get("values", []):
            if any(v is not None for v in row[1:]):
                return True
    return False


# --- alert rules ------------------------------------------------------------------------------

def rule_queries(rule: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """refId → (InfluxQL with $timeFilter, seconds of its relative time range)."""
    return {d["refId"]: (d["model"]["query"], d["relativeTimeRange"]["from"])
            for d in rule["data"] if d["datasourceUid"] != "__expr__"}


Labels = frozenset[tuple[str, str]]
_REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "last": lambda xs: xs[-1], "mean": lambda xs: sum(xs) / len(xs), "max": max,
    "min": min, "sum": sum, "count": len}
_MATH_RE = re.compile(r"[$\w\s.+\-*/()]+")


async def evaluate_rule(rule: dict[str, Any], query: Query
                        ) -> tuple[dict[str, list[dict[str, Any]]], set[Labels]]:
    """The rule's query results, and the label sets for which its condition holds
    (what would fire once its pending period passed), as Grafana's server-side
    expressions compute them: reduce, math and threshold."""
    raw: dict[str, list[dict[str, Any]]] = {}
    numbers: dict[str, dict[Labels, float]] = {}
    for d in rule["data"]:
        ref, model = d["refId"], d["model"]
        if d["datasourceUid"] != "__expr__":
            seconds = d["relativeTimeRange"]["from"]
            raw[ref] = await query(model["query"].replace("$timeFilter",
                                                          f"time > now() - {seconds}s"))
            continue
        kind = model["type"]
        if kind == "reduce":
            reducer = _REDUCERS[model["reducer"]]
            out = {}
            for s in raw[model["expression"]]:
                xs = [row[1] for row in s.get("values", []) if row[1] is not None]
                if xs:
                    out[frozenset(s.get("tags", {}).items())] = float(reducer(xs))
            numbers[ref] = out
        elif kind == "math":
            expr = model["expression"]
            assert _MATH_RE.fullmatch(expr), f"math expression {expr!r}"
            refs = re.findall(r"\$(\w+)", expr)
            label_sets = set.intersection(*(set(numbers[r]) for r in refs))
            out = {}
            for labels in label_sets:
                text = re.sub(r"\$(\w+)", lambda m, lab=labels: repr(numbers[m.group(1)][lab]),
                              expr)
                try:
                    value = float(eval(text, {"__builtins__": {}}))  # digits and + - * / only
                except ZeroDivisionError:
                    continue
                if not math.isnan(value):
                    out[labels] = value
            numbers[ref] = out
        elif kind == "threshold":
            [cond] = model["conditions"]
            op, [limit] = cond["evaluator"]["type"], cond["evaluator"]["params"]
            assert op in ("gt", "lt"), f"threshold {op!r} not understood"
            numbers[ref] = {lab: float(x > limit if op == "gt" else x < limit)
                            for lab, x in numbers[model["expression"]].items()}
        else:
            raise AssertionError(f"expression type {kind!r} not understood")
    condition = numbers[rule["condition"]]
    return raw, {labels for labels, x in condition.items() if x == 1.0}
