"""How CollectdDecoder names collectd's values: LMA's naming rules (collectd.lua in
https://github.com/openstack/fuel-plugin-lma-collector) as one small function per
collectd plugin or plugin family, found by plugin name in `NAMING_RULES`.

A rule gets the `Metric` being built (name, value and source already set) and the
`CollectdValue` it comes from; it sets the metric's name and its dimensions (`tag`), may
change the value or the node (`hostname`), or drops the value (`drop`). A plugin with no
rule of its own gets `default_rule`: `type[_type_instance][_dsname]`, dots → "_".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# Plugins whose metrics describe the cloud, not the node that polled it: no hostname
# tag unless the sample's meta names a host.
CLUSTER_WIDE_PLUGINS = frozenset((
    "ceph_mon", "ceph_pool", "check_openstack_api", "cinder", "glance", "http_check",
    "hypervisor_stats", "keystone", "neutron", "nova", "pacemaker"))

# collectd's plugin for libvirt guests: `libvirt` up to collectd 5.4, `virt` since 5.5
# (docs/compatibility.md, "collectd virt plugin naming"). Its `host` is the guest (LMA
# configured `HostnameFormat uuid`), so the metrics' node is this collector's.
GUEST_PLUGINS = frozenset(("libvirt", "virt"))

# processes plugin: per-process types → lma_components_<suffix> ("" → no suffix).
PROCESS_TYPES = {
    "ps_code": "memory_code", "ps_count": "", "ps_cputime": "cputime",
    "ps_data": "memory_data", "ps_disk_octets": "disk_bytes", "ps_disk_ops": "disk_ops",
    "ps_pagefaults": "pagefaults", "ps_rss": "memory_rss", "ps_stacksize": "stacksize",
    "ps_vm": "memory_virtual",
}
_DF_ENTITIES = {"df_inodes": "inodes", "percent_inodes": "inodes_percent",
                "percent_bytes": "space_percent"}
_NETLINK_RENAMES = {"if_rx_errors": "if_errors_rx", "if_tx_errors": "if_errors_tx"}
_NEUTRON_AGENT_INSTANCES = ("neutron_agents", "neutron_agents_percent", "neutron_agent")
_NEUTRON_TOTALS = frozenset(("networks", "ports", "routers", "floatingips"))
_UNIT_SUFFIX_RE = re.compile(r"^(.+)_(.B)$", re.DOTALL)
_NEUTRON_PORTS_RE = re.compile(r"^([^.]+)\.([^.]+)\.(.+)$", re.DOTALL)
_NEUTRON_STATE_RE = re.compile(r"^([^.]+)\.(.+)$", re.DOTALL)


class BadSample(ValueError):
    """A sample this decoder cannot turn into metrics."""


class Metric:
    """The fields of one metric message while its name and tags are worked out."""

    __slots__ = ("dropped", "fields", "hostname", "tags", "unit")

    def __init__(self, hostname: str | None) -> None:
        self.fields: dict[str, Any] = {}
        self.tags: list[str] = []
        self.hostname = hostname
        self.unit = ""
        self.dropped = False

    @property
    def name(self) -> str | None:
        return self.fields.get("name")

    @name.setter
    def name(self, name: str) -> None:
        self.fields["name"] = name

    def tag(self, name: str, value: Any) -> None:
        """A dimension: a field listed in tag_fields (listed even when the value is
        missing, as LMA did; the InfluxDB encoder then leaves the tag out)."""
        self.fields[name] = value
        self.tags.append(name)

    def drop(self) -> None:
        """LMA made no metric of this value."""
        self.dropped = True


class CollectdValue:
    """Value `i` of a write_http JSON sample, with what the naming rules read."""

    __slots__ = ("dsname", "host", "local_host", "meta", "metric_name", "plugin",
                 "plugin_instance", "type", "type_instance")

    def __init__(self, sample: dict, i: int, local_host: str) -> None:
        self.plugin: str = sample["plugin"]
        self.type: str = sample["type"]
        self.type_instance: str = sample.get("type_instance") or ""
        self.plugin_instance: str = sample.get("plugin_instance") or ""
        self.dsname: str = sample["dsnames"][i]
        self.host: Any = sample.get("host")
        meta = sample.get("meta")
        self.meta: dict = meta if isinstance(meta, dict) else {}
        self.local_host = local_host
        base = f"{self.type}_{self.type_instance}" if self.type_instance else self.type
        # collectd's own name for the value: type[_type_instance][_dsname].
        self.metric_name = base if self.dsname == "value" else f"{base}_{self.dsname}"


NamingRule = Callable[[Metric, CollectdValue], None]


def _dots(text: str) -> str:
    return text.replace(".", "_")


def _tag_from_meta(m: Metric, meta: dict, *keys: str) -> None:
    """Tag each of `keys` the sample's meta has (a null one counts as absent)."""
    for key in keys:
        if meta.get(key) is not None:
            m.tag(key, meta[key])


