"""CollectdDecoder: collectd's write_http JSON (`Format "JSON"`) → one Heka metric message
per value, named and tagged as LMA's collectd.lua did (spec/lma.md §2.10), so the
Grafana dashboards' series keep their names.

The Payload of the incoming message (HttpListenInput's request body) is a JSON array of
samples `{host, plugin, plugin_instance, type, type_instance, dsnames, dstypes, values,
time, interval, meta?}`. Each value becomes `Type metric`, `Logger collectd`, Severity 6,
Timestamp = time (µs precision, as collectd writes it), Hostname = host, Payload = the
sample as JSON, and Fields name, value, type (the data-source type), source (the
plugin), interval, the plugin's dimension fields, `hostname` (except for the
cluster-wide plugins, whose metrics carry no node) and `tag_fields` listing the fields
that become InfluxDB tags. Numbers are DOUBLE fields, as Lua made them.

Unlike LMA, one bad sample (missing keys, a `null` value for NaN) is skipped and counted
instead of failing the whole request; a body that is not a JSON array fails as a whole.

Keys: hostname (this node's name, used for libvirt's per-instance samples whose `host`
is the instance id; defaults to the machine's host name), swap_size (bytes of swap; when
set, `swap_used` also yields `swap_percent_used` = used / swap_size, as LMA's did).

    [collectd_decoder]
    type = "CollectdDecoder"
    swap_size = 4294967296
"""

from __future__ import annotations

import json
import logging
import re
import socket
from typing import Any, ClassVar

from hekapy.collector.engine.message import BOOL, DOUBLE, STRING, Field, Message
from hekapy.collector.engine.plugin import DecodeError, Decoder, Option, register

log = logging.getLogger("hekapy.decoder.collectd")

# Plugins whose metrics describe the cloud, not the node that polled it: no hostname
# tag unless the sample's meta names a host.
CLUSTER_WIDE_PLUGINS = frozenset((
    "ceph_mon", "ceph_pool", "check_openstack_api", "cinder", "glance", "http_check",
    "hypervisor_stats", "keystone", "neutron", "nova", "pacemaker"))

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
_SERVICE_INSTANCES = {svc: (f"{svc}_services", f"{svc}_services_percent", f"{svc}_service")
                      for svc in ("nova", "cinder")}
_NEUTRON_AGENT_INSTANCES = ("neutron_agents", "neutron_agents_percent", "neutron_agent")
_NEUTRON_SKIPPED = frozenset(("networks", "ports", "routers", "floatingips"))
_UNIT_SUFFIX_RE = re.compile(r"^(.+)_(.B)$", re.DOTALL)
_NEUTRON_PORTS_RE = re.compile(r"^([^.]+)\.([^.]+)\.(.+)$", re.DOTALL)
_NEUTRON_STATE_RE = re.compile(r"^([^.]+)\.(.+)$", re.DOTALL)


class BadSample(ValueError):
    """A sample this decoder cannot turn into metrics."""


class Metric:
    """The fields of one metric message while its name and tags are worked out."""

    __slots__ = ("fields", "hostname", "tags", "unit")

    def __init__(self, hostname: str) -> None:
        self.fields: dict[str, Any] = {}
        self.tags: list[str] = []
        self.hostname = hostname
        self.unit = ""

    def tag(self, name: str, value: Any) -> None:
        """A dimension: a field listed in tag_fields (listed even when the value is
        missing, as LMA did; the InfluxDB encoder then leaves the tag out)."""
        self.fields[name] = value
        self.tags.append(name)


def _dots(text: str) -> str:
    return text.replace(".", "_")


def _field(name: str, value: Any, representation: str = "") -> Field | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return Field(name, [value], BOOL)
    if isinstance(value, (int, float)):
        return Field(name, [float(value)], DOUBLE, representation)
    if isinstance(value, str):
        return Field(name, [value], STRING)
    return Field(name, [json.dumps(value, separators=(",", ":"))], STRING)


