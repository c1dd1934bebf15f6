"""conf/kibana/*.ndjson: the committed saved objects are the builder's
(collector/app/kibana_objects.py), in the saved-objects export format, and every
reference resolves inside the file that holds it (each file imports alone)."""

from __future__ import annotations

import json

import pytest

from hekapy.collector.app import kibana_objects
from tests.helpers.paths import CONF

KIBANA = CONF / "kibana"


def load(name: str) -> tuple[list[dict], dict]:
    lines = (KIBANA / name).read_text().splitlines()
    *objects, summary = (json.loads(line) for line in lines)
    return objects, summary


def test_committed_files_are_the_builders_output():
    wanted = kibana_objects.rendered()
    assert sorted(p.name for p in KIBANA.glob("*.ndjson")) == sorted(wanted)
    for name, text in wanted.items():
        assert (KIBANA / name).read_text() == text, (
            f"conf/kibana/{name} differs from the builder: run "
            "python -m hekapy.collector.app.kibana_objects conf/kibana")


@pytest.mark.parametrize("name", sorted(kibana_objects.FILES))
def test_export_format_and_references_resolve_in_the_file(name):
    objects, summary = load(name)
    assert summary["exportedCount"] == len(objects) and summary["missingRefCount"] == 0
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects)
    for o in objects:
        assert set(o) == {"attributes", "id", "migrationVersion", "references", "type"}
        assert o["migrationVersion"] == {o["type"]: kibana_objects.MIGRATION_VERSION[
            o["type"]]}
        names = [r["name"] for r in o["references"]]
        assert len(names) == len(set(names)), o["id"]
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, f"{o['id']} → {ref}"
        attrs = o["attributes"]
        source = json.loads(attrs.get("kibanaSavedObjectMeta", {}).get(
            "searchSourceJSON", "{}"))
        if "indexRefName" in source:
            assert source["indexRefName"] in names
        if o["type"] == "visualization":
            state = json.loads(attrs["visState"])
            assert state["title"] == attrs["title"]
            assert state["type"] in {"histogram", "table", "pie", "input_control_vis"}
            for control in state["params"].get("controls", []):
                assert control["indexPatternRefName"] in names
        if o["type"] == "dashboard":
            panels = json.loads(attrs["panelsJSON"])
            assert [p["panelRefName"] for p in panels] == names
            cells = set()
            for p in panels:
                g = p["gridData"]
                assert g["x"] + g["w"] <= kibana_objects.GRID_COLUMNS
                area = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                        for y in range(g["y"], g["y"] + g["h"])}
                assert not cells & area, f"{o['id']}: panel {p['panelIndex']} overlaps"
                cells |= area


def test_three_patterns_on_timestamp_and_a_dashboard_each():
    seen = {}
    for name in kibana_objects.FILES:
        objects, _ = load(name)
        patterns = [o for o in objects if o["type"] == "index-pattern"]
        boards = [o for o in objects if o["type"] == "dashboard"]
        assert len(patterns) == 1 and len(boards) == 1
        seen[patterns[0]["attributes"]["title"]] = boards[0]["attributes"]["title"]
        assert patterns[0]["attributes"]["timeFieldName"] == "Timestamp"
        # Each dashboard opens with the environment filter, and shows a saved search.
        by_id = {o["id"]: o for o in objects}
        first = by_id[boards[0]["references"][0]["id"]]
        controls = json.loads(first["attributes"]["visState"])["params"]["controls"]
        assert controls[0]["fieldName"] == "environment_label"
        assert any(r["type"] == "search" for r in boards[0]["references"])
        # Nothing in the file is left out of its dashboard but the pattern and
        # extra saved searches.
        shown = {r["id"] for r in boards[0]["references"]}
        assert {o["id"] for o in objects if o["type"] == "visualization"} <= shown
    assert seen == {"log-*": "Logs", "notification-*": "Notifications", "audit-*": "Audit"}


def test_request_id_drill_down_filters_the_whole_logs_dashboard():
    objects, _ = load("logs.ndjson")
    by_id = {o["id"]: o for o in objects}
    table = json.loads(by_id["hekapy-logs-requests"]["attributes"]["visState"])
    # A table's row bucket: a click on a request id adds a dashboard filter, which the
    # saved search panel below follows.
    assert table["type"] == "table"
    assert table["aggs"][1]["params"]["field"] == "request_id"
    assert "request_id" in by_id["hekapy-search-logs"]["attributes"]["columns"]
