"""Builds hekapy's Grafana files: the dashboards (conf/grafana/dashboards/*.json), the
provisioning of the InfluxDB datasource and of the dashboards, and the alert rules
(conf/grafana/provisioning/). The JSON and YAML are generated so that every panel
follows the same conventions; edit this file, then run it, and commit both:

    .venv/bin/python conf/grafana/build.py          # write the files
    .venv/bin/python conf/grafana/build.py --check  # exit 1 when they are out of date

Conventions (docs/dashboards.md): Grafana's current JSON model (schemaVersion 39), only
panel types that need no Angular (timeseries, stat, state-timeline, table, bargauge),
every query raw InfluxQL on the database's default retention policy through the
provisioned datasource (uid `hekapy-influxdb`), template variables `$environment` (the
`environment_label` tag), `$hostname` and `$interval` on every dashboard.
tests/conf/test_grafana_dashboards.py runs every query below against series hekapy wrote.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DATASOURCE_UID = "hekapy-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
FOLDER = "hekapy"
SCHEMA_VERSION = 39
# The services whose API logs hekapy's log_collector reads (its HTTP metrics).
SERVICES = ("nova", "neutron", "keystone", "glance", "cinder", "heat")
ERROR_LEVELS = "error|critical|alert|emergency"

ENV = '"environment_label" =~ /^$environment$/'
HOST = '"hostname" =~ /^$hostname$/'
WHERE = f"{ENV} AND {HOST} AND $timeFilter"
# HAProxy's own proxies (the controllers') and tenant load balancers (LBaaS): the
# latter carry the id of their load balancer (v2) or pool (v1).
CONTROLLER = """"loadbalancer_id" = '' AND "pool_id" = ''"""
TENANT = """("loadbalancer_id" != '' OR "pool_id" != '')"""
THIS_LB = """("loadbalancer_id" = '$loadbalancer' OR "pool_id" = '$loadbalancer')"""

UP_DOWN = [{"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red", "index": 0},
    "1": {"text": "UP", "color": "green", "index": 1}}}]
# The alarm statuses of LMA's AFD and GSE filters (docs/alarms.md).
STATUS = [{"type": "value", "options": {
    "0": {"text": "OKAY", "color": "green", "index": 0},
    "1": {"text": "WARN", "color": "orange", "index": 1},
    "2": {"text": "UNKNOWN", "color": "gray", "index": 2},
    "3": {"text": "CRITICAL", "color": "red", "index": 3},
    "4": {"text": "DOWN", "color": "dark-red", "index": 4}}}]


def http_measurement(service: str) -> str:
    return f'"openstack_{service}_http_response_times"'


def log_rate(cond: str, by: str, per_interval: bool = True) -> str:
    """Log lines per second from log_messages (one rate per service, level and host
    every tick): the mean rate of each host and level, summed `by` a tag."""
    t = "time($interval), " if per_interval else ""
    fill = " fill(none)" if per_interval else ""
    group = f" GROUP BY {t}{by}{fill}" if by or per_interval else ""
    inner_by = f", {by}" if by else ""
    return (f'SELECT sum("rate") FROM (SELECT mean("value") AS "rate" FROM "log_messages" '
            f'WHERE {cond}{WHERE} GROUP BY {t}"hostname", "level"{inner_by}{fill}) '
            f"WHERE $timeFilter{group}").replace(" GROUP BY time($interval), fill", " GROUP "
                                                 "BY time($interval) fill")


def rate(field: str) -> str:
    """Per-second rate of a cumulative counter (HAProxy's, hekapy's)."""
    return f'non_negative_derivative(last("{field}"), 1s)'


# --- panels -------------------------------------------------------------------------------

def target(query: str, alias: str = "", ref: str = "A", table: bool = False
           ) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": ref, "datasource": DATASOURCE, "rawQuery": True,
                         "query": query, "resultFormat": "table" if table else "time_series"}
    if alias:
        t["alias"] = alias
    return t


def targets(*queries: tuple[str, str]) -> list[dict[str, Any]]:
    """(query, alias) pairs as targets A, B, C..."""
    return [target(q, alias, chr(ord("A") + i)) for i, (q, alias) in enumerate(queries)]


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in steps]}


GREEN = thresholds((None, "green"))


def panel(kind: str, title: str, description: str, tgts: list[dict[str, Any]],
          unit: str = "short", w: int = 8, h: int = 8, **extra: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, "thresholds": extra.pop("thresholds", GREEN)}
    for key in ("min", "max", "decimals", "mappings"):
        if key in extra:
            defaults[key] = extra.pop(key)
    custom = extra.pop("custom", None)
    if custom is not None:
        defaults["custom"] = custom
    p = {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
         "gridPos": {"w": w, "h": h}, "targets": tgts,
         "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
         "options": extra.pop("options", {})}
    p.update(extra)
    return p


def timeseries(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
               stacked: bool = False, bars: bool = False, **extra: Any) -> dict[str, Any]:
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1,
              "fillOpacity": 60 if bars else (25 if stacked else 10),
              "showPoints": "never", "spanNulls": True,
              "stacking": {"mode": "normal" if stacked else "none", "group": "A"}}
    options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel("timeseries", title, description, tgts, unit, custom=custom,
                 options=options, **extra)


def stat(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
         calc: str = "lastNotNull", w: int = 4, h: int = 4, **extra: Any) -> dict[str, Any]:
    options = {"reduceOptions": {"calcs": [calc], "fields": "", "values": False},
               "colorMode": "background" if "thresholds" in extra or "mappings" in extra
               else "value",
               "graphMode": "area", "justifyMode": "auto", "textMode": "auto",
               "orientation": "auto"}
    return panel("stat", title, description, tgts, unit, w=w, h=h, options=options, **extra)


def state_timeline(title: str, description: str, tgts: list[dict[str, Any]],
                   w: int = 12, h: int = 8, **extra: Any) -> dict[str, Any]:
    options = {"showValue": "auto", "mergeValues": True, "rowHeight": 0.8,
               "alignValue": "center",
               "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    return panel("state-timeline", title, description, tgts, "short", w=w, h=h,
                 mappings=extra.pop("mappings", UP_DOWN),
                 thresholds=extra.pop("thresholds", thresholds((None, "red"), (1, "green"))),
                 custom={"fillOpacity": 80, "lineWidth": 0}, options=options, **extra)


def bargauge(title: str, description: str, tgts: list[dict[str, Any]], unit: str = "short",
             w: int = 8, h: int = 8, **extra: Any) -> dict[str, Any]:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
               "orientation": "horizontal", "displayMode": "gradient",
               "showUnfilled": True, "minVizHeight": 10, "minVizWidth": 0}
    return panel("bargauge", title, description, tgts, unit, w=w, h=h, options=options,
                 **extra)


def table(title: str, description: str, tgts: list[dict[str, Any]], w: int = 12,
          h: int = 8, **extra: Any) -> dict[str, Any]:
    options = {"showHeader": True, "cellHeight": "sm",
               "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    return panel("table", title, description, tgts, "short", w=w, h=h, options=options,
                 transformations=[{"id": "merge", "options": {}}], **extra)


def row(title: str, repeat: str = "") -> dict[str, Any]:
    r: dict[str, Any] = {"type": "row", "title": title, "collapsed": False, "panels": [],
                         "gridPos": {"w": 24, "h": 1}}
    if repeat:
        r["repeat"] = repeat
    return r


def layout(panels: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Places the panels left to right on Grafana's 24-column grid, a row panel on a line
    of its own; numbers them."""
    out, x, y, line_h = [], 0, 0, 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        p["id"] = i
        out.append(p)
        if p["type"] == "row":
            y += 1
        else:
            x += w
            line_h = max(line_h, h)
    return out


