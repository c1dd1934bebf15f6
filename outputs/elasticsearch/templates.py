"""LMA's index templates (spec/lma.md §4.2: `log`, `notification`, `audit`), rewritten
for current Elasticsearch (7.8+, 8.x) and OpenSearch (1.x, 2.x): composable
`_index_template`s without mapping types, `keyword` for LMA's not_analyzed strings,
`text` for Payload, so `http_status` is an integer and ids are keywords whatever the
first document of a day looks like (the trap of dynamic mapping, ES #18917).

`hekapy es-setup` installs them (collector/app/cli.py).
"""

from __future__ import annotations

from typing import Any

KEYWORD = {"type": "keyword", "ignore_above": 1024}
ROLES = {"type": "text", "analyzer": "ost_roles", "fields": {"raw": KEYWORD}}
# Both the second-precision LMA format and the ESJsonEncoder's nanosecond default.
TIMESTAMP = {"type": "date",
             "format": "strict_date_optional_time_nanos||yyyy-MM-dd'T'HH:mm:ssZ||epoch_millis"}

_COMMON = {
    "Timestamp": TIMESTAMP,
    "Logger": KEYWORD, "Hostname": KEYWORD, "Type": KEYWORD, "severity_label": KEYWORD,
    "environment_label": KEYWORD, "openstack_region": KEYWORD,
    "openstack_release": KEYWORD, "deployment_id": KEYWORD, "openstack_roles": ROLES,
    "Pid": {"type": "long"}, "Severity": {"type": "long"},
    "Payload": {"type": "text"},
}

PROPERTIES: dict[str, dict[str, Any]] = {
    "log": {
        **_COMMON,
        "programname": KEYWORD, "python_module": KEYWORD,
        "request_id": KEYWORD, "global_request_id": KEYWORD, "tenant_id": KEYWORD,
        "user_id": KEYWORD, "instance_id": KEYWORD,
        "http_method": KEYWORD, "http_url": KEYWORD, "http_version": KEYWORD,
        "http_status": {"type": "integer"}, "http_response_time": {"type": "float"},
        "http_response_size": {"type": "long"}, "http_client_ip_address": KEYWORD,
        "syslogfacility": {"type": "long"},
        "loadbalancer_id": KEYWORD, "lbaas_pool_id": KEYWORD,
    },
    "notification": {
        **_COMMON,
        "programname": KEYWORD, "request_id": KEYWORD, "tenant_id": KEYWORD,
        "user_id": KEYWORD, "hostname": KEYWORD, "event_type": KEYWORD,
        "syslogfacility": {"type": "long"},
        "launched_at": {"type": "date", "format": "date_optional_time"},
        "created_at": {"type": "date", "format": "date_optional_time"},
    },
    "audit": {
        **_COMMON,
        "event_type": KEYWORD, "action": KEYWORD, "notification_type": KEYWORD,
        "outcome": KEYWORD,
    },
}


def index_template(name: str, shards: int = 1, replicas: int = 1) -> dict[str, Any]:
    """The composable template for `<name>-*` (PUT /_index_template/<name>)."""
    return {
        "index_patterns": [f"{name}-*"],
        "priority": 100,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                "analysis": {
                    "analyzer": {"ost_roles": {"type": "custom", "tokenizer": "ost_roles",
                                               "filter": ["lowercase"]}},
                    "tokenizer": {"ost_roles": {"type": "pattern", "pattern": ","}},
                },
            },
            "mappings": {
                "dynamic_templates": [{"strings_as_keywords": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "text", "fields": {"raw": KEYWORD}}}}],
                "properties": PROPERTIES[name],
            },
        },
        "_meta": {"managed_by": "hekapy", "origin": "LMA elasticsearch_kibana templates"},
    }


def all_templates(shards: int = 1, replicas: int = 1) -> dict[str, dict[str, Any]]:
    return {name: index_template(name, shards, replicas) for name in PROPERTIES}
