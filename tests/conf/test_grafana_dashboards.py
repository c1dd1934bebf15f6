"""hekapy's Grafana dashboards and alert rules (conf/grafana/), and its Prometheus rules
(conf/prometheus/), held to what hekapy really writes.

The files are the builder's output (conf/grafana/build.py) and follow the conventions of
today's Grafana. Then the proof: tests/dashboard_lab.py fills a real InfluxDB through the
two shipped LMA collectors from real sources (HAProxy with LBaaS-style sockets and
traffic, oslo.log lines through the HTTP and log-counter filters, collectd, hekapy's
own counters); every panel's query of every dashboard, with its template variables
resolved from that database and each of their values substituted in turn, and every
alert rule's query, must return a non-empty series: a query of a measurement, tag or
field hekapy does not produce returns none, and fails here. The alert rules' expressions
are evaluated too: each fires for what the lab broke and for nothing else."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import grafana_queries as gq
from tests.dashboard_lab import ENVIRONMENT, HOST, running_lab, traffic
from tests.helpers.paths import REPO, TEST_DATA
from tests.helpers.wait import wait_for

PROMETHEUS_RULES = REPO / "conf" / "prometheus" / "hekapy-rules.yml"
PROMETHEUS_TESTS = TEST_DATA / "prometheus" / "hekapy-rules-test.yml"
ANGULAR_ONLY = {"graph", "singlestat", "table-old"}  # Grafana 11 removed Angular
PANEL_TYPES = {"row", "timeseries", "stat", "state-timeline", "table", "bargauge"}
INTERVAL = "2s"
TIME_FILTER = "time > now() - 10m"
PREFER = {"environment": ENVIRONMENT, "hostname": HOST}


def without_filters() -> set[str]:
    """The shipped LMA collectors whose configuration has no filter."""
    out = set()
    for name in ("log_collector", "metric_collector"):
        sections = tomllib.loads((REPO / "conf" / f"lma_{name}.toml").read_text())
        if not any(str(v.get("type", k)).endswith("Filter") for k, v in sections.items()
                   if isinstance(v, dict)):
            out.add(name)
    return out


# Empty for a reason, not for a missing series: (dashboard, panel, choice) → why.
EXPECTED_EMPTY = {("hekapy", "Filter messages per second", f"collector={c}"):
                  f"the {c} runs no filter" for c in without_filters()}
ANY_CHOICE = "*"
# The aggregator's cluster statuses: the lab runs no aggregator; test_alarms_e2e runs
# this panel's query on what a real aggregator wrote.
EXPECTED_EMPTY[("overview", "OpenStack clusters", ANY_CHOICE)] = "the lab runs no aggregator"


def expected_empty(r: dict[str, Any]) -> bool:
    return (r["dashboard"], r["panel"], r["choice"]) in EXPECTED_EMPTY or \
        (r["dashboard"], r["panel"], ANY_CHOICE) in EXPECTED_EMPTY


def build_module() -> Any:
    import importlib.util
    spec = importlib.util.spec_from_file_location("grafana_build",
                                                  REPO / "conf" / "grafana" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the files ----------------------------------------------------------------------------

def test_committed_files_are_the_builders_output():
    build = build_module()
    stale = [str(rel) for rel, text in build.generate().items()
             if (REPO / "conf" / "grafana" / rel).read_text() != text]
    assert not stale, f"run conf/grafana/build.py: {stale} differ from its output"


def test_dashboards_follow_current_grafanas_conventions():
    dashboards = gq.load_dashboards()
    assert set(dashboards) == {"overview", "openstack-services", "haproxy", "lbaas", "system",
                               "hypervisor", "hekapy"}
    provisioned = yaml.safe_load((gq.GRAFANA / "provisioning" / "datasources" /
                                  "hekapy-influxdb.yaml").read_text())
    [ds] = provisioned["datasources"]
    assert ds["type"] == "influxdb" and ds["access"] == "proxy"
    assert ds["secureJsonData"]["password"] == "${INFLUXDB_PASSWORD}"  # no secret in git
    uids = set()
    for name, d in dashboards.items():
        assert d["schemaVersion"] >= 36, name
        assert d["uid"] not in uids
        uids.add(d["uid"])
        names = [v["name"] for v in d["templating"]["list"]]
        assert {"environment", "hostname", "interval"} <= set(names), name
        [env] = [v for v in d["templating"]["list"] if v["name"] == "environment"]
        assert '"environment_label"' in env["query"]
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        for p in d["panels"]:
            assert p["type"] in PANEL_TYPES and p["type"] not in ANGULAR_ONLY, (name, p)
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, (name, p["title"])
            if p["type"] == "row":
                continue
            assert p["datasource"] == {"type": "influxdb", "uid": ds["uid"]}, p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == ds["uid"] and t["rawQuery"]
                q = t["query"]
                # The default retention policy: no "rp"."measurement" anywhere.
                assert not re.search(r'FROM\s+"[^"]+"\.', q), q
                assert "$timeFilter" in q, q
                assert uses_env_and_host(q) or (
                    p["title"] in CLUSTER_WIDE and gq.uses(q, "environment")), \
                    (name, p["title"], q)
    overview = dashboards["overview"]
    assert overview["title"] == "OpenStack Overview"
    assert dashboards["lbaas"]["panels"][0]["repeat"] == "loadbalancer"


# Statuses of whole clusters, written by the aggregator's host: a node chosen in
# $hostname must not empty them.
CLUSTER_WIDE = {"OpenStack clusters"}


def uses_env_and_host(query: str) -> bool:
    return gq.uses(query, "environment") and gq.uses(query, "hostname")


def test_alert_rules_are_well_formed():
    rules = gq.load_rules()
    assert len({r["uid"] for r in rules}) == len(rules)
    titles = " ".join(r["title"] for r in rules)
    for subject in ("5xx", "logging errors", "HAProxy backend", "LBaaS", "retrying",
                    "disk buffer", "stopped sending"):
        assert subject in titles, subject
    for r in rules:
        refs = [d["refId"] for d in r["data"]]
        assert r["condition"] == refs[-1]
        for d in r["data"]:
            if d["datasourceUid"] == "__expr__":
                m = d["model"]
                used = re.findall(r"\$(\w+)", m["expression"]) if m["type"] == "math" \
                    else [m["expression"]]
                assert set(used) <= set(refs[:refs.index(d["refId"])]), r["uid"]
            else:
                assert d["datasourceUid"] == "hekapy-influxdb"
                assert "$timeFilter" in d["model"]["query"]


# --- on real data -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab_results(tmp_path_factory):
    """Run the lab once; the results of every query, the rules' evaluations and both
    collectors' /metrics, as plain data."""
    return asyncio.run(collect(tmp_path_factory.mktemp("grafana-lab")))


