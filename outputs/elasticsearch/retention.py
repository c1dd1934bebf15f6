"""Retention of the log, notification and audit indices: the lifecycle policy that
`hekapy es-setup` installs (collector/app/es_setup.py), deleting an index once it is
`retention_days` old (LMA deleted `log-*` and `notification-*` after 30 days with a
cron job and never purged `audit-*`; here all three expire, by the server itself).

Elasticsearch runs ILM policies, named by the index templates' `index.lifecycle.name`;
OpenSearch runs ISM policies, which name their indices themselves (`ism_template`).
An index's age counts from its creation, so a backfill of old days lives
`retention_days` from the day it was replayed.
"""

from __future__ import annotations

from typing import Any

POLICY_NAME = "hekapy-retention"
INDEX_PATTERNS = ("log-*", "notification-*", "audit-*")


def ilm_policy(retention_days: int) -> dict[str, Any]:
    """PUT /_ilm/policy/<name> (Elasticsearch 7.x, 8.x): one delete phase."""
    return {"policy": {"phases": {"delete": {
        "min_age": f"{retention_days}d", "actions": {"delete": {}}}}}}


def ism_policy(retention_days: int) -> dict[str, Any]:
    """PUT /_plugins/_ism/policies/<name> (OpenSearch 1.x, 2.x): kept, then deleted;
    new indices of INDEX_PATTERNS get it through `ism_template`."""
    return {"policy": {
        "description": f"hekapy: delete {', '.join(INDEX_PATTERNS)} indices "
                       f"{retention_days} days after their creation",
        "default_state": "keep",
        "states": [
            {"name": "keep", "actions": [], "transitions": [
                {"state_name": "delete",
                 "conditions": {"min_index_age": f"{retention_days}d"}}]},
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
        ],
        "ism_template": [{"index_patterns": list(INDEX_PATTERNS), "priority": 100}],
    }}


def same_ism_policy(stored: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the policy OpenSearch holds (GET answer's `policy`) is `wanted`'s: the
    server adds its own keys (policy_id, last_updated_time, schema_version, an
    ism_template's last_updated_time, error_notification), which do not count."""
    want = wanted["policy"]
    templates = [{k: t.get(k) for k in ("index_patterns", "priority")}
                 for t in stored.get("ism_template") or []]
    return (stored.get("description") == want["description"]
            and stored.get("default_state") == want["default_state"]
            and _states(stored.get("states")) == _states(want["states"])
            and templates == want["ism_template"])


def _states(states: Any) -> list[tuple[str, list[str], list[tuple[str, Any]]]]:
    """States by what decides behaviour: name, action kinds, transitions (OpenSearch
    adds retry settings to each action it stores)."""
    out = []
    for state in states or []:
        kinds = [next(k for k in action if k != "retry") for action in state["actions"]]
        moves = [(t["state_name"], t.get("conditions")) for t in state.get("transitions", [])]
        out.append((state["name"], kinds, moves))
    return out