def default_rule(m: Metric, v: CollectdValue) -> None:
    m.name = _dots(v.metric_name)


def service_check(m: Metric, v: CollectdValue) -> None:
    """A value whose meta names a service check, whatever its plugin."""
    m.name = f"{v.meta['service_check']}_check"
    m.fields["details"] = v.meta.get("failure")
    if v.meta.get("local_check"):
        m.hostname = v.host


def _df(m: Metric, v: CollectdValue) -> None:
    entity = _DF_ENTITIES.get(v.type, "space")
    mount = "/" if v.plugin_instance == "root" else "/" + v.plugin_instance.replace("-", "/")
    m.name = f"fs_{entity}_{v.type_instance}"
    m.tag("fs", mount)


def _disk(m: Metric, v: CollectdValue) -> None:
    m.name = v.metric_name
    m.tag("device", v.plugin_instance)


def _cpu(m: Metric, v: CollectdValue) -> None:
    m.name = f"cpu_{v.type_instance}"
    m.tag("cpu_number", v.plugin_instance)


def _netlink(m: Metric, v: CollectdValue) -> None:
    name = _NETLINK_RENAMES.get(v.type, v.type)
    if v.dsname != "value":
        name += f"_{v.dsname}"
    if v.type_instance:
        name += f"_{v.type_instance}"
    m.name = name
    m.tag("interface", v.plugin_instance)


def _processes(m: Metric, v: CollectdValue) -> None:
    if v.type in PROCESS_TYPES:
        m.tag("service", v.plugin_instance)
        name = "lma_components"
        if PROCESS_TYPES[v.type]:
            name += f"_{PROCESS_TYPES[v.type]}"
        if v.dsname != "value":
            name += f"_{v.dsname}"
        m.name = name
        if v.type == "ps_cputime":
            # collectd sends the process's CPU µs per second: as a percentage.
            m.fields["value"] = 100 * m.fields["value"] / 1e6
    elif v.type == "ps_state":
        m.name = "processes_count"
        m.tag("state", v.type_instance)
    else:
        m.name = f"processes_{v.type}"


def _dbi(m: Metric, v: CollectdValue) -> None:
    """LMA's dbi queries of MySQL's status; any other dbi query is named by default."""
    if v.plugin_instance == "mysql_status":
        m.name = f"mysql_{_dots(v.type_instance)}"
    else:
        default_rule(m, v)


def _mysql(m: Metric, v: CollectdValue) -> None:
    if v.type == "threads":
        m.name = f"mysql_{v.metric_name}"
    elif v.type == "mysql_commands":
        m.name = v.type
        m.tag("statement", v.type_instance)
    elif v.type == "mysql_handler":
        m.name = v.type
        m.tag("handler", v.type_instance)
    else:
        m.name = v.metric_name


def _check_openstack_api(m: Metric, v: CollectdValue) -> None:
    m.name = "openstack_check_api"
    m.tag("service", v.plugin_instance)
    if v.meta:
        m.fields["os_region"] = v.meta.get("region")