async def collect(tmp: Path) -> dict[str, Any]:
    dashboards = gq.load_dashboards()
    rules = gq.load_rules()
    async with running_lab(tmp, tick=1.0) as lab:
        load = asyncio.create_task(traffic(lab, rounds=12, pace=0.5))

        async def base_missing() -> list[str]:
            missing = []
            for name, d in dashboards.items():
                _values, choice = await gq.resolve_variables(d, lab.query, TIME_FILTER,
                                                             PREFER)
                variables = {v["name"]: v for v in d["templating"]["list"]}
                if set(variables) - set(choice):
                    missing.append(f"{name}: variables {set(variables) - set(choice)}")
                    continue
                for p in gq.panels(d):
                    for t in p["targets"]:
                        q = gq.substitute(t["query"], variables, choice, INTERVAL,
                                          TIME_FILTER)
                        if not gq.has_data(await lab.query(q)):
                            missing.append(f"{name} / {p['title']} / {t['refId']}: {q}")
            for r in rules:
                raw, _ = await gq.evaluate_rule(r, lab.query)
                missing += [f"rule {r['uid']} {ref}" for ref, s in raw.items()
                            if not gq.has_data(s)]
            return missing

        # Until every query has data (the collectors tick every second), or 75 s: what is
        # still missing then is reported below.
        missing: list[str] = []

        async def every_query_has_data() -> bool:
            nonlocal missing
            lab.check_alive()
            missing = await base_missing()
            return not missing and load.done()

        await wait_for(every_query_has_data, "data for every panel and alert query",
                       timeout=75, interval=1, required=False)
        await load

        results: list[dict[str, Any]] = []
        values_of: dict[str, dict[str, list[str]]] = {}
        for name, d in dashboards.items():
            values, base = await gq.resolve_variables(d, lab.query, TIME_FILTER, PREFER)
            values_of[name] = values
            variables = {v["name"]: v for v in d["templating"]["list"]}
            if set(variables) - set(base):
                results.append({"dashboard": name, "panel": "(template variables)",
                                "ref": "", "choice": "base", "data": False,
                                "query": f"no values for {set(variables) - set(base)}"})
                continue
            for changed, choice in gq.choices(d, values, base):
                var = changed.split("=")[0]
                for p in gq.panels(d):
                    for t in p["targets"]:
                        if changed != "base" and not gq.uses(t["query"], var):
                            continue
                        q = gq.substitute(t["query"], variables, choice, INTERVAL,
                                          TIME_FILTER)
                        results.append({"dashboard": name, "panel": p["title"],
                                        "ref": t["refId"], "choice": changed, "query": q,
                                        "data": gq.has_data(await lab.query(q))})
        evaluations = {}
        for r in rules:
            raw, firing = await gq.evaluate_rule(r, lab.query)
            evaluations[r["uid"]] = {
                "data": {ref: gq.has_data(s) for ref, s in raw.items()},
                "firing": [dict(labels) for labels in firing]}
        metrics = await lab.metrics()
        return {"results": results, "values": values_of, "rules": evaluations,
                "metrics": metrics, "loadbalancer_id": lab.loadbalancer_id,
                "pool_id": lab.pool_id, "missing_at_deadline": missing}


