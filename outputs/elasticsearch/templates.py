"""LMA's index templates (`log`, `notification`, `audit`), rewritten for current
Elasticsearch (7.8+, 8.x) and OpenSearch (1.x, 2.x): composable `_index_template`s
without mapping types, `keyword` for LMA's not_analyzed strings, `text` for Payload, so
`http_status` is an integer and ids are keywords whatever the first document of a day
looks like (the trap of dynamic mapping, ES #18917).

Beyond LMA's: the notification fields and the CADF parties of audit events that the
Kibana dashboards (conf/kibana/) aggregate on are keywords, numbers and dates up front,
since a dynamically mapped string is `text`, which Kibana cannot split a chart by.

`hekapy es-setup` installs them (collector/app/es_setup.py), on Elasticsearch with the
ILM policy that deletes old indices (retention.py) named in their settings.
"""

from __future__ import annotations

from typing import Any

KEYWORD = {"type": "keyword", "ignore_above": 1024}
ROLES = {"type": "text", "analyzer": "ost_roles", "fields": {"raw": KEYWORD}}
# Both the second-precision LMA format and the ESJsonEncoder's nanosecond default.
TIMESTAMP = {"type": "date",
             "format": "strict_date_optional_time_nanos||yyyy-MM-dd'T'HH:mm:ssZ||epoch_millis"}
# decoders/notification.py writes these as YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM.
NOTIFICATION_DATE = {"type": "date", "format": "date_optional_time"}

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
        "launched_at": NOTIFICATION_DATE, "created_at": NOTIFICATION_DATE,
        "deleted_at": NOTIFICATION_DATE, "terminated_at": NOTIFICATION_DATE,
        # What decoders/notification.py copies from the payload.
        "publisher": KEYWORD, "instance_id": KEYWORD, "network_id": KEYWORD,
        "subnet_id": KEYWORD, "port_id": KEYWORD, "volume_id": KEYWORD,
        "display_name": KEYWORD, "availability_zone": KEYWORD, "instance_type": KEYWORD,
        "image_name": KEYWORD, "state": KEYWORD, "old_state": KEYWORD,
        "old_task_state": KEYWORD, "new_task_state": KEYWORD,
        "replication_status": KEYWORD,
        "vcpus": {"type": "long"}, "memory_mb": {"type": "long"},
        "disk_gb": {"type": "long"}, "size": {"type": "long"},
    },
    "audit": {
        **_COMMON,
        "event_type": KEYWORD, "action": KEYWORD, "notification_type": KEYWORD,
        "outcome": KEYWORD, "request_id": KEYWORD, "reason_code": KEYWORD,
        # CADF's parties (decoders/notification.py): who did what to what, seen by whom.
        "initiator_id": KEYWORD, "initiator_name": KEYWORD, "initiator_type_uri": KEYWORD,
        "initiator_project_id": KEYWORD, "initiator_host_address": KEYWORD,
        "target_id": KEYWORD, "target_name": KEYWORD, "target_type_uri": KEYWORD,
        "observer_id": KEYWORD, "observer_type_uri": KEYWORD,
    },
}


def index_template(name: str, shards: int = 1, replicas: int = 1,
                   ilm_policy: str | None = None) -> dict[str, Any]:
    """The composable template for `<name>-*` (PUT /_index_template/<name>); with
    `ilm_policy`, Elasticsearch's indices get that lifecycle, aged from the date in
    their name (`log-2016.11.04`), so a backfill of old days expires with its days."""
    lifecycle = ({"index.lifecycle.name": ilm_policy,
                  "index.lifecycle.parse_origination_date": True} if ilm_policy else {})
    return {
        "index_patterns": [f"{name}-*"],
        "priority": 100,
        "template": {
            "settings": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                **lifecycle,
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


def all_templates(shards: int = 1, replicas: int = 1, ilm_policy: str | None = None
                  ) -> dict[str, dict[str, Any]]:
    return {name: index_template(name, shards, replicas, ilm_policy) for name in PROPERTIES}