def _hypervisor_stats(m: Metric, v: CollectdValue) -> None:
    unit = _UNIT_SUFFIX_RE.match(v.type_instance)
    if unit:
        m.name = f"openstack_nova_{unit.group(1)}"
        m.unit = unit.group(2)
    else:
        m.name = f"openstack_nova_{v.type_instance}"
    if v.meta.get("host"):
        m.hostname = v.meta["host"]
    _tag_from_meta(m, v.meta, "aggregate", "aggregate_id")


def _rabbitmq_info(m: Metric, v: CollectdValue) -> None:
    m.name = f"rabbitmq_{v.type_instance}"
    _tag_from_meta(m, v.meta, "queue")


def _nova_or_cinder(m: Metric, v: CollectdValue) -> None:
    """The nova and cinder API pollers: per-service states, else resources by state."""
    service = v.plugin
    if v.plugin_instance in (f"{service}_services", f"{service}_services_percent",
                             f"{service}_service"):
        m.name = f"openstack_{v.plugin_instance}"
        m.tag("service", v.meta.get("service"))
        m.tag("state", v.meta.get("state"))
        if v.plugin_instance == f"{service}_service":
            m.hostname = v.meta.get("host")
    else:
        m.name = f"openstack_{service}_{_dots(v.plugin_instance)}"
        m.tag("state", v.type_instance)


def _glance(m: Metric, v: CollectdValue) -> None:
    m.name = f"openstack_glance_{v.type_instance}"
    m.tag("state", v.meta.get("status"))
    m.tag("visibility", v.meta.get("visibility"))


def _keystone(m: Metric, v: CollectdValue) -> None:
    m.name = f"openstack_keystone_{v.type_instance}"
    _tag_from_meta(m, v.meta, "state")


def _neutron(m: Metric, v: CollectdValue) -> None:
    instance = v.type_instance
    if instance in _NEUTRON_TOTALS:
        m.drop()  # LMA dropped the totals: the per-state series sum to them
    elif instance == "subnets":
        m.name = "openstack_neutron_subnets"
    elif instance in _NEUTRON_AGENT_INSTANCES:
        m.name = f"openstack_{instance}"
        m.tag("service", v.meta.get("service"))
        m.tag("state", v.meta.get("state"))
        if instance == "neutron_agent":
            m.hostname = v.meta.get("host")
    elif instance.startswith("ports"):
        parts = _NEUTRON_PORTS_RE.match(instance)
        if parts is None:
            raise BadSample(f"neutron type_instance {instance!r} is not "
                            "ports.<owner>.<state>")
        m.name = f"openstack_neutron_{_dots(parts.group(1))}"
        m.tag("owner", parts.group(2))
        m.tag("state", parts.group(3))
    else:
        parts = _NEUTRON_STATE_RE.match(instance)
        if parts is None:
            raise BadSample(f"neutron type_instance {instance!r} is not "
                            "<resource>.<state>")
        m.name = f"openstack_neutron_{_dots(parts.group(1))}"
        m.tag("state", parts.group(2))


def _memcached(m: Metric, v: CollectdValue) -> None:
    m.name = "memcached_" + v.metric_name.replace("memcached_", "")


def _haproxy(m: Metric, v: CollectdValue) -> None:
    m.name = f"haproxy_{v.type_instance}"
    if v.meta.get("backend") is not None:
        _tag_from_meta(m, v.meta, "backend", "state", "server")
    else:
        _tag_from_meta(m, v.meta, "frontend")


def _apache(m: Metric, v: CollectdValue) -> None:
    m.name = "apache_" + v.metric_name.replace("apache_", "").replace("scoreboard",
                                                                       "workers")


def _ceph_osd_perf(m: Metric, v: CollectdValue) -> None:
    m.name = f"ceph_perf_{v.type}"
    m.tag("cluster", v.plugin_instance)
    m.tag("osd", v.type_instance)