# --- template variables -------------------------------------------------------------------

def query_variable(name: str, label: str, query: str, multi: bool = True,
                   include_all: bool = True, regex: str = "", all_value: str = ".*"
                   ) -> dict[str, Any]:
    v: dict[str, Any] = {
        "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
        "query": query, "definition": query, "refresh": 2, "sort": 1, "regex": regex,
        "multi": multi, "includeAll": include_all, "hide": 0,
        "current": {}, "options": []}
    if include_all and all_value:
        v["allValue"] = all_value
    return v


def environment_variable() -> dict[str, Any]:
    # Every series hekapy writes carries the deployment tags: the list does not hang on
    # one producer (LMA's came from collectd's cpu_idle only).
    return query_variable("environment", "Environment",
                          'SHOW TAG VALUES WITH KEY = "environment_label"', multi=False)


def hostname_variable(measurements: str) -> dict[str, Any]:
    return query_variable("hostname", "Host",
                          f'SHOW TAG VALUES FROM {measurements} WITH KEY = "hostname" '
                          f"WHERE {ENV}")


def interval_variable() -> dict[str, Any]:
    return {"type": "interval", "name": "interval", "label": "Interval", "auto": True,
            "auto_count": 30, "auto_min": "10s", "hide": 0, "refresh": 2,
            "query": "10s,30s,1m,5m,10m,30m,1h",
            "current": {"text": "auto", "value": "$__auto_interval_interval"},
            "options": []}


def dashboard(uid: str, title: str, description: str, tags: list[str],
              variables: list[dict[str, Any]], panels: list[dict[str, Any]]
              ) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["hekapy", *tags], "editable": True, "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "1m",
        "time": {"from": "now-1h", "to": "now"}, "timepicker": {},
        "timezone": "browser", "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["hekapy"], "asDropdown": True,
                   "title": "hekapy dashboards", "includeVars": True, "keepTime": True}],
        "templating": {"list": variables},
        "panels": layout(panels),
    }


# --- the dashboards -----------------------------------------------------------------------

def overview() -> dict[str, Any]:
    http = WHERE
    return dashboard(
        "hekapy-overview", "OpenStack Overview",
        "The cloud at a glance: API traffic, errors and latency per OpenStack service, "
        "log errors, HAProxy and LBaaS health, and hekapy's own health. Needs nothing "
        "but hekapy's series (no alarm filters).",
        ["openstack", "overview"],
        [environment_variable(),
         hostname_variable('/^(openstack_.*_http_response_times|log_messages|'
                           'haproxy_backend_status|hekapy_collector)$/'),
         interval_variable()],
        [row("OpenStack APIs"),
         timeseries("API requests per $interval", "HTTP requests the API logs show, per "
                    "service (HttpMetricsFilter's count).", targets(*[
                        (f'SELECT sum("count") FROM {http_measurement(s)} WHERE {http} '
                         "GROUP BY time($interval) fill(0)", s) for s in SERVICES])),
         timeseries("API 5xx responses per $interval", "Server errors per service.",
                    targets(*[(f'SELECT sum("count") FROM {http_measurement(s)} WHERE '
                               f"\"http_status\" = '5xx' AND {http} "
                               "GROUP BY time($interval) fill(0)", s) for s in SERVICES]),
                    bars=True, stacked=True),
         timeseries("API response time, 90th percentile", "The slowest host and method's "
                    "90th percentile in each interval, per service.",
                    targets(*[(f'SELECT max("upper_90") FROM {http_measurement(s)} WHERE '
                               f"{http} GROUP BY time($interval) fill(none)", s)
                              for s in SERVICES]), unit="s"),
         row("Logs"),
         timeseries("Log errors per second", "ERROR, CRITICAL, ALERT and EMERGENCY lines "
                    "per second, per service (LogCounterFilter's log_messages).",
                    [target(log_rate(f'"level" =~ /^({ERROR_LEVELS})$/ AND ', '"service"'),
                            "$tag_service")], unit="reqps", w=12),
         bargauge("Log messages per second by service", "Mean over the time range, all "
                  "severities.",
                  [target(log_rate("", '"service"', per_interval=False), "$tag_service")],
                  unit="reqps", w=12),
         row("Load balancing"),
         state_timeline("HAProxy backends", "1 while the backend has a server up "
                        "(haproxy_backend_status), per controller backend.",
                        [target(f'SELECT last("value") FROM "haproxy_backend_status" WHERE '
                                f"{CONTROLLER} AND {WHERE} GROUP BY time($interval), "
                                '"hostname", "backend" fill(none)',
                                "$tag_backend ($tag_hostname)")]),
         state_timeline("LBaaS load balancer members", "Each member of each tenant load "
                        "balancer, UP or DOWN as its health check sees it.",
                        [target(f'SELECT last("value") FROM "haproxy_backend_server" WHERE '
                                f"{TENANT} AND {WHERE} GROUP BY time($interval), "
                                '"loadbalancer_id", "pool_id", "server" fill(none)',
                                "$tag_loadbalancer_id$tag_pool_id $tag_server")]),
         row("Clusters"),
         state_timeline("OpenStack clusters", "The status the aggregator's GSE filters "
                        "give each of LMA's global clusters (cluster_status: OKAY, WARN, "
                        "UNKNOWN, CRITICAL, DOWN). Empty where no aggregator runs "
                        "(conf/lma_aggregator.toml); the rows above need no alarm filter.",
                        [target(f'SELECT last("value") FROM "cluster_status" WHERE {ENV} '
                                'AND $timeFilter GROUP BY time($interval), "cluster_name" '
                                'fill(none)', "$tag_cluster_name")],
                        mappings=STATUS, w=24,
                        thresholds=thresholds((None, "green"), (1, "orange"), (3, "red"))),
         row("hekapy"),
         stat("Collectors reporting", "hekapy collectors that sent their own counters "
              "in the time range (uptime of each).",
              [target(f'SELECT last("uptime_seconds") FROM "hekapy_collector" WHERE {WHERE} '
                      'GROUP BY "hostname", "collector"', "$tag_hostname $tag_collector")],
              unit="s", w=8, h=6),
         timeseries("Messages stored per second", "Per output: what its server "
                    "acknowledged.",
                    [target(f'SELECT {rate("messages_out")} FROM "hekapy_plugin" WHERE '
                            f"\"category\" = 'output' AND {WHERE} GROUP BY time($interval), "
                            '"hostname", "collector", "plugin" fill(none)',
                            "$tag_hostname $tag_plugin")], unit="ops", h=6),
         bargauge("Disk buffers", "How full each output's disk buffer is (of "
                  "max_buffer_size).",
                  [target(f'SELECT last("fill_ratio") FROM "hekapy_buffer" WHERE {WHERE} '
                          'GROUP BY "hostname", "plugin"', "$tag_hostname $tag_plugin")],
                  unit="percentunit", min=0, max=1, h=6,
                  thresholds=thresholds((None, "green"), (0.5, "orange"), (0.8, "red"))),
         ])


