"""The Kibana / OpenSearch Dashboards saved objects under conf/kibana/, built here and
committed as NDJSON in the saved-objects export format (tests/conf/test_kibana_objects.py
holds the files to this builder): `python -m hekapy.collector.app.kibana_objects
conf/kibana` writes them again.

One file per index pattern, each importable alone (`hekapy dashboards install`, or
Stack Management → Saved objects → Import):

- logs.ndjson, `log-*`: a Logs dashboard: messages over time per severity and per
  service (Logger), per program and per host, the loggers with the most errors, the
  requests with the most messages (a click on a request id filters the whole dashboard,
  saved search included, to that request), and the Logs saved search;
- notifications.ndjson, `notification-*`: event types over time and in total, instance
  state changes (`compute.instance.update`: old state → state), per tenant and per
  publisher, and the Notifications and Instance state changes searches;
- audit.ndjson, `audit-*`: CADF events over time per outcome, actions per outcome,
  initiators (user, project, address), targets (type, id), failed actions, and the
  Audit search.

Every dashboard starts with a controls panel (environment_label and the fields that
fit) whose choices become dashboard filters. The objects use Kibana 7.10's format
(aggregation-based visualizations, `input_control_vis`), which Kibana 7.10 to 8.x and
OpenSearch Dashboards 1 and 2 import; their `migrationVersion` says so, so newer
servers migrate them on import. Fields are the ones hekapy's documents carry, mapped
by hekapy's index templates (outputs/elasticsearch/templates.py): aggregations only on
keywords, numbers and dates.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The 7.10 format, as Kibana 7.10 and OpenSearch Dashboards 1.x/2.x export it.
MIGRATION_VERSION = {"index-pattern": "7.6.0", "search": "7.9.3",
                     "visualization": "7.10.0", "dashboard": "7.9.3"}
PANEL_VERSION = "7.10.0"
TIME_FIELD = "Timestamp"
GRID_COLUMNS = 48
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _source(query: str = "", with_index: bool = True, **extra: Any) -> dict[str, str]:
    body: dict[str, Any] = {**extra, "query": {"query": query, "language": "kuery"},
                            "filter": []}
    if with_index:
        body["indexRefName"] = INDEX_REF
    return {"searchSourceJSON": _json(body)}


def _object(kind: str, object_id: str, attributes: dict[str, Any],
            references: list[dict[str, str]]) -> dict[str, Any]:
    return {"attributes": attributes, "id": object_id, "migrationVersion":
            {kind: MIGRATION_VERSION[kind]}, "references": references, "type": kind}


def index_pattern(pattern: str) -> dict[str, Any]:
    """A data view on `pattern`, time field Timestamp. Its field list is left to the
    server, which reads it from the mappings when the pattern is first used."""
    return _object("index-pattern", pattern_id(pattern),
                   {"title": pattern, "timeFieldName": TIME_FIELD}, [])


def pattern_id(pattern: str) -> str:
    return "hekapy-" + pattern.rstrip("-*")


def saved_search(object_id: str, title: str, pattern: str, columns: list[str],
                 query: str = "", description: str = "") -> dict[str, Any]:
    return _object("search", object_id, {
        "title": title, "description": description, "hits": 0, "columns": columns,
        "sort": [[TIME_FIELD, "desc"]], "version": 1,
        "kibanaSavedObjectMeta": _source(query, highlightAll=True, version=True),
    }, [{"name": INDEX_REF, "type": "index-pattern", "id": pattern_id(pattern)}])


# --- aggregations ----------------------------------------------------------------------

def count() -> dict[str, Any]:
    return {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def over_time(agg_id: str = "2") -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": "date_histogram", "schema": "segment",
            "params": {"field": TIME_FIELD, "useNormalizedEsInterval": True,
                       "scaleMetricValues": False, "interval": "auto",
                       "drop_partials": False, "min_doc_count": 1, "extended_bounds": {}}}


def terms(agg_id: str, field: str, size: int, schema: str, label: str = "",
          missing: bool = False) -> dict[str, Any]:
    params: dict[str, Any] = {
        "field": field, "orderBy": "1", "order": "desc", "size": size,
        "otherBucket": False, "otherBucketLabel": "Other",
        "missingBucket": missing, "missingBucketLabel": "(none)"}
    if label:
        params["customLabel"] = label
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema,
            "params": params}


# --- visualizations --------------------------------------------------------------------

def _xy_params(chart: str, mode: str) -> dict[str, Any]:
    return {
        "type": chart, "addTooltip": True, "addLegend": True, "legendPosition": "right",
        "times": [], "addTimeMarker": False, "labels": {"show": False},
        "grid": {"categoryLines": False},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom",
                          "show": True, "style": {}, "scale": {"type": "linear"},
                          "labels": {"show": True, "filter": True, "truncate": 100},
                          "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value",
                       "position": "left", "show": True, "style": {},
                       "scale": {"type": "linear", "mode": "normal"},
                       "labels": {"show": True, "rotate": 0, "filter": False,
                                  "truncate": 100},
                       "title": {"text": "Count"}}],
        "seriesParams": [{"show": True, "type": chart, "mode": mode,
                          "data": {"label": "Count", "id": "1"},
                          "valueAxis": "ValueAxis-1", "drawLinesBetweenPoints": True,
                          "lineWidth": 2, "showCircles": True}],
    }


TABLE_PARAMS = {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False,
                "showTotal": False, "totalFunc": "sum", "percentageCol": ""}
PIE_PARAMS = {"type": "pie", "addTooltip": True, "addLegend": True,
              "legendPosition": "right", "isDonut": True,
              "labels": {"show": False, "values": True, "last_level": True,
                         "truncate": 100}}


def visualization(object_id: str, title: str, pattern: str, vis_type: str,
                  aggs: list[dict[str, Any]], params: dict[str, Any], query: str = "",
                  description: str = "") -> dict[str, Any]:
    state = {"title": title, "type": vis_type, "aggs": aggs, "params": params}
    return _object("visualization", object_id, {
        "title": title, "description": description, "version": 1, "uiStateJSON": "{}",
        "visState": _json(state), "kibanaSavedObjectMeta": _source(query),
    }, [{"name": INDEX_REF, "type": "index-pattern", "id": pattern_id(pattern)}])


def stacked_over_time(object_id: str, title: str, pattern: str, split: str, size: int,
                      query: str = "") -> dict[str, Any]:
    """Messages per interval, one stacked colour per value of `split`."""
    return visualization(object_id, title, pattern, "histogram",
                         [count(), over_time(), terms("3", split, size, "group")],
                         _xy_params("histogram", "stacked"), query)


def bars_by(object_id: str, title: str, pattern: str, field: str, size: int,
            split: str | None = None, query: str = "") -> dict[str, Any]:
    """One bar per value of `field`, stacked by `split`."""
    aggs = [count(), terms("2", field, size, "segment")]
    if split:
        aggs.append(terms("3", split, 8, "group"))
    return visualization(object_id, title, pattern, "histogram", aggs,
                         _xy_params("histogram", "stacked"), query)


def table(object_id: str, title: str, pattern: str, rows: list[tuple[str, int, str]],
          query: str = "", description: str = "") -> dict[str, Any]:
    """Counts per combination of the rows' fields (field, size, column label); a click
    on a cell filters the dashboard on that value."""
    aggs = [count()] + [terms(str(i + 2), field, size, "bucket", label, missing=True)
                        for i, (field, size, label) in enumerate(rows)]
    return visualization(object_id, title, pattern, "table", aggs, dict(TABLE_PARAMS),
                         query, description)


def pie(object_id: str, title: str, pattern: str, field: str, size: int,
        query: str = "") -> dict[str, Any]:
    return visualization(object_id, title, pattern, "pie",
                         [count(), terms("2", field, size, "segment")], dict(PIE_PARAMS),
                         query)


def controls(object_id: str, title: str, pattern: str,
             fields: list[tuple[str, str]]) -> dict[str, Any]:
    """Drop-downs whose choices become dashboard filters (field, label)."""
    ctl = [{"id": str(i + 1), "fieldName": field, "label": label, "type": "list",
            "parent": "", "indexPatternRefName": f"control_{i}_index_pattern",
            "options": {"type": "terms", "multiselect": True, "dynamicOptions": True,
                        "size": 20, "order": "desc"}}
           for i, (field, label) in enumerate(fields)]
    state = {"title": title, "type": "input_control_vis", "aggs": [], "params": {
        "controls": ctl, "updateFiltersOnChange": True, "useTimeFilter": True,
        "pinFilters": False}}
    return _object("visualization", object_id, {
        "title": title, "description": "", "version": 1, "uiStateJSON": "{}",
        "visState": _json(state), "kibanaSavedObjectMeta": _source(with_index=False),
    }, [{"name": f"control_{i}_index_pattern", "type": "index-pattern",
         "id": pattern_id(pattern)} for i in range(len(fields))])


def dashboard(object_id: str, title: str, description: str,
              rows: list[list[tuple[dict[str, Any], int, int]]]) -> dict[str, Any]:
    """Panels laid out row by row on the 48-column grid: (object, width, height)."""
    panels: list[dict[str, Any]] = []
    references: list[dict[str, str]] = []
    y = 0
    for row in rows:
        x = 0
        for obj, width, height in row:
            n = len(panels)
            panels.append({"version": PANEL_VERSION, "panelIndex": str(n + 1),
                           "gridData": {"x": x, "y": y, "w": width, "h": height,
                                        "i": str(n + 1)},
                           "embeddableConfig": {}, "panelRefName": f"panel_{n}"})
            references.append({"name": f"panel_{n}", "type": obj["type"], "id": obj["id"]})
            x += width
        assert x <= GRID_COLUMNS, f"{title}: a row wider than the grid"
        y += max(h for _, _, h in row)
    return _object("dashboard", object_id, {
        "title": title, "description": description, "hits": 0, "version": 1,
        "panelsJSON": _json(panels),
        "optionsJSON": _json({"hidePanelTitles": False, "useMargins": True}),
        "timeRestore": True, "timeFrom": "now-24h", "timeTo": "now",
        "refreshInterval": {"pause": False, "value": 60000},
        "kibanaSavedObjectMeta": _source(with_index=False),
    }, references)


# --- the three files -------------------------------------------------------------------

def logs() -> list[dict[str, Any]]:
    p = "log-*"
    search = saved_search(
        "hekapy-search-logs", "Logs", p,
        ["Hostname", "programname", "severity_label", "python_module", "request_id",
         "Payload", "environment_label"],
        description="Every log message, newest first; filter on request_id to follow a "
                    "request across services")
    errors = "Severity <= 3"
    vis = [
        controls("hekapy-logs-controls", "Logs: filters", p,
                 [("environment_label", "Environment"), ("Hostname", "Host"),
                  ("Logger", "Service"), ("severity_label", "Severity")]),
        stacked_over_time("hekapy-logs-per-severity", "Log messages per severity", p,
                          "severity_label", 8),
        stacked_over_time("hekapy-logs-per-service", "Log messages per service", p,
                          "Logger", 15),
        bars_by("hekapy-logs-per-program", "Log messages per program", p, "programname", 15,
                split="severity_label"),
        bars_by("hekapy-logs-per-host", "Log messages per host", p, "Hostname", 15,
                split="severity_label"),
        table("hekapy-logs-error-loggers", "Top error loggers", p,
              [("programname", 10, "Program"), ("python_module", 10, "Logger")],
              query=errors,
              description="Messages of severity ERROR or worse per program and logger"),
        table("hekapy-logs-requests", "Requests with the most messages", p,
              [("request_id", 15, "Request"), ("programname", 5, "Program")],
              query="request_id:*",
              description="Click a request id to see only that request's messages"),
    ]
    board = dashboard(
        "hekapy-dashboard-logs", "Logs",
        "OpenStack and system logs shipped by hekapy: rates per severity, service, "
        "program and host, the loggers with errors, and a drill-down by request id",
        [[(vis[0], 48, 5)],
         [(vis[1], 24, 13), (vis[2], 24, 13)],
         [(vis[3], 24, 13), (vis[4], 24, 13)],
         [(vis[5], 24, 14), (vis[6], 24, 14)],
         [(search, 48, 20)]])
    return [index_pattern(p), search, *vis, board]


def notifications() -> list[dict[str, Any]]:
    p = "notification-*"
    state_changes = "event_type:compute.instance.update"
    searches = [
        saved_search("hekapy-search-notifications", "Notifications", p,
                     ["Logger", "publisher", "event_type", "Hostname", "tenant_id",
                      "instance_id", "display_name", "old_state", "state",
                      "new_task_state", "severity_label", "environment_label"]),
        saved_search("hekapy-search-instance-state-changes", "Instance state changes", p,
                     ["Hostname", "instance_id", "display_name", "old_state", "state",
                      "old_task_state", "new_task_state", "tenant_id"],
                     query=state_changes),
    ]
    vis = [
        controls("hekapy-notifications-controls", "Notifications: filters", p,
                 [("environment_label", "Environment"), ("Logger", "Service"),
                  ("publisher", "Publisher"), ("event_type", "Event type")]),
        stacked_over_time("hekapy-notifications-event-types-over-time",
                          "Notifications per event type", p, "event_type", 15),
        table("hekapy-notifications-event-types", "Event types", p,
              [("event_type", 30, "Event type"), ("Logger", 5, "Service")]),
        table("hekapy-notifications-state-changes", "Instance state changes", p,
              [("old_state", 10, "From"), ("state", 10, "To"),
               ("new_task_state", 10, "Task")], query=state_changes,
              description="compute.instance.update notifications: state transitions"),
        stacked_over_time("hekapy-notifications-state-changes-over-time",
                          "Instance states over time", p, "state", 10,
                          query=state_changes),
        table("hekapy-notifications-per-tenant", "Notifications per tenant", p,
              [("tenant_id", 15, "Tenant"), ("event_type", 5, "Event type")]),
        bars_by("hekapy-notifications-per-publisher", "Notifications per publisher", p,
                "publisher", 10, split="Hostname"),
        pie("hekapy-notifications-per-severity", "Notifications per severity", p,
            "severity_label", 8),
    ]
    board = dashboard(
        "hekapy-dashboard-notifications", "Notifications",
        "OpenStack notifications shipped by hekapy: event types, instance state changes, "
        "tenants and publishers",
        [[(vis[0], 48, 5)],
         [(vis[1], 32, 13), (vis[7], 16, 13)],
         [(vis[2], 24, 14), (vis[3], 24, 14)],
         [(vis[4], 24, 13), (vis[5], 24, 13)],
         [(vis[6], 48, 13)],
         [(searches[0], 48, 20)]])
    return [index_pattern(p), *searches, *vis, board]


def audit() -> list[dict[str, Any]]:
    p = "audit-*"
    search = saved_search(
        "hekapy-search-audit", "Audit", p,
        ["Logger", "notification_type", "action", "outcome", "initiator_name",
         "initiator_id", "initiator_host_address", "target_type_uri", "target_id",
         "reason_code", "environment_label"],
        description="CADF audit events: who (initiator) did what (action) to what "
                    "(target), and how it ended (outcome)")
    failed = "outcome:failure"
    vis = [
        controls("hekapy-audit-controls", "Audit: filters", p,
                 [("environment_label", "Environment"), ("outcome", "Outcome"),
                  ("action", "Action"), ("initiator_name", "User")]),
        stacked_over_time("hekapy-audit-outcomes-over-time", "Audit events per outcome",
                          p, "outcome", 5),
        bars_by("hekapy-audit-actions", "Actions per outcome", p, "action", 15,
                split="outcome"),
        table("hekapy-audit-initiators", "Initiators", p,
              [("initiator_id", 15, "User id"), ("initiator_name", 1, "User"),
               ("initiator_project_id", 3, "Project"),
               ("initiator_host_address", 3, "Address")],
              description="Who acted: user, project and client address"),
        table("hekapy-audit-targets", "Targets", p,
              [("target_type_uri", 15, "Target type"), ("target_id", 5, "Target id"),
               ("action", 5, "Action")]),
        table("hekapy-audit-failures", "Failed actions", p,
              [("action", 10, "Action"), ("initiator_id", 10, "User id"),
               ("initiator_host_address", 5, "Address"), ("reason_code", 5, "Reason")],
              query=failed, description="Events whose outcome is failure"),
        pie("hekapy-audit-observers", "Observers", p, "observer_type_uri", 10),
    ]
    board = dashboard(
        "hekapy-dashboard-audit", "Audit",
        "CADF audit events (Keystone, keystonemiddleware) shipped by hekapy: actions, "
        "outcomes, initiators and targets",
        [[(vis[0], 48, 5)],
         [(vis[1], 32, 13), (vis[6], 16, 13)],
         [(vis[2], 24, 14), (vis[5], 24, 14)],
         [(vis[3], 24, 15), (vis[4], 24, 15)],
         [(search, 48, 20)]])
    return [index_pattern(p), search, *vis, board]


FILES = {"logs.ndjson": logs, "notifications.ndjson": notifications,
         "audit.ndjson": audit}


def render(objects: list[dict[str, Any]]) -> str:
    """NDJSON as Kibana exports it: one object per line, then the export summary
    (which the import API skips)."""
    lines = [json.dumps(o, sort_keys=True, ensure_ascii=False) for o in objects]
    lines.append(json.dumps({"excludedObjects": [], "excludedObjectsCount": 0,
                             "exportedCount": len(objects), "missingRefCount": 0,
                             "missingReferences": []}, sort_keys=True))
    return "\n".join(lines) + "\n"


def rendered() -> dict[str, str]:
    return {name: render(build()) for name, build in FILES.items()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hekapy.collector.app.kibana_objects DIRECTORY",
              file=sys.stderr)
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