def _meta(sample: dict, key: str) -> Any:
    meta = sample.get("meta")
    return meta.get(key) if isinstance(meta, dict) else None


def name_metric(m: Metric, sample: dict, i: int, local_host: str) -> bool:
    """Set name and dimensions of value `i` of `sample` (LMA's naming rules); False when
    LMA dropped this metric."""
    f = m.fields
    source = sample["plugin"]
    stype = sample["type"]
    type_instance = sample.get("type_instance") or ""
    plugin_instance = sample.get("plugin_instance") or ""
    dsname = sample["dsnames"][i]
    base = f"{stype}_{type_instance}" if type_instance else stype
    metric_name = base if dsname == "value" else f"{base}_{dsname}"
    meta = sample.get("meta") if isinstance(sample.get("meta"), dict) else {}

    if meta.get("service_check"):
        f["name"] = f"{meta['service_check']}_check"
        f["details"] = meta.get("failure")
        if meta.get("local_check"):
            m.hostname = sample.get("host")
    elif source == "df":
        entity = _DF_ENTITIES.get(stype, "space")
        mount = "/" if plugin_instance == "root" else "/" + plugin_instance.replace("-", "/")
        f["name"] = f"fs_{entity}_{type_instance}"
        m.tag("fs", mount)
    elif source == "disk":
        f["name"] = metric_name
        m.tag("device", plugin_instance)
    elif source == "cpu":
        f["name"] = f"cpu_{type_instance}"
        m.tag("cpu_number", plugin_instance)
    elif source == "netlink":
        name = _NETLINK_RENAMES.get(stype, stype)
        if dsname != "value":
            name += f"_{dsname}"
        if type_instance:
            name += f"_{type_instance}"
        f["name"] = name
        m.tag("interface", plugin_instance)
    elif source == "processes":
        if stype in PROCESS_TYPES:
            m.tag("service", plugin_instance)
            name = "lma_components"
            if PROCESS_TYPES[stype]:
                name += f"_{PROCESS_TYPES[stype]}"
            if dsname != "value":
                name += f"_{dsname}"
            f["name"] = name
            if stype == "ps_cputime":
                # collectd sends the process's CPU µs per second: as a percentage.
                f["value"] = 100 * f["value"] / 1e6
        elif stype == "ps_state":
            f["name"] = "processes_count"
            m.tag("state", type_instance)
        else:
            f["name"] = f"processes_{stype}"
    elif source == "dbi" and plugin_instance == "mysql_status":
        f["name"] = f"mysql_{_dots(type_instance)}"
    elif source == "mysql":
        if stype == "threads":
            f["name"] = f"mysql_{metric_name}"
        elif stype == "mysql_commands":
            f["name"] = stype
            m.tag("statement", type_instance)
        elif stype == "mysql_handler":
            f["name"] = stype
            m.tag("handler", type_instance)
        else:
            f["name"] = metric_name
    elif source == "check_openstack_api":
        f["name"] = "openstack_check_api"
        m.tag("service", plugin_instance)
        if meta:
            f["os_region"] = meta.get("region")
    elif source == "hypervisor_stats":
        unit = _UNIT_SUFFIX_RE.match(type_instance)
        if unit:
            f["name"] = f"openstack_nova_{unit.group(1)}"
            m.unit = unit.group(2)
        else:
            f["name"] = f"openstack_nova_{type_instance}"
        if meta.get("host"):
            m.hostname = meta["host"]
        for key in ("aggregate", "aggregate_id"):
            if meta.get(key) is not None:
                m.tag(key, meta[key])
    elif source == "rabbitmq_info":
        f["name"] = f"rabbitmq_{type_instance}"
        if meta.get("queue") is not None:
            m.tag("queue", meta["queue"])
    elif source in _SERVICE_INSTANCES:
        if plugin_instance in _SERVICE_INSTANCES[source]:
            f["name"] = f"openstack_{plugin_instance}"
            m.tag("service", meta.get("service"))
            m.tag("state", meta.get("state"))
            if plugin_instance == f"{source}_service":
                m.hostname = meta.get("host")
        else:
            f["name"] = f"openstack_{source}_{_dots(plugin_instance)}"
            m.tag("state", type_instance)
    elif source == "glance":
        f["name"] = f"openstack_glance_{type_instance}"
        m.tag("state", meta.get("status"))
        m.tag("visibility", meta.get("visibility"))
    elif source == "keystone":
        f["name"] = f"openstack_keystone_{type_instance}"
        if meta.get("state") is not None:
            m.tag("state", meta["state"])
    elif source == "neutron":
        if type_instance in _NEUTRON_SKIPPED:
            return False  # LMA dropped the totals: the per-state series sum to them
        if type_instance == "subnets":
            f["name"] = "openstack_neutron_subnets"
        elif type_instance in _NEUTRON_AGENT_INSTANCES:
            f["name"] = f"openstack_{type_instance}"
            m.tag("service", meta.get("service"))
            m.tag("state", meta.get("state"))
            if type_instance == "neutron_agent":
                m.hostname = meta.get("host")
        elif type_instance.startswith("ports"):
            parts = _NEUTRON_PORTS_RE.match(type_instance)
            if parts is None:
                raise BadSample(f"neutron type_instance {type_instance!r} is not "
                                "ports.<owner>.<state>")
            f["name"] = f"openstack_neutron_{_dots(parts.group(1))}"
            m.tag("owner", parts.group(2))
            m.tag("state", parts.group(3))
        else:
            parts = _NEUTRON_STATE_RE.match(type_instance)
            if parts is None:
                raise BadSample(f"neutron type_instance {type_instance!r} is not "
                                "<resource>.<state>")
            f["name"] = f"openstack_neutron_{_dots(parts.group(1))}"
            m.tag("state", parts.group(2))
    elif source == "memcached":
        f["name"] = "memcached_" + metric_name.replace("memcached_", "")
    elif source == "haproxy":
        f["name"] = f"haproxy_{type_instance}"
        if meta.get("backend") is not None:
            m.tag("backend", meta["backend"])
            for key in ("state", "server"):
                if meta.get(key) is not None:
                    m.tag(key, meta[key])
        elif meta.get("frontend") is not None:
            m.tag("frontend", meta["frontend"])
    elif source == "apache":
        f["name"] = "apache_" + metric_name.replace("apache_", "").replace("scoreboard",
                                                                          "workers")
    elif source == "ceph_osd_perf":
        f["name"] = f"ceph_perf_{stype}"
        m.tag("cluster", plugin_instance)
        m.tag("osd", type_instance)
    elif source.startswith("ceph"):
        name = f"ceph_{stype}"
        if dsname != "value":
            name += f"_{dsname}"
        f["name"] = name
        m.tag("cluster", plugin_instance)
        if type_instance:
            extra = ("pool" if stype.startswith("pool_") else
                     "state" if stype.startswith("pg_state") else
                     "osd" if stype.startswith("osd_") else None)
            if extra:
                m.tag(extra, type_instance)
    elif source == "pacemaker":
        if meta.get("host"):
            m.hostname = meta["host"]
        f["name"] = f"pacemaker_{type_instance}"
        for key in ("status", "resource"):
            if meta.get(key) is not None:
                m.tag(key, meta[key])
    elif source == "users":
        f["name"] = "logged_users"  # "users" is reserved in InfluxDB 0.9
    elif source == "libvirt":
        # collectd puts the instance id in `host`: the node is this one.
        m.tag("instance_id", sample.get("host"))
        m.hostname = local_host
        if stype.startswith("disk_"):
            f["name"] = f"virt_{stype}_{dsname}"
            m.tag("device", type_instance)
        elif stype.startswith("if_"):
            f["name"] = f"virt_{stype}_{dsname}"
            m.tag("interface", type_instance)
        elif stype == "virt_cpu_total":
            f["name"] = "virt_cpu_time"
        elif stype == "virt_vcpu":
            f["name"] = "virt_vcpu_time"
            m.tag("vcpu_number", type_instance)
        else:
            f["name"] = f"virt_{metric_name}"
    elif source in ("elasticsearch_cluster", "influxdb"):
        f["name"] = f"{source}_{type_instance}"
    elif source == "http_check":
        f["name"] = source
        m.tag("service", type_instance)
    elif source == "check_local_endpoint":
        f["name"] = "openstack_check_local_api"
        m.tag("service", type_instance)
    else:
        f["name"] = _dots(metric_name)
    return True