def openstack_services() -> dict[str, Any]:
    m = '"openstack_${service}_http_response_times"'
    svc = "\"service\" = '$service'"
    return dashboard(
        "hekapy-openstack-services", "OpenStack Services",
        "One OpenStack service at a time ($service): its API's response times per HTTP "
        "method, responses per status class, log messages per severity, and its HAProxy "
        "backends.",
        ["openstack"],
        [environment_variable(),
         query_variable("service", "Service",
                        "SHOW MEASUREMENTS WITH MEASUREMENT =~ "
                        "/^openstack_.+_http_response_times$/", multi=False,
                        include_all=False, regex="/^openstack_(.+)_http_response_times$/"),
         hostname_variable("/^openstack_.+_http_response_times$/"),
         interval_variable()],
        [row("$service API"),
         stat("Requests", "HTTP requests in the time range.",
              [target(f'SELECT sum("count") FROM {m} WHERE {WHERE}')], calc="sum"),
         stat("5xx responses", "Server errors in the time range.",
              [target(f'SELECT sum("count") FROM {m} WHERE "http_status" = \'5xx\' AND '
                      f"{WHERE}")], calc="sum",
              thresholds=thresholds((None, "green"), (1, "red"))),
         stat("Slowest 90th percentile", "The highest 90th-percentile response time in "
              "the time range.", [target(f'SELECT max("upper_90") FROM {m} WHERE {WHERE}')],
              unit="s", calc="max"),
         stat("Log errors per second", "ERROR and CRITICAL lines per second, mean.",
              [target(log_rate(f'{svc} AND "level" =~ /^({ERROR_LEVELS})$/ AND ', "",
                               per_interval=False))], unit="reqps", calc="mean",
              thresholds=thresholds((None, "green"), (0.1, "red"))),
         stat("HAProxy backends up", "Backends of this service with a server up.",
              [target(f'SELECT last("value") FROM "haproxy_backend_status" WHERE '
                      f'"backend" =~ /^${{service}}-/ AND {CONTROLLER} AND {WHERE} '
                      'GROUP BY "backend"', "$tag_backend")], mappings=UP_DOWN,
              thresholds=thresholds((None, "red"), (1, "green")), w=8),
         timeseries("Response time (90th percentile) by HTTP method", "The slowest host's "
                    "90th percentile, per method.",
                    [target(f'SELECT max("upper_90") FROM {m} WHERE {WHERE} GROUP BY '
                            'time($interval), "http_method" fill(none)',
                            "$tag_http_method")], unit="s", w=12),
         timeseries("Responses per $interval by status class", "1xx to 5xx.",
                    [target(f'SELECT sum("count") FROM {m} WHERE {WHERE} GROUP BY '
                            'time($interval), "http_status" fill(0)', "$tag_http_status")],
                    bars=True, stacked=True, w=12,
                    overrides=[{"matcher": {"id": "byName", "options": "5xx"},
                                "properties": [{"id": "color", "value": {
                                    "mode": "fixed", "fixedColor": "red"}}]}]),
         timeseries("Response time: fastest, mean, slowest", "Over every request.",
                    targets((f'SELECT min("min") FROM {m} WHERE {WHERE} GROUP BY '
                             "time($interval) fill(none)", "fastest"),
                            (f'SELECT sum("sum") / sum("count") FROM {m} WHERE {WHERE} '
                             "GROUP BY time($interval) fill(none)", "mean"),
                            (f'SELECT max("max") FROM {m} WHERE {WHERE} GROUP BY '
                             "time($interval) fill(none)", "slowest")), unit="s", w=12),
         timeseries("Log messages per second by severity", "All of the service's logs.",
                    [target(log_rate(f"{svc} AND ", '"level"'), "$tag_level")],
                    unit="reqps", stacked=True, w=12),
         table("Requests by host, method and status", "In the time range.",
               [target(f'SELECT sum("count") AS "requests", max("upper_90") AS "p90 (s)" '
                       f'FROM {m} WHERE {WHERE} GROUP BY "hostname", "http_method", '
                       '"http_status"', table=True)], w=24),
         ])