@pytest.mark.services
def test_every_panel_query_returns_data_for_every_variable_value(lab_results):
    results = lab_results["results"]
    empty = [f"{r['dashboard']} / {r['panel']} / {r['ref']} ({r['choice']}): {r['query']}"
             for r in results if not r["data"] and not expected_empty(r)]
    assert not empty, "queries with no data:\n" + "\n".join(empty)
    for key, why in EXPECTED_EMPTY.items():  # still empty, for that reason
        assert not [r for r in results if r["data"] and (r["dashboard"], r["panel"]) == key[:2]
                    and key[2] in (r["choice"], ANY_CHOICE)], why
    # Every variable listed real values: the substitutions above covered them.
    values = lab_results["values"]
    assert values["overview"]["environment"] == [ENVIRONMENT]
    assert set(values["openstack-services"]["service"]) == {
        "nova", "neutron", "keystone", "glance", "cinder", "heat"}
    assert set(values["lbaas"]["loadbalancer"]) == {lab_results["loadbalancer_id"],
                                                   lab_results["pool_id"]}
    assert {"nova-api", "keystone-public-api", "heat-api"} <= set(values["haproxy"]["backend"])
    assert set(values["hekapy"]["collector"]) == {"log_collector", "metric_collector"}
    assert values["hypervisor"]["instance"], "no guest from collectd's virt plugin"
    checked = {r["choice"] for r in results if r["dashboard"] == "openstack-services"}
    assert {f"service={s}" for s in ("neutron", "keystone", "glance", "heat")} <= checked


@pytest.mark.services
def test_every_alert_rule_query_returns_data_and_fires_for_what_broke(lab_results):
    rules = lab_results["rules"]
    for uid, e in rules.items():
        assert e["data"] and all(e["data"].values()), (uid, e["data"])
    firing = {uid: e["firing"] for uid, e in rules.items()}
    # Nova answers 5xx to a quarter of its requests, the others to one in 40 (< 5%).
    assert [f["hostname"] for f in firing["hekapy-api-5xx-nova"]] == [HOST]
    for service in ("neutron", "keystone", "glance", "cinder", "heat"):
        assert firing[f"hekapy-api-5xx-{service}"] == [], service
    errors = {(f["service"], f["level"]) for f in firing["hekapy-log-errors"]}
    assert ("nova", "error") in errors and not any(s == "glance" for s, _ in errors)
    # heat-api has one dead server of three; cinder-api's only server answers 503 to its
    # health check.
    down = {f["backend"] for f in firing["hekapy-haproxy-server-down"]}
    assert down == {"heat-api", "cinder-api"}, down
    assert {f["backend"] for f in firing["hekapy-haproxy-backend-down"]} == {"cinder-api"}
    [member] = firing["hekapy-lbaas-member-down"]
    assert member["loadbalancer_id"] == lab_results["loadbalancer_id"]
    assert member["server"] == "member-2"
    for uid in ("hekapy-output-retrying", "hekapy-disk-buffer-filling",
                "hekapy-collector-silent"):
        assert firing[uid] == [], uid


# --- Prometheus -----------------------------------------------------------------------------

def promtool() -> str:
    path = shutil.which("promtool")
    assert path, ("promtool is not installed: apt-get install prometheus "
                  "(scripts/install-system-deps installs it)")
    return path


def test_prometheus_rules_parse_and_fire_on_their_unit_series():
    check = subprocess.run([promtool(), "check", "rules", str(PROMETHEUS_RULES)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run = subprocess.run([promtool(), "test", "rules", str(PROMETHEUS_TESTS)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    # Every alert has a unit test.
    alerts = {r["alert"] for g in yaml.safe_load(PROMETHEUS_RULES.read_text())["groups"]
              for r in g["rules"]}
    tested = {a["alertname"] for t in yaml.safe_load(PROMETHEUS_TESTS.read_text())["tests"]
              for a in t.get("alert_rule_test", [])}
    assert alerts <= tested, alerts - tested


@pytest.mark.services
def test_prometheus_rules_use_metrics_hekapy_serves(lab_results):
    served = set()
    for text in lab_results["metrics"].values():
        served |= {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                   if line and not line.startswith("#")}
    exprs = [r["expr"] for g in yaml.safe_load(PROMETHEUS_RULES.read_text())["groups"]
             for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:hekapy|process)_[a-z_]+)\b", e)}
    assert used, exprs
    assert used <= served, f"not in /metrics: {used - served}"
    # The series the unit tests feed are hekapy's too.
    fed = {s["series"].split("{")[0] for t in
           yaml.safe_load(PROMETHEUS_TESTS.read_text())["tests"] for s in t["input_series"]}
    assert fed - {"up"} <= served, fed - served