@register
class CollectdDecoder(Decoder):
    __doc__ = __doc__

    options: ClassVar[dict[str, Option]] = {
        "hostname": Option("str", "", doc="this node's name (default: the host name)"),
        "swap_size": Option("float", 0, doc="bytes of swap, for swap_percent_used"),
    }

    def __init__(self, name: str, cfg: Any) -> None:
        super().__init__(name, cfg)
        self.local_host = cfg.hostname or socket.gethostname()
        self.bad_samples = 0

    def decode(self, msg: Message) -> list[Message]:
        try:
            samples = json.loads(msg.payload)
        except ValueError as e:
            raise DecodeError(f"not JSON: {e}") from None
        if not isinstance(samples, list):
            raise DecodeError(f"expected a JSON array of samples, got {type(samples).__name__}")
        out: list[Message] = []
        problems: list[str] = []
        for sample in samples:
            try:
                out += self.sample_messages(sample)
            except (BadSample, KeyError, TypeError, IndexError, ValueError) as e:
                problems.append(f"{type(e).__name__}: {e}")
        if problems:
            self.bad_samples += len(problems)
            if not out:
                raise DecodeError(f"{len(problems)} bad sample(s), first: {problems[0]}")
            log.warning("%s: %d of %d samples skipped, first: %s", self.name, len(problems),
                        len(samples), problems[0])
        return out

    def sample_messages(self, sample: Any) -> list[Message]:
        if not isinstance(sample, dict):
            raise BadSample(f"sample is a {type(sample).__name__}, not an object")
        source, values = sample["plugin"], sample["values"]
        dsnames, dstypes = sample["dsnames"], sample["dstypes"]
        if not isinstance(source, str) or not isinstance(sample["type"], str):
            raise BadSample("plugin and type must be strings")
        if not (isinstance(values, list) and len(values) == len(dsnames) == len(dstypes)):
            raise BadSample("values, dsnames and dstypes must be arrays of one length")
        timestamp = round(float(sample["time"]) * 1e6) * 1000
        host = sample.get("host") or ""
        payload = json.dumps(sample, separators=(",", ":"))
        out = []
        for i, value in enumerate(values):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise BadSample(f"value {i} is {value!r}, not a number")  # NaN is null
            m = Metric(None if source in CLUSTER_WIDE_PLUGINS else host)
            m.fields.update(name=None, value=value, type=dstypes[i], source=source,
                            interval=sample.get("interval"))
            if not name_metric(m, sample, i, self.local_host):
                continue
            hostname = self.local_host if source == "libvirt" else host
            out.append(self.message(m, timestamp, hostname, payload))
            if (source == "swap" and m.fields["name"] == "swap_used"
                    and self.cfg.swap_size > 0):
                # collectd 5.4 reports no used-swap percentage: derived, as LMA did.
                m.fields.update(name="swap_percent_used", value=value / self.cfg.swap_size)
                out.append(self.message(m, timestamp, hostname, payload))
        return out

    def message(self, m: Metric, timestamp: int, hostname: str, payload: str) -> Message:
        fields = []
        for key, value in m.fields.items():
            field = _field(key, value, m.unit if key == "value" else "")
            if field is not None:
                fields.append(field)
        tags = m.tags
        if m.hostname:
            fields.append(Field("hostname", [m.hostname], STRING))
            tags = [*tags, "hostname"]
        if tags:
            fields.append(Field("tag_fields", tags, STRING))
        return Message(timestamp=timestamp, type="metric", logger="collectd", severity=6,
                       hostname=hostname, payload=payload, fields=fields)