def haproxy() -> dict[str, Any]:
    where = f"{CONTROLLER} AND {WHERE}"
    fe = f'"frontend" =~ /^$frontend$/ AND {where}'
    be = f'"backend" =~ /^$backend$/ AND {where}'

    def per(measure: str, key: str, cond: str, func: str = 'last("value")',
            alias: str = "") -> tuple[str, str]:
        return (f"SELECT {func} FROM \"{measure}\" WHERE {cond} GROUP BY time($interval), "
                f'"hostname", "{key}" fill(none)', alias or f"$tag_{key} ($tag_hostname)")

    def rates(prefix: str, key: str, cond: str, names: Iterable[str]) -> list[dict]:
        return targets(*[per(f"{prefix}_{n}", key, cond, rate("value"),
                             f"$tag_{key} {n}") for n in names])

    return dashboard(
        "hekapy-haproxy", "HAProxy",
        "The controllers' HAProxy (HaproxyStatsInput): the process, frontends, backends "
        "and their servers. Tenant load balancers are on the LBaaS dashboard.",
        ["haproxy"],
        [environment_variable(),
         hostname_variable('"haproxy_backend_status"'),
         query_variable("frontend", "Frontend",
                        'SHOW TAG VALUES FROM "haproxy_frontend_bytes_in" WITH KEY = '
                        f'"frontend" WHERE {CONTROLLER} AND {ENV} AND {HOST}'),
         query_variable("backend", "Backend",
                        'SHOW TAG VALUES FROM "haproxy_backend_status" WITH KEY = '
                        f'"backend" WHERE {CONTROLLER} AND {ENV} AND {HOST}'),
         interval_variable()],
        [row("Process"),
         stat("Uptime", "Since HAProxy started.",
              [target(f'SELECT last("value") FROM "haproxy_uptime" WHERE {where} '
                      'GROUP BY "hostname"', "$tag_hostname")], unit="s", w=6, h=6),
         timeseries("Connections and tasks", "Current connections, tasks and run queue.",
                    targets(*[(f'SELECT mean("value") FROM "haproxy_{n}" WHERE {where} '
                               'GROUP BY time($interval), "hostname" fill(none)',
                               f"{n} $tag_hostname")
                              for n in ("connections", "tasks", "run_queue")]), w=18, h=6),
         row("Frontends"),
         timeseries("Frontend traffic", "Bytes per second in and out.",
                    rates("haproxy_frontend", "frontend", fe, ("bytes_in", "bytes_out")),
                    unit="Bps"),
         timeseries("Frontend responses per second", "By status class.",
                    rates("haproxy_frontend", "frontend", fe,
                          ("response_2xx", "response_3xx", "response_4xx", "response_5xx")),
                    unit="reqps", stacked=True),
         timeseries("Frontend sessions", "Current sessions.",
                    targets(per("haproxy_frontend_session_current", "frontend", fe,
                                'max("value")'))),
         timeseries("Frontend request errors per second", "Invalid and denied requests.",
                    rates("haproxy_frontend", "frontend", fe,
                          ("error_requests", "denied_requests")), unit="reqps", w=12),
         row("Backends"),
         state_timeline("Backend status", "UP while a server of the backend is up.",
                        targets(per("haproxy_backend_status", "backend", be))),
         bargauge("Servers down", "Per backend, now.",
                  [target(f'SELECT last("value") FROM "haproxy_backend_servers" WHERE '
                          f"\"state\" = 'down' AND {be} GROUP BY \"hostname\", \"backend\"",
                          "$tag_backend ($tag_hostname)")],
                  thresholds=thresholds((None, "green"), (1, "red")), w=12),
         timeseries("Backend traffic", "Bytes per second in and out.",
                    rates("haproxy_backend", "backend", be, ("bytes_in", "bytes_out")),
                    unit="Bps"),
         timeseries("Backend responses per second", "By status class.",
                    rates("haproxy_backend", "backend", be,
                          ("response_2xx", "response_3xx", "response_4xx", "response_5xx")),
                    unit="reqps", stacked=True),
         timeseries("Backend sessions and queue", "Current sessions and queued requests.",
                    targets(per("haproxy_backend_session_current", "backend", be,
                                'max("value")', "$tag_backend sessions"),
                            per("haproxy_backend_queue_current", "backend", be,
                                'max("value")', "$tag_backend queued"))),
         timeseries("Backend errors per second", "Connection and response errors, "
                    "retries, redistributions.",
                    rates("haproxy_backend", "backend", be,
                          ("error_connection", "error_responses", "retries",
                           "redistributed")), unit="ops", w=12),
         state_timeline("Servers", "Each server as its health check sees it.",
                        [target(f'SELECT last("value") FROM "haproxy_backend_server" WHERE '
                                f"{be} GROUP BY time($interval), \"hostname\", \"backend\", "
                                '"server" fill(none)', "$tag_backend/$tag_server")]),
         ])


