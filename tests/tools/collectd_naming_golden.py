"""Writes tests/data/collectd_naming.json: what CollectdDecoder makes of one sample per
naming branch (every collectd plugin its tests and test data cover, and each special
case of those plugins), so tests/decoders/test_collectd.py can hold a rewrite of the naming to
the same output. `python -m tests.tools.collectd_naming_golden` from the repository.

The file was first written by the decoder as it stood before the naming became a table
of functions (commit ea774fc). Regenerate it only for a naming change you mean to make,
and review the diff: every changed line is a series an operator's dashboard loses.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.message import Message
from hekapy.collector.engine.plugin import DecodeError
from hekapy.decoders.collectd import CollectdDecoder

OUT = Path(__file__).resolve().parents[1] / "data" / "collectd_naming.json"
LOCAL_HOST = "compute-1"


def sample(plugin: str, type: str, type_instance: Any = "", plugin_instance: Any = "",
           values: tuple = (1,), dsnames: tuple = ("value",), meta: Any = None,
           host: str = "node-1", **extra: Any) -> dict:
    s = {"values": list(values), "dstypes": ["gauge"] * len(values),
         "dsnames": list(dsnames), "time": 1796670143.437, "interval": 10, "host": host,
         "plugin": plugin, "plugin_instance": plugin_instance, "type": type,
         "type_instance": type_instance, **extra}
    if meta is not None:
        s["meta"] = meta
    return s


RX_TX = ((1, 2), ("rx", "tx"))
READ_WRITE = ((1, 2), ("read", "write"))

# (case id, sample, decoder options)
CASES: list[tuple[str, dict, dict]] = [
    # Service checks win over the plugin's own naming.
    ("service_check", sample("check_openstack_api", "gauge", "", "nova", (0,),
                             meta={"service_check": "nova-api", "failure": "timeout"}), {}),
    ("service_check_local", sample("apache", "gauge", meta={
        "service_check": "apache", "local_check": True}), {}),
    ("service_check_no_failure", sample("cpu", "gauge", "", "0",
                                        meta={"service_check": "cpu"}), {}),
    # df
    ("df_complex", sample("df", "df_complex", "free", "var-log"), {}),
    ("df_inodes", sample("df", "df_inodes", "reserved", "root"), {}),
    ("df_percent_inodes", sample("df", "percent_inodes", "used", "root"), {}),
    ("df_percent_bytes", sample("df", "percent_bytes", "free", "var-lib-nova"), {}),
    # disk, cpu, netlink
    ("disk", sample("disk", "disk_octets", "", "sda", *READ_WRITE), {}),
    ("disk_ops", sample("disk", "disk_ops", "", "vdb", *READ_WRITE), {}),
    ("cpu", sample("cpu", "cpu", "idle", "3"), {}),
    ("netlink_rename_rx", sample("netlink", "if_rx_errors", "", "eth0"), {}),
    ("netlink_rename_tx", sample("netlink", "if_tx_errors", "crc", "eth1"), {}),
    ("netlink_octets", sample("netlink", "if_octets", "", "eth0", *RX_TX), {}),
    ("netlink_dropped_instance", sample("netlink", "if_dropped", "x", "br-ex", *RX_TX), {}),
    # processes
    *[(f"processes_{t}", sample("processes", t, "", "hekad"), {})
      for t in ("ps_code", "ps_data", "ps_rss", "ps_stacksize", "ps_vm")],
    ("processes_ps_count", sample("processes", "ps_count", "", "hekad", (1, 4),
                                  ("processes", "threads")), {}),
    ("processes_ps_cputime", sample("processes", "ps_cputime", "", "nova-api",
                                    (250000, 50000), ("user", "syst")), {}),
    ("processes_ps_disk_octets", sample("processes", "ps_disk_octets", "", "mysqld",
                                        *READ_WRITE), {}),
    ("processes_ps_disk_ops", sample("processes", "ps_disk_ops", "", "mysqld",
                                     *READ_WRITE), {}),
    ("processes_ps_pagefaults", sample("processes", "ps_pagefaults", "", "influxd",
                                       (1, 2), ("minflt", "majflt")), {}),
    ("processes_ps_state", sample("processes", "ps_state", "running"), {}),
    ("processes_other", sample("processes", "fork_rate"), {}),
    # MySQL
    ("dbi_mysql_status", sample("dbi", "gauge", "wsrep.cluster_size", "mysql_status"), {}),
    ("dbi_other", sample("dbi", "gauge", "rows.count", "other_db"), {}),
    ("mysql_threads", sample("mysql", "threads", "running"), {}),
    ("mysql_commands", sample("mysql", "mysql_commands", "select"), {}),
    ("mysql_handler", sample("mysql", "mysql_handler", "commit"), {}),
    ("mysql_other", sample("mysql", "mysql_octets", "", "", *RX_TX), {}),
    ("mysql_locks", sample("mysql", "mysql_locks", "immediate"), {}),
    # OpenStack API pollers and checks
    ("check_openstack_api_region", sample("check_openstack_api", "gauge", "", "nova",
                                          meta={"region": "RegionOne"}), {}),
    ("check_openstack_api_no_meta", sample("check_openstack_api", "gauge", "", "cinder"),
     {}),
    ("check_openstack_api_empty_meta", sample("check_openstack_api", "gauge", "",
                                              "glance", meta={}), {}),
    ("hypervisor_stats_unit", sample("hypervisor_stats", "gauge", "free_ram_MB",
                                     meta={"host": "cmp-2"}), {}),
    ("hypervisor_stats_unit_gb", sample("hypervisor_stats", "gauge", "total_disk_GB"), {}),
    ("hypervisor_stats_aggregate", sample("hypervisor_stats", "gauge", "running_vms",
                                          meta={"aggregate": "fast", "aggregate_id": 3}),
     {}),
    ("hypervisor_stats_aggregate_only_name", sample(
        "hypervisor_stats", "gauge", "used_vcpus", meta={"aggregate": "slow"}), {}),
    ("rabbitmq_info_queue", sample("rabbitmq_info", "gauge", "messages",
                                   meta={"queue": "conductor"}), {}),
    ("rabbitmq_info", sample("rabbitmq_info", "gauge", "running_nodes"), {}),
    ("nova_instances", sample("nova", "gauge", "active", "instances"), {}),
    ("nova_services", sample("nova", "gauge", "", "nova_services",
                             meta={"service": "scheduler", "state": "up"}), {}),
    ("nova_service", sample("nova", "gauge", "", "nova_service",
                            meta={"service": "compute", "state": "up", "host": "cmp-1"}),
     {}),
    ("nova_service_no_host", sample("nova", "gauge", "", "nova_service",
                                    meta={"service": "compute", "state": "down"}), {}),
    ("nova_total", sample("nova", "gauge", "", "total_running_instances"), {}),
    ("cinder_services_percent", sample("cinder", "gauge", "", "cinder_services_percent",
                                       meta={"service": "volume", "state": "down"}), {}),
    ("cinder_service", sample("cinder", "gauge", "", "cinder_service",
                              meta={"service": "volume", "state": "up", "host": "st-1"}),
     {}),
    ("cinder_volumes_size", sample("cinder", "gauge", "available", "volumes.size"), {}),
    ("glance", sample("glance", "gauge", "images",
                      meta={"status": "active", "visibility": "public"}), {}),
    ("glance_no_meta", sample("glance", "gauge", "snapshots_size"), {}),
    ("keystone_state", sample("keystone", "gauge", "users", meta={"state": "enabled"}), {}),
    ("keystone", sample("keystone", "gauge", "roles", meta={}), {}),
    *[(f"neutron_total_{t}", sample("neutron", "gauge", t), {})
      for t in ("networks", "ports", "routers", "floatingips")],
    ("neutron_subnets", sample("neutron", "gauge", "subnets"), {}),
    ("neutron_agents", sample("neutron", "gauge", "neutron_agents",
                              meta={"service": "lbaas", "state": "up"}), {}),
    ("neutron_agents_percent", sample("neutron", "gauge", "neutron_agents_percent",
                                      meta={"service": "dhcp", "state": "down"}), {}),
    ("neutron_agent", sample("neutron", "gauge", "neutron_agent",
                             meta={"service": "l3", "state": "up", "host": "net-1"}), {}),
    ("neutron_ports", sample("neutron", "gauge", "ports.compute.active"), {}),
    ("neutron_ports_dotted_state", sample("neutron", "gauge", "ports.network:dhcp.a.b"),
     {}),
    ("neutron_ports_bad", sample("neutron", "gauge", "ports.compute"), {}),
    ("neutron_state", sample("neutron", "gauge", "floatingips.associated"), {}),
    ("neutron_state_bad", sample("neutron", "gauge", "loadbalancers"), {}),
    # Services on the node
    ("memcached", sample("memcached", "memcached_items", "current"), {}),
    ("memcached_ops", sample("memcached", "memcached_ops", "hits"), {}),
    ("memcached_df", sample("memcached", "df", "cache", "", (1, 2), ("used", "free")), {}),
    ("haproxy_frontend", sample("haproxy", "gauge", "frontend_bytes_in",
                                meta={"frontend": "nova-api"}), {}),
    ("haproxy_backend", sample("haproxy", "gauge", "backend_servers",
                               meta={"backend": "nova-api", "state": "up"}), {}),
    ("haproxy_backend_server", sample("haproxy", "gauge", "backend_server",
                                      meta={"backend": "nova-api", "state": "up",
                                            "server": "ctl-1"}), {}),
    ("haproxy_server", sample("haproxy", "gauge", "connections"), {}),
    ("apache_scoreboard", sample("apache", "apache_scoreboard", "open"), {}),
    ("apache_bytes", sample("apache", "apache_bytes"), {}),
    ("apache_idle_workers", sample("apache", "apache_idle_workers"), {}),
    ("ceph_osd_perf", sample("ceph_osd_perf", "commit_latency", "osd-1", "ceph"), {}),
    ("ceph_pool", sample("ceph_mon", "pool_size", "volumes", "ceph"), {}),
    ("ceph_pg_state", sample("ceph_mon", "pg_state_count", "active+clean", "ceph"), {}),
    ("ceph_osd", sample("ceph_osd", "osd_space", "", "ceph", (1, 2), ("used", "total")), {}),
    ("ceph_osd_instance", sample("ceph_osd", "osd_latency", "osd-3", "ceph"), {}),
    ("ceph_other_instance", sample("ceph_mon", "health", "x", "ceph"), {}),
    ("ceph_pool_plugin", sample("ceph_pool", "pool_objects", "images", "ceph"), {}),
    ("pacemaker", sample("pacemaker", "gauge", "resource_local_active",
                         meta={"host": "ctl-1", "resource": "vip__public", "status": "up"}),
     {}),
    ("pacemaker_no_meta", sample("pacemaker", "gauge", "dc"), {}),
    ("users", sample("users", "users"), {}),
    # libvirt: the instance id in `host`, the node is this one
    ("libvirt_disk", sample("libvirt", "disk_octets", "vda", "", *READ_WRITE,
                            host="3c2e0b4a-instance"), {}),
    ("libvirt_disk_ops", sample("libvirt", "disk_ops", "vdb", "", *READ_WRITE,
                                host="inst"), {}),
    ("libvirt_if", sample("libvirt", "if_octets", "tap0", "", *RX_TX, host="inst-1"), {}),
    ("libvirt_if_errors", sample("libvirt", "if_errors", "tap1", "", *RX_TX, host="i"), {}),
    ("libvirt_cpu_total", sample("libvirt", "virt_cpu_total", host="inst"), {}),
    ("libvirt_vcpu", sample("libvirt", "virt_vcpu", "0", host="inst"), {}),
    ("libvirt_memory", sample("libvirt", "memory", "total", host="inst"), {}),
    ("libvirt_other_ds", sample("libvirt", "ps_cputime", "", "", (1, 2), ("user", "syst"),
                                host="inst"), {}),
    # Cluster services and the default rule
    ("elasticsearch_cluster", sample("elasticsearch_cluster", "gauge", "health"), {}),
    ("influxdb", sample("influxdb", "gauge", "points_written"), {}),
    ("http_check", sample("http_check", "gauge", "horizon"), {}),
    ("check_local_endpoint", sample("check_local_endpoint", "gauge", "nova-api"), {}),
    ("default_load", sample("load", "load", "", "", (1, 2, 3),
                            ("shortterm", "midterm", "longterm")), {}),
    ("default_dots", sample("vmem", "vmpage_io", "memory.x", "", (1, 2), ("in", "out")), {}),
    ("default_memory", sample("memory", "memory", "used"), {}),
    ("default_null_instances", sample("uptime", "uptime", None, None), {}),
    ("swap_used", sample("swap", "swap", "used", values=(1 << 30,)), {}),
    ("swap_used_percent", sample("swap", "swap", "used", values=(1 << 30,)),
     {"swap_size": float(4 << 30)}),
    ("swap_free_with_size", sample("swap", "swap", "free", values=(3 << 30,)),
     {"swap_size": float(4 << 30)}),
    ("meta_not_an_object", sample("haproxy", "gauge", "connections", meta=["x"]), {}),
    ("derive_counter", {**sample("interface", "if_packets", "", "eth0", *RX_TX),
                        "dstypes": ["derive", "derive"], "interval": 60.0}, {}),
]


def field_record(f: Any) -> list:
    return [f.name, f.value_type, f.representation, f.values]


def decode(s: dict, options: dict) -> dict:
    cfg = SimpleNamespace(hostname=LOCAL_HOST, swap_size=options.get("swap_size", 0.0))
    dec = CollectdDecoder("collectd_decoder", cfg)
    try:
        msgs = dec.decode(Message(payload=json.dumps([s])))
    except DecodeError as e:
        return {"error": str(e)}
    return {"messages": [{"Type": m.type, "Logger": m.logger, "Severity": m.severity,
                          "Hostname": m.hostname, "Timestamp": m.timestamp,
                          "Payload": m.payload,
                          "Fields": [field_record(f) for f in m.fields]} for m in msgs]}


def main() -> None:
    cases = [{"id": cid, "options": options, "input": s, **decode(s, options)}
             for cid, s, options in CASES]
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    source = ("written by tests/tools/collectd_naming_golden.py from hekapy's own "
              f"CollectdDecoder; decoder option hostname = {LOCAL_HOST!r}")
    # One case a line: a naming change shows as the lines of the cases it changes.
    lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases]
    OUT.write_text(f'{{"source": {json.dumps(source)},\n"cases": [\n'
                   + ",\n".join(lines) + "\n]}\n")
    print(f"{OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