def _ceph(m: Metric, v: CollectdValue) -> None:
    """Every ceph* plugin but ceph_osd_perf."""
    name = f"ceph_{v.type}"
    if v.dsname != "value":
        name += f"_{v.dsname}"
    m.name = name
    m.tag("cluster", v.plugin_instance)
    if v.type_instance:
        instance_tag = ("pool" if v.type.startswith("pool_") else
                        "state" if v.type.startswith("pg_state") else
                        "osd" if v.type.startswith("osd_") else None)
        if instance_tag:
            m.tag(instance_tag, v.type_instance)


def _pacemaker(m: Metric, v: CollectdValue) -> None:
    if v.meta.get("host"):
        m.hostname = v.meta["host"]
    m.name = f"pacemaker_{v.type_instance}"
    _tag_from_meta(m, v.meta, "status", "resource")


def _users(m: Metric, v: CollectdValue) -> None:
    m.name = "logged_users"  # "users" is reserved in InfluxDB 0.9


def _guest(m: Metric, v: CollectdValue) -> None:
    """libvirt guests (GUEST_PLUGINS): virt_* series per instance_id, LMA's names for
    both plugin names."""
    m.tag("instance_id", v.host)
    m.hostname = v.local_host
    if v.type.startswith("disk_"):
        m.name = f"virt_{v.type}_{v.dsname}"
        m.tag("device", v.type_instance)
    elif v.type.startswith("if_"):
        m.name = f"virt_{v.type}_{v.dsname}"
        m.tag("interface", v.type_instance)
    elif v.type == "virt_cpu_total":
        m.name = "virt_cpu_time"
    elif v.type == "virt_vcpu":
        m.name = "virt_vcpu_time"
        m.tag("vcpu_number", v.type_instance)
    else:
        m.name = f"virt_{v.metric_name}"


def _plugin_and_instance(m: Metric, v: CollectdValue) -> None:
    """elasticsearch_cluster, influxdb: <plugin>_<type_instance>."""
    m.name = f"{v.plugin}_{v.type_instance}"


def _http_check(m: Metric, v: CollectdValue) -> None:
    m.name = "http_check"
    m.tag("service", v.type_instance)


def _check_local_endpoint(m: Metric, v: CollectdValue) -> None:
    m.name = "openstack_check_local_api"
    m.tag("service", v.type_instance)


NAMING_RULES: dict[str, NamingRule] = {
    "df": _df,
    "disk": _disk,
    "cpu": _cpu,
    "netlink": _netlink,
    "processes": _processes,
    "dbi": _dbi,
    "mysql": _mysql,
    "check_openstack_api": _check_openstack_api,
    "hypervisor_stats": _hypervisor_stats,
    "rabbitmq_info": _rabbitmq_info,
    "nova": _nova_or_cinder,
    "cinder": _nova_or_cinder,
    "glance": _glance,
    "keystone": _keystone,
    "neutron": _neutron,
    "memcached": _memcached,
    "haproxy": _haproxy,
    "apache": _apache,
    "ceph_osd_perf": _ceph_osd_perf,
    "pacemaker": _pacemaker,
    "users": _users,
    **dict.fromkeys(GUEST_PLUGINS, _guest),
    "elasticsearch_cluster": _plugin_and_instance,
    "influxdb": _plugin_and_instance,
    "http_check": _http_check,
    "check_local_endpoint": _check_local_endpoint,
}


def naming_rule(plugin: str, meta: dict) -> NamingRule:
    """The rule for a value of `plugin` whose sample has `meta`."""
    if meta.get("service_check"):
        return service_check
    rule = NAMING_RULES.get(plugin)
    if rule is not None:
        return rule
    return _ceph if plugin.startswith("ceph") else default_rule


def name_metric(m: Metric, sample: dict, i: int, local_host: str) -> bool:
    """Set name and dimensions of value `i` of `sample` (LMA's naming rules); False when
    LMA dropped this metric."""
    v = CollectdValue(sample, i, local_host)
    naming_rule(v.plugin, v.meta)(m, v)
    return not m.dropped