def lbaas() -> dict[str, Any]:
    lb = f"{THIS_LB} AND {WHERE}"

    def rates(prefix: str, names: Iterable[str]) -> list[dict]:
        return targets(*[(f"SELECT {rate('value')} FROM \"{prefix}_{n}\" WHERE {lb} "
                          f"GROUP BY time($interval) fill(none)", n) for n in names])

    return dashboard(
        "hekapy-lbaas", "LBaaS Load Balancers",
        "One row per tenant load balancer that the Neutron LBaaS agent runs (LBaaS v2 "
        "load balancers and v1 pools, from HaproxyStatsInput's per-socket statistics): "
        "members, sessions, traffic, responses, health-check failures.",
        ["haproxy", "lbaas", "neutron"],
        [environment_variable(),
         hostname_variable('"haproxy_backend_server"'),
         query_variable("loadbalancer", "Load balancer",
                        'SHOW TAG VALUES FROM "haproxy_backend_status" WITH KEY IN '
                        f'("loadbalancer_id", "pool_id") WHERE {ENV} AND {HOST}',
                        all_value=""),  # the rows repeat per load balancer
         interval_variable()],
        [row("Load balancer $loadbalancer", repeat="loadbalancer"),
         stat("Members up", "Members whose health check passes.",
              [target(f'SELECT last("value") FROM "haproxy_backend_servers" WHERE '
                      f"\"state\" = 'up' AND {lb}")],
              thresholds=thresholds((None, "red"), (1, "green"))),
         stat("Members down", "Members whose health check fails.",
              [target(f'SELECT last("value") FROM "haproxy_backend_servers" WHERE '
                      f"\"state\" = 'down' AND {lb}")],
              thresholds=thresholds((None, "green"), (1, "red"))),
         state_timeline("Members", "Each member, UP or DOWN.",
                        [target(f'SELECT last("value") FROM "haproxy_backend_server" WHERE '
                                f'{lb} GROUP BY time($interval), "server" fill(none)',
                                "$tag_server")], w=16, h=4),
         timeseries("Sessions", "Current sessions on the load balancer's listener.",
                    [target(f'SELECT max("value") FROM "haproxy_frontend_session_current" '
                            f"WHERE {lb} GROUP BY time($interval) fill(none)", "sessions")],
                    w=6),
         timeseries("Traffic", "Bytes per second in and out of the listener.",
                    rates("haproxy_frontend", ("bytes_in", "bytes_out")), unit="Bps", w=6),
         timeseries("Responses per second", "2xx, 4xx and 5xx answered to clients.",
                    rates("haproxy_frontend", ("response_2xx", "response_4xx",
                                               "response_5xx")),
                    unit="reqps", stacked=True, w=6),
         timeseries("Health-check failures", "Connection errors and retries to members, "
                    "per second, and the seconds the pool had no member up.",
                    [*rates("haproxy_backend", ("error_connection", "retries")),
                     target(f'SELECT last("value") FROM "haproxy_backend_downtime" WHERE '
                            f"{lb} GROUP BY time($interval) fill(none)", "downtime (s)",
                            "C")], unit="short", w=6),
         timeseries("Failed health checks per member", "Each member's failed health "
                    "checks and its UP to DOWN transitions since HAProxy started (HAProxy "
                    "counts failed checks only while the member is up).",
                    targets(*[(f'SELECT last("value") FROM "haproxy_backend_server_{n}" '
                               f'WHERE {lb} GROUP BY time($interval), "server" fill(none)',
                               f"$tag_server {legend}")
                              for n, legend in (("check_failures", "failed checks"),
                                                ("check_downs", "went down"))]),
                    unit="short", w=24),
         ])


def system() -> dict[str, Any]:
    cpu = ("user", "system", "wait", "steal", "interrupt", "nice")
    memory = ("used", "buffered", "cached", "free")
    return dashboard(
        "hekapy-system", "System",
        "A node's operating system from collectd (cpu, memory, load, processes, df, disk, "
        "netlink, swap, users), as hekapy names collectd's series.",
        ["system", "collectd"],
        [environment_variable(),
         hostname_variable('"cpu_idle"'),
         query_variable("mount", "Mount point",
                        'SHOW TAG VALUES FROM "fs_space_percent_free" WITH KEY = "fs" '
                        f"WHERE {ENV} AND {HOST}"),
         query_variable("disk", "Disk",
                        'SHOW TAG VALUES FROM "disk_octets_read" WITH KEY = "device" '
                        f"WHERE {ENV} AND {HOST}"),
         query_variable("interface", "Interface",
                        'SHOW TAG VALUES FROM "if_octets_rx" WITH KEY = "interface" '
                        f"WHERE {ENV} AND {HOST}"),
         interval_variable()],
        [row("CPU, memory, processes"),
         timeseries("CPU", "Per-CPU mean, in % of one CPU.", targets(*[
             (f'SELECT mean("value") FROM "cpu_{c}" WHERE {WHERE} GROUP BY time($interval), '
              '"hostname" fill(none)', f"{c} $tag_hostname") for c in cpu]),
             unit="percent", stacked=True),
         timeseries("Memory", "", targets(*[
             (f'SELECT mean("value") FROM "memory_{k}" WHERE {WHERE} GROUP BY '
              'time($interval), "hostname" fill(none)', f"{k} $tag_hostname")
             for k in memory]), unit="bytes", stacked=True),
         timeseries("Load", "", targets(*[
             (f'SELECT mean("value") FROM "load_{k}" WHERE {WHERE} GROUP BY time($interval), '
              '"hostname" fill(none)', f"{k} $tag_hostname")
             for k in ("shortterm", "midterm", "longterm")])),
         timeseries("Processes by state", "", [target(
             f'SELECT max("value") FROM "processes_count" WHERE {WHERE} GROUP BY '
             'time($interval), "hostname", "state" fill(none)', "$tag_state $tag_hostname")],
             stacked=True),
         timeseries("Forks per second", "", [target(
             f'SELECT mean("value") FROM "processes_fork_rate" WHERE {WHERE} GROUP BY '
             'time($interval), "hostname" fill(none)', "$tag_hostname")], unit="ops"),
         stat("Logged-in users", "", [target(
             f'SELECT last("value") FROM "logged_users" WHERE {WHERE} GROUP BY "hostname"',
             "$tag_hostname")], w=8, h=8),
         row("File systems"),
         bargauge("Free space", "Per mount point, now.", [target(
             f'SELECT last("value") FROM "fs_space_percent_free" WHERE {WHERE} GROUP BY '
             '"hostname", "fs"', "$tag_fs ($tag_hostname)")], unit="percent", min=0,
             max=100, thresholds=thresholds((None, "red"), (10, "orange"), (20, "green")),
             w=12),
         timeseries("Space on $mount", "", targets(*[
             (f'SELECT mean("value") FROM "fs_space_{k}" WHERE "fs" =~ /^$mount$/ AND '
              f'{WHERE} GROUP BY time($interval), "hostname", "fs" fill(none)',
              f"{k} $tag_fs") for k in ("used", "reserved", "free")]),
             unit="bytes", stacked=True, w=12),
         row("Disks and network"),
         timeseries("Disk traffic on $disk", "", targets(*[
             (f'SELECT mean("value") FROM "disk_octets_{k}" WHERE "device" =~ /^$disk$/ AND '
              f'{WHERE} GROUP BY time($interval), "hostname", "device" fill(none)',
              f"{k} $tag_device") for k in ("read", "write")]), unit="Bps"),
         timeseries("Disk operations on $disk", "", targets(*[
             (f'SELECT mean("value") FROM "disk_ops_{k}" WHERE "device" =~ /^$disk$/ AND '
              f'{WHERE} GROUP BY time($interval), "hostname", "device" fill(none)',
              f"{k} $tag_device") for k in ("read", "write")]), unit="iops"),
         timeseries("Network traffic on $interface", "", targets(*[
             (f'SELECT mean("value") FROM "if_octets_{k}" WHERE "interface" =~ '
              f'/^$interface$/ AND {WHERE} GROUP BY time($interval), "hostname", '
              '"interface" fill(none)', f"{k} $tag_interface") for k in ("rx", "tx")]),
             unit="Bps"),
         timeseries("Network packets on $interface", "", targets(*[
             (f'SELECT mean("value") FROM "if_packets_{k}" WHERE "interface" =~ '
              f'/^$interface$/ AND {WHERE} GROUP BY time($interval), "hostname", '
              '"interface" fill(none)', f"{k} $tag_interface") for k in ("rx", "tx")]),
             unit="pps"),
         timeseries("Network errors on $interface", "", targets(*[
             (f'SELECT mean("value") FROM "if_errors_{k}" WHERE "interface" =~ '
              f'/^$interface$/ AND {WHERE} GROUP BY time($interval), "hostname", '
              '"interface" fill(none)', f"{k} $tag_interface") for k in ("rx", "tx")]),
             unit="pps"),
         timeseries("Swap", "", targets(*[
             (f'SELECT mean("value") FROM "swap_{k}" WHERE {WHERE} GROUP BY '
              'time($interval), "hostname" fill(none)', f"{k} $tag_hostname")
             for k in ("used", "cached", "free")]), unit="bytes", stacked=True),
         ])


def hypervisor() -> dict[str, Any]:
    vm = f'"instance_id" =~ /^$instance$/ AND {WHERE}'

    def per_vm(measure: str, func: str, extra: str = "", alias: str = "$tag_instance_id"
               ) -> tuple[str, str]:
        return (f'SELECT {func} FROM "{measure}" WHERE {vm} GROUP BY time($interval), '
                f'"instance_id"{extra} fill(none)', alias)

    return dashboard(
        "hekapy-hypervisor", "Hypervisor",
        "A compute node and its instances: the host's CPU and memory, and per instance "
        "(collectd's virt plugin, hekapy's virt_* series) CPU, memory and network.",
        ["system", "collectd", "nova"],
        [environment_variable(),
         hostname_variable('"virt_cpu_time"'),
         query_variable("instance", "Instance",
                        'SHOW TAG VALUES FROM "virt_cpu_time" WITH KEY = "instance_id" '
                        f"WHERE {ENV} AND {HOST}"),
         interval_variable()],
        [row("Host"),
         timeseries("Host CPU", "Per-CPU mean, in % of one CPU.", targets(*[
             (f'SELECT mean("value") FROM "cpu_{c}" WHERE {WHERE} GROUP BY time($interval), '
              '"hostname" fill(none)', f"{c} $tag_hostname")
             for c in ("user", "system", "wait", "steal")]), unit="percent", stacked=True,
             w=12),
         timeseries("Host memory", "", targets(*[
             (f'SELECT mean("value") FROM "memory_{k}" WHERE {WHERE} GROUP BY '
              'time($interval), "hostname" fill(none)', f"{k} $tag_hostname")
             for k in ("used", "cached", "free")]), unit="bytes", stacked=True, w=12),
         row("Instances"),
         table("Instances on the host", "Each instance's memory, as the hypervisor "
               "last reported it.",
               [target(f'SELECT last("value") AS "memory" FROM "virt_memory_total" WHERE '
                       f'{WHERE} GROUP BY "hostname", "instance_id"', table=True)], w=8),
         timeseries("Instance CPU", "CPU time used per second of wall time (1 = one "
                    "CPU busy).", targets(per_vm("virt_cpu_time", 'mean("value") / 1000000000')),
                    unit="short", w=8),
         timeseries("Instance memory", "Memory the hypervisor gives the instance.",
                    targets(per_vm("virt_memory_total", 'last("value")')), unit="bytes", w=8),
         timeseries("Instance network traffic", "Bytes per second, per interface.",
                    targets(*[per_vm(f"virt_if_octets_{k}", 'mean("value")', ', "interface"',
                                     f"{k} $tag_instance_id $tag_interface")
                              for k in ("rx", "tx")]), unit="Bps", w=12),
         timeseries("Instance network packets, errors and drops", "Per second.",
                    targets(*[per_vm(f"virt_if_{kind}_{k}", 'mean("value")', ', "interface"',
                                     f"{kind} {k} $tag_instance_id")
                              for kind in ("packets", "errors", "dropped")
                              for k in ("rx", "tx")]), unit="pps", w=12),
         ])


def hekapy_self() -> dict[str, Any]:
    where = f'"collector" =~ /^$collector$/ AND {WHERE}'

    def by_plugin(field: str, category: str, func: str = "") -> tuple[str, str]:
        func = func or rate(field)
        cat = f"\"category\" = '{category}' AND " if category else ""
        return (f'SELECT {func} FROM "hekapy_plugin" WHERE {cat}{where} GROUP BY '
                'time($interval), "hostname", "collector", "plugin" fill(none)',
                "$tag_collector $tag_plugin")

    def proc(func: str, alias: str) -> tuple[str, str]:
        return (f'SELECT {func} FROM "hekapy_collector" WHERE {where} GROUP BY '
                'time($interval), "hostname", "collector" fill(none)', alias)

    return dashboard(
        "hekapy-self", "hekapy Self-Monitoring",
        "hekapy's own counters, written by HekapyStatsInput: per plugin messages, errors, "
        "retries, drops and dead letters, queues, disk buffers, and each collector "
        "process's memory and CPU.",
        ["self-monitoring"],
        [environment_variable(),
         hostname_variable('"hekapy_collector"'),
         query_variable("collector", "Collector",
                        'SHOW TAG VALUES FROM "hekapy_collector" WITH KEY = "collector" '
                        f"WHERE {ENV} AND {HOST}"),
         interval_variable()],
        [row("Collectors"),
         stat("Uptime", "", [target(*proc('last("uptime_seconds")',
                                          "$tag_hostname $tag_collector"))], unit="s",
              w=6, h=6),
         timeseries("Resident memory", "", targets(proc('max("rss_bytes")',
                                                        "$tag_collector")),
                    unit="bytes", w=6, h=6),
         timeseries("CPU", "CPU time per second of wall time (100% = one core).",
                    targets(proc(rate("cpu_seconds"), "$tag_collector")),
                    unit="percentunit", w=6, h=6),
         timeseries("Messages routed per second", "And those no filter or output took.",
                    targets(proc(rate("routed_messages"), "$tag_collector routed"),
                            proc(rate("unmatched_messages"), "$tag_collector unmatched")),
                    unit="ops", w=6, h=6),
         row("Plugins"),
         timeseries("Input messages per second", "What each input delivered.",
                    targets(by_plugin("messages_out", "input")), unit="ops"),
         timeseries("Output messages per second", "What each output's server stored.",
                    targets(by_plugin("messages_out", "output")), unit="ops"),
         timeseries("Filter messages per second", "What each filter received.",
                    targets(by_plugin("messages_in", "filter")), unit="ops"),
         timeseries("Decode failures per second", "Per decoder.",
                    targets(by_plugin("decode_failures", "decoder")), unit="ops"),
         timeseries("Retried, dropped and dead-lettered per second", "Per output.",
                    targets(*[(q.replace(" FROM", f' AS "{f}" FROM', 1), f"$tag_plugin {f}")
                              for f in ("retried", "dropped", "dead_lettered")
                              for q, _alias in [by_plugin(f, "output")]]), unit="ops"),
         timeseries("Errors and restarts per second", "Every plugin.",
                    targets(*[(q.replace(" FROM", f' AS "{f}" FROM', 1), f"$tag_plugin {f}")
                              for f in ("errors", "restarts")
                              for q, _alias in [by_plugin(f, "")]]), unit="ops"),
         state_timeline("Plugins running", "0 once a plugin gave up for good.",
                        targets(by_plugin("up", "", 'min("up")')), w=24),
         row("Queues and buffers"),
         timeseries("Queue fill", "Each filter and output queue, of its bound.",
                    [target(f'SELECT max("fill_ratio") FROM "hekapy_queue" WHERE {where} '
                            'GROUP BY time($interval), "collector", "plugin", "queue" '
                            "fill(none)", "$tag_plugin $tag_queue")],
                    unit="percentunit", min=0, max=1),
         timeseries("Disk buffers", "Bytes waiting in each output's disk buffer.",
                    [target(f'SELECT max("bytes") FROM "hekapy_buffer" WHERE {where} '
                            'GROUP BY time($interval), "collector", "plugin" fill(none)',
                            "$tag_plugin")], unit="bytes"),
         timeseries("Output retrying", "Seconds each output has retried without "
                    "storing a message.",
                    targets(by_plugin("retrying_seconds", "output",
                                      'max("retrying_seconds")')), unit="s"),
         timeseries("Unacknowledged batches", "Per input: read, not yet stored by every "
                    "output.", targets(by_plugin("unacked_batches", "input",
                                                 'max("unacked_batches")')), w=12),
         timeseries("Matcher time", "Share of the time the router spent in each "
                    "output's message_matcher.",
                    targets(by_plugin("matcher_seconds", "output")), unit="percentunit",
                    w=12),
         ])


DASHBOARDS = {"overview": overview, "openstack-services": openstack_services,
              "haproxy": haproxy, "lbaas": lbaas, "system": system,
              "hypervisor": hypervisor, "hekapy": hekapy_self}


# --- alert rules --------------------------------------------------------------------------

def _query(ref: str, query: str, seconds: int) -> dict[str, Any]:
    return {"refId": ref, "relativeTimeRange": {"from": seconds, "to": 0},
            "datasourceUid": DATASOURCE_UID,
            "model": {"refId": ref, "datasource": DATASOURCE, "rawQuery": True,
                      "query": query, "resultFormat": "time_series",
                      "intervalMs": 60000, "maxDataPoints": 43200}}


def _expr(ref: str, kind: str, **model: Any) -> dict[str, Any]:
    return {"refId": ref, "relativeTimeRange": {"from": 0, "to": 0},
            "datasourceUid": "__expr__",
            "model": {"refId": ref, "type": kind,
                      "datasource": {"type": "__expr__", "uid": "__expr__"}, **model}}


def _threshold(ref: str, of: str, op: str, value: float) -> dict[str, Any]:
    return _expr(ref, "threshold", expression=of,
                 conditions=[{"evaluator": {"type": op, "params": [value]}}])


def rule(uid: str, title: str, summary: str, data: list[dict[str, Any]], for_: str,
         severity: str, no_data: str = "OK", dashboard_uid: str = "") -> dict[str, Any]:
    r: dict[str, Any] = {
        "uid": uid, "title": title, "condition": data[-1]["refId"], "data": data,
        "noDataState": no_data, "execErrState": "Error", "for": for_,
        "annotations": {"summary": summary}, "labels": {"severity": severity},
        "isPaused": False}
    if dashboard_uid:
        r["annotations"]["dashboardUid"] = dashboard_uid
    return r


def alert_rules() -> dict[str, Any]:
    env = '"environment_label" =~ /.*/'  # every environment; labels tell them apart
    openstack = []
    for s in SERVICES:
        m = http_measurement(s)
        openstack.append(rule(
            f"hekapy-api-5xx-{s}", f"{s} API: 5xx responses",
            f"More than 5% of {s}'s API requests got a 5xx answer on "
            "{{ $labels.hostname }} over 5 minutes.",
            [_query("A", f'SELECT sum("count") FROM {m} WHERE "http_status" = \'5xx\' AND '
                         f'{env} AND $timeFilter GROUP BY "hostname", "environment_label"',
                    300),
             _query("B", f'SELECT sum("count") FROM {m} WHERE {env} AND $timeFilter '
                         'GROUP BY "hostname", "environment_label"', 300),
             _expr("C", "reduce", expression="A", reducer="last"),
             _expr("D", "reduce", expression="B", reducer="last"),
             _expr("E", "math", expression="$C / $D"),
             _threshold("F", "E", "gt", 0.05)],
            "5m", "critical", dashboard_uid="hekapy-openstack-services"))
    openstack.append(rule(
        "hekapy-log-errors", "OpenStack service logging errors",
        "{{ $labels.service }} on {{ $labels.hostname }} logs more than 0.1 "
        "{{ $labels.level }} lines per second.",
        [_query("A", f'SELECT mean("value") FROM "log_messages" WHERE "level" =~ '
                     f"/^({ERROR_LEVELS})$/ AND {env} AND $timeFilter GROUP BY "
                     '"service", "level", "hostname", "environment_label"', 300),
         _expr("B", "reduce", expression="A", reducer="last"),
         _threshold("C", "B", "gt", 0.1)],
        "5m", "warning", dashboard_uid="hekapy-openstack-services"))
    balancing = [
        rule("hekapy-haproxy-server-down", "HAProxy backend server down",
             "{{ $labels.backend }} on {{ $labels.hostname }} has "
             "{{ $values.B }} server(s) down.",
             [_query("A", 'SELECT last("value") FROM "haproxy_backend_servers" WHERE '
                          f"\"state\" = 'down' AND {CONTROLLER} AND {env} AND $timeFilter "
                          'GROUP BY "hostname", "backend", "environment_label"', 300),
              _expr("B", "reduce", expression="A", reducer="last"),
              _threshold("C", "B", "gt", 0)],
             "2m", "warning", dashboard_uid="hekapy-haproxy"),
        rule("hekapy-haproxy-backend-down", "HAProxy backend without a server",
             "{{ $labels.backend }} on {{ $labels.hostname }} has no server up.",
             [_query("A", 'SELECT last("value") FROM "haproxy_backend_status" WHERE '
                          f"{CONTROLLER} AND {env} AND $timeFilter GROUP BY \"hostname\", "
                          '"backend", "environment_label"', 300),
              _expr("B", "reduce", expression="A", reducer="last"),
              _threshold("C", "B", "lt", 1)],
             "1m", "critical", dashboard_uid="hekapy-haproxy"),
        rule("hekapy-lbaas-member-down", "LBaaS load balancer member down",
             "Member {{ $labels.server }} of load balancer {{ $labels.loadbalancer_id }}"
             "{{ $labels.pool_id }} is down.",
             [_query("A", 'SELECT last("value") FROM "haproxy_backend_server" WHERE '
                          f"{TENANT} AND {env} AND $timeFilter GROUP BY \"hostname\", "
                          '"loadbalancer_id", "pool_id", "server", "environment_label"',
                     300),
              _expr("B", "reduce", expression="A", reducer="last"),
              _threshold("C", "B", "lt", 1)],
             "2m", "warning", dashboard_uid="hekapy-lbaas"),
    ]
    own = [
        rule("hekapy-output-retrying", "hekapy output retrying",
             "Output {{ $labels.plugin }} of {{ $labels.collector }} on "
             "{{ $labels.hostname }} has retried for {{ $values.B }} s without storing "
             "a message.",
             [_query("A", 'SELECT last("retrying_seconds") FROM "hekapy_plugin" WHERE '
                          f"\"category\" = 'output' AND {env} AND $timeFilter GROUP BY "
                          '"hostname", "collector", "plugin", "environment_label"', 300),
              _expr("B", "reduce", expression="A", reducer="last"),
              _threshold("C", "B", "gt", 120)],
             "1m", "warning", dashboard_uid="hekapy-self"),
        rule("hekapy-disk-buffer-filling", "hekapy disk buffer filling",
             "The disk buffer of {{ $labels.plugin }} ({{ $labels.collector }} on "
             "{{ $labels.hostname }}) is over 80% of its max_buffer_size.",
             [_query("A", 'SELECT last("fill_ratio") FROM "hekapy_buffer" WHERE '
                          f'{env} AND $timeFilter GROUP BY "hostname", "collector", '
                          '"plugin", "environment_label"', 300),
              _expr("B", "reduce", expression="A", reducer="last"),
              _threshold("C", "B", "gt", 0.8)],
             "5m", "warning", dashboard_uid="hekapy-self"),
        rule("hekapy-collector-silent", "hekapy collector stopped sending",
             "{{ $labels.collector }} on {{ $labels.hostname }} sent no counters for "
             "5 minutes (it reported in the last hour).",
             # A collector seen in the last hour has a 5-minute bucket for every interval
             # (fill(0)); the newest one counts its latest points.
             [_query("A", 'SELECT count("uptime_seconds") FROM "hekapy_collector" WHERE '
                          f"{env} AND $timeFilter GROUP BY time(5m), \"hostname\", "
                          '"collector", "environment_label" fill(0)', 3600),
              _expr("B", "reduce", expression="A", reducer="last"),
              _threshold("C", "B", "lt", 1)],
             "5m", "critical", dashboard_uid="hekapy-self"),
    ]
    groups = [("openstack", openstack), ("load-balancing", balancing), ("hekapy", own)]
    return {"apiVersion": 1, "groups": [
        {"orgId": 1, "name": name, "folder": FOLDER, "interval": "1m", "rules": rules}
        for name, rules in groups]}


# --- provisioning ---------------------------------------------------------------------------

def datasource() -> dict[str, Any]:
    return {"apiVersion": 1, "datasources": [{
        "name": "hekapy InfluxDB", "uid": DATASOURCE_UID, "type": "influxdb",
        "access": "proxy", "url": "${INFLUXDB_URL}", "database": "lma",
        "user": "${INFLUXDB_USER}", "isDefault": False, "editable": False,
        "jsonData": {"dbName": "lma", "httpMode": "POST", "timeInterval": "10s"},
        "secureJsonData": {"password": "${INFLUXDB_PASSWORD}"}}]}


def dashboard_provider() -> dict[str, Any]:
    return {"apiVersion": 1, "providers": [{
        "name": "hekapy", "orgId": 1, "folder": FOLDER, "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": "/var/lib/grafana/dashboards/hekapy",
                    "foldersFromFilesStructure": False}}]}


HEADER = ("# Generated by conf/grafana/build.py (edit that, then run it); "
          "docs/dashboards.md.\n")


def _yaml(doc: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def generate() -> dict[Path, str]:
    """Every generated file (relative to conf/grafana/) and its text."""
    files = {Path("dashboards") / f"{name}.json":
             json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
             for name, build in DASHBOARDS.items()}
    files[Path("provisioning/datasources/hekapy-influxdb.yaml")] = _yaml(datasource())
    files[Path("provisioning/dashboards/hekapy.yaml")] = _yaml(dashboard_provider())
    files[Path("provisioning/alerting/hekapy-rules.yaml")] = _yaml(alert_rules())
    return files


def main(argv: list[str]) -> int:
    stale = []
    for rel, text in generate().items():
        path = HERE / rel
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if "--check" in argv:
            stale.append(str(rel))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote conf/grafana/{rel}")
    if stale:
        print("out of date (run conf/grafana/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
