"""CollectdDecoder: LMA's collectd.lua naming rules
(https://github.com/openstack/fuel-plugin-lma-collector, decoders/collectd.lua), the
vectors of tests/data/lma/collectd.json (its "source" says where they come from), the
naming of every covered plugin held to tests/data/collectd_naming.json, collectd's
`virt` plugin, and bad samples."""

from __future__ import annotations

import asyncio
import json
import re
from typing import ClassVar

import pytest

from hekapy.collector.engine.message import DOUBLE, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import DecodeError, Output, register
from hekapy.decoders.collectd import CollectdDecoder
from hekapy.outputs.influxdb.line_protocol import message_points
from tests.helpers.paths import TEST_DATA
from tests.helpers.plugins import config_from, make_plugin
from tests.services import collectd, free_port, stop_process

VECTORS = json.loads((TEST_DATA / "lma" / "collectd.json").read_text())
# One sample per naming branch and what the decoder made of it before its naming became
# a table of functions (tests/tools/collectd_naming_golden.py wrote it).
NAMING = json.loads((TEST_DATA / "collectd_naming.json").read_text())


def decode(samples: list | str, **options) -> list[Message]:
    dec = make_plugin(CollectdDecoder, "collectd_decoder", hostname="compute-1", **options)
    body = samples if isinstance(samples, str) else json.dumps(samples)
    return dec.decode(Message(payload=body))


def fields(msg: Message) -> dict:
    return {f.name: (f.values if f.name == "tag_fields" else f.values[0])
            for f in msg.fields}


def sample(plugin: str, type: str, type_instance: str = "", plugin_instance: str = "",
           values=(1,), dsnames=("value",), meta: dict | None = None, host: str = "node-1"):
    s = {"values": list(values), "dstypes": ["gauge"] * len(values), "dsnames": list(dsnames),
         "time": 1796670143.437, "interval": 10, "host": host, "plugin": plugin,
         "plugin_instance": plugin_instance, "type": type, "type_instance": type_instance}
    if meta is not None:
        s["meta"] = meta
    return s


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["input"][0]["plugin"])
def test_lma_vectors(case):
    msgs = decode(case["input"])
    assert len(msgs) == len(case["expected"])
    for msg, want in zip(msgs, case["expected"], strict=True):
        got = fields(msg)
        for key, value in want["Fields"].items():
            if key == "tag_fields":
                assert sorted(got[key]) == sorted(value)
            else:
                assert got[key] == value, key
        for header in ("Type", "Logger", "Hostname", "Severity", "Timestamp"):
            if header in want:
                assert getattr(msg, header.lower()) == want[header], header
    if "expected_influxdb_line" in case:
        # The collector's deployment tags (added by the pipeline) as LMA's extra tags.
        from hekapy.collector.engine.message import STRING, Field
        msg = msgs[0]
        msg.fields += [Field("deployment_id", ["1"], STRING),
                       Field("environment_label", ["env-1"], STRING)]
        assert message_points(msg) == [case["expected_influxdb_line"]]


def as_recorded(msgs: list[Message]) -> list[dict]:
    """Messages in the shape of collectd_naming.json's "messages"."""
    return [{"Type": m.type, "Logger": m.logger, "Severity": m.severity,
             "Hostname": m.hostname, "Timestamp": m.timestamp, "Payload": m.payload,
             "Fields": [[f.name, f.value_type, f.representation, f.values]
                        for f in m.fields]} for m in msgs]


@pytest.mark.parametrize("case", NAMING["cases"], ids=lambda c: c["id"])
def test_naming_is_unchanged(case):
    """Every header, field, value type, representation and field order, per sample."""
    options = {"swap_size": case["options"].get("swap_size", 0.0)}
    if "error" in case:
        with pytest.raises(DecodeError) as e:
            decode([case["input"]], **options)
        assert str(e.value) == case["error"]
        return
    assert as_recorded(decode([case["input"]], **options)) == case["messages"]


def test_naming_cases_cover_every_plugin_the_rules_name():
    """The recorded cases reach each plugin the hand-written rules below use."""
    recorded = {c["input"]["plugin"] for c in NAMING["cases"]}
    assert {s["plugin"] for s, *_ in RULES} <= recorded


# (sample, metric name, tags (field → value), hostname field or None)
RULES = [
    (sample("df", "df_complex", "free", "var-log"), "fs_space_free", {"fs": "/var/log"},
     "node-1"),
    (sample("df", "percent_inodes", "used", "root"), "fs_inodes_percent_used", {"fs": "/"},
     "node-1"),
    (sample("df", "df_inodes", "reserved", "root"), "fs_inodes_reserved", {"fs": "/"},
     "node-1"),
    (sample("disk", "disk_octets", "", "sda", (1, 2), ("read", "write")),
     "disk_octets_read", {"device": "sda"}, "node-1"),
    (sample("cpu", "cpu", "idle", "3"), "cpu_idle", {"cpu_number": "3"}, "node-1"),
    (sample("netlink", "if_rx_errors", "", "eth0"), "if_errors_rx", {"interface": "eth0"},
     "node-1"),
    (sample("netlink", "if_octets", "", "eth0", (1, 2), ("rx", "tx")), "if_octets_rx",
     {"interface": "eth0"}, "node-1"),
    (sample("netlink", "if_rx_errors", "crc", "eth1"), "if_errors_rx_crc",
     {"interface": "eth1"}, "node-1"),
    (sample("processes", "ps_state", "running"), "processes_count", {"state": "running"},
     "node-1"),
    (sample("processes", "fork_rate"), "processes_fork_rate", {}, "node-1"),
    (sample("processes", "ps_count", "", "hekad", (1, 4), ("processes", "threads")),
     "lma_components_processes", {"service": "hekad"}, "node-1"),
    (sample("processes", "ps_rss", "", "hekad"), "lma_components_memory_rss",
     {"service": "hekad"}, "node-1"),
    (sample("dbi", "gauge", "wsrep.cluster_size", "mysql_status"),
     "mysql_wsrep_cluster_size", {}, "node-1"),
    (sample("mysql", "threads", "running"), "mysql_threads_running", {}, "node-1"),
    (sample("mysql", "mysql_commands", "select"), "mysql_commands",
     {"statement": "select"}, "node-1"),
    (sample("mysql", "mysql_handler", "commit"), "mysql_handler", {"handler": "commit"},
     "node-1"),
    (sample("mysql", "mysql_octets", "", "", (1, 2), ("rx", "tx")), "mysql_octets_rx", {},
     "node-1"),
    (sample("check_openstack_api", "gauge", "", "nova", meta={"region": "RegionOne"}),
     "openstack_check_api", {"service": "nova"}, None),
    (sample("hypervisor_stats", "gauge", "free_ram_MB", meta={"host": "cmp-2"}),
     "openstack_nova_free_ram", {}, "cmp-2"),
    (sample("hypervisor_stats", "gauge", "running_vms",
            meta={"aggregate": "fast", "aggregate_id": 3}),
     "openstack_nova_running_vms", {"aggregate": "fast", "aggregate_id": 3.0}, None),
    (sample("rabbitmq_info", "gauge", "messages", meta={"queue": "conductor"}),
     "rabbitmq_messages", {"queue": "conductor"}, "node-1"),
    (sample("nova", "gauge", "active", "instances"), "openstack_nova_instances",
     {"state": "active"}, None),
    (sample("nova", "gauge", "", "nova_service",
            meta={"service": "compute", "state": "up", "host": "cmp-1"}),
     "openstack_nova_service", {"service": "compute", "state": "up"}, "cmp-1"),
    (sample("cinder", "gauge", "", "cinder_services_percent",
            meta={"service": "volume", "state": "down"}),
     "openstack_cinder_services_percent", {"service": "volume", "state": "down"}, None),
    (sample("cinder", "gauge", "available", "volumes.size"), "openstack_cinder_volumes_size",
     {"state": "available"}, None),
    (sample("glance", "gauge", "images", meta={"status": "active", "visibility": "public"}),
     "openstack_glance_images", {"state": "active", "visibility": "public"}, None),
    (sample("keystone", "gauge", "users", meta={"state": "enabled"}),
     "openstack_keystone_users", {"state": "enabled"}, None),
    (sample("keystone", "gauge", "roles", meta={}), "openstack_keystone_roles", {}, None),
    (sample("neutron", "gauge", "subnets"), "openstack_neutron_subnets", {}, None),
    (sample("neutron", "gauge", "ports.compute.active"), "openstack_neutron_ports",
     {"owner": "compute", "state": "active"}, None),
    (sample("neutron", "gauge", "floatingips.associated"), "openstack_neutron_floatingips",
     {"state": "associated"}, None),
    (sample("neutron", "gauge", "neutron_agents", meta={"service": "lbaas", "state": "up"}),
     "openstack_neutron_agents", {"service": "lbaas", "state": "up"}, None),
    (sample("memcached", "memcached_items", "current"), "memcached_items_current", {},
     "node-1"),
    (sample("haproxy", "gauge", "frontend_bytes_in", meta={"frontend": "nova-api"}),
     "haproxy_frontend_bytes_in", {"frontend": "nova-api"}, "node-1"),
    (sample("apache", "apache_scoreboard", "open"), "apache_workers_open", {}, "node-1"),
    (sample("apache", "apache_bytes"), "apache_bytes", {}, "node-1"),
    (sample("ceph_osd_perf", "commit_latency", "osd-1", "ceph"), "ceph_perf_commit_latency",
     {"cluster": "ceph", "osd": "osd-1"}, "node-1"),
    (sample("ceph_mon", "pool_size", "volumes", "ceph"), "ceph_pool_size",
     {"cluster": "ceph", "pool": "volumes"}, None),
    (sample("ceph_mon", "pg_state_count", "active+clean", "ceph"), "ceph_pg_state_count",
     {"cluster": "ceph", "state": "active+clean"}, None),
    (sample("ceph_osd", "osd_space", "", "ceph", (1, 2), ("used", "total")),
     "ceph_osd_space_used", {"cluster": "ceph"}, "node-1"),
    (sample("pacemaker", "gauge", "resource_local_active",
            meta={"host": "ctl-1", "resource": "vip__public", "status": "up"}),
     "pacemaker_resource_local_active", {"status": "up", "resource": "vip__public"},
     "ctl-1"),
    (sample("users", "users"), "logged_users", {}, "node-1"),
    (sample("libvirt", "disk_octets", "vda", "", (1, 2), ("read", "write"),
            host="3c2e0b4a-instance"),
     "virt_disk_octets_read", {"instance_id": "3c2e0b4a-instance", "device": "vda"},
     "compute-1"),
    (sample("libvirt", "virt_vcpu", "0", host="inst"), "virt_vcpu_time",
     {"instance_id": "inst", "vcpu_number": "0"}, "compute-1"),
    (sample("libvirt", "virt_cpu_total", host="inst"), "virt_cpu_time",
     {"instance_id": "inst"}, "compute-1"),
    (sample("libvirt", "memory", "total", host="inst"), "virt_memory_total",
     {"instance_id": "inst"}, "compute-1"),
    (sample("influxdb", "gauge", "points_written"), "influxdb_points_written", {}, "node-1"),
    (sample("http_check", "gauge", "horizon"), "http_check", {"service": "horizon"}, None),
    (sample("check_local_endpoint", "gauge", "nova-api"), "openstack_check_local_api",
     {"service": "nova-api"}, "node-1"),
    (sample("load", "load", "", "", (1, 2, 3), ("shortterm", "midterm", "longterm")),
     "load_shortterm", {}, "node-1"),
    (sample("vmem", "vmpage_io", "memory.x", "", (1, 2), ("in", "out")),
     "vmpage_io_memory_x_in", {}, "node-1"),
]


@pytest.mark.parametrize("case", RULES, ids=[c[1] for c in RULES])
def test_naming_rules(case):
    s, name, tags, hostname = case
    msg = decode([s])[0]
    got = fields(msg)
    assert got["name"] == name
    assert got["source"] == s["plugin"]
    assert got["type"] == "gauge"
    want_tags = list(tags) + (["hostname"] if hostname else [])
    assert got.get("tag_fields", []) == want_tags
    for key, value in tags.items():
        assert got[key] == value
    assert got.get("hostname") == hostname
    assert msg.type == "metric" and msg.logger == "collectd" and msg.severity == 6
    assert msg.timestamp == 1796670143437000000
    assert json.loads(msg.payload) == s


def test_one_message_per_value_and_values_are_doubles():
    msgs = decode([sample("load", "load", values=(0.5, 1, 2),
                          dsnames=("shortterm", "midterm", "longterm"))])
    assert [fields(m)["name"] for m in msgs] == ["load_shortterm", "load_midterm",
                                                 "load_longterm"]
    assert [m.find_field("value").values[0] for m in msgs] == [0.5, 1.0, 2.0]
    assert {m.find_field("value").value_type for m in msgs} == {DOUBLE}


def test_process_cputime_becomes_a_percentage():
    msgs = decode([sample("processes", "ps_cputime", "", "nova-api", (250000, 50000),
                          ("user", "syst"))])
    got = [(fields(m)["name"], fields(m)["value"]) for m in msgs]
    assert got == [("lma_components_cputime_user", 25.0),
                   ("lma_components_cputime_syst", 5.0)]


def test_hypervisor_units_go_to_the_representation():
    msg = decode([sample("hypervisor_stats", "gauge", "total_disk_GB")])[0]
    value = msg.find_field("value")
    assert fields(msg)["name"] == "openstack_nova_total_disk"
    assert value.representation == "GB"


def test_service_checks_and_local_checks():
    failed = decode([sample("check_openstack_api", "gauge", "", "nova", (0,),
                            meta={"service_check": "nova-api", "failure": "timeout"})])[0]
    assert fields(failed) == {**fields(failed), "name": "nova-api_check",
                              "details": "timeout"}
    assert "hostname" not in fields(failed)  # cluster-wide
    local = decode([sample("apache", "gauge", "", "", (1,),
                           meta={"service_check": "apache", "local_check": True})])[0]
    assert fields(local)["name"] == "apache_check"
    assert fields(local)["hostname"] == "node-1"


def test_neutron_totals_are_dropped_and_swap_percent_is_derived():
    assert decode([sample("neutron", "gauge", "ports")]) == []
    msgs = decode([sample("swap", "swap", "used", values=(1 << 30,))], swap_size=4 << 30)
    assert [(fields(m)["name"], fields(m)["value"]) for m in msgs] == [
        ("swap_used", float(1 << 30)), ("swap_percent_used", 0.25)]
    assert len(decode([sample("swap", "swap", "used")])) == 1  # no swap_size: no percent


def test_libvirt_messages_carry_the_local_host():
    msg = decode([sample("libvirt", "if_octets", "tap0", "", (1, 2), ("rx", "tx"),
                         host="inst-1")])[1]
    assert msg.hostname == "compute-1"
    assert fields(msg)["name"] == "virt_if_octets_tx"
    assert fields(msg)["interface"] == "tap0"


LIBVIRT_CASES = [c for c in NAMING["cases"] if c["input"]["plugin"] == "libvirt"]


@pytest.mark.parametrize("case", LIBVIRT_CASES, ids=lambda c: c["id"])
def test_virt_plugin_is_named_as_the_libvirt_plugin(case):
    """collectd 5.5 renamed its libvirt plugin `virt`: same series, tags and node. Only
    the `source` field (the plugin) and the Payload (the sample) say which it was."""
    virt = decode([{**case["input"], "plugin": "virt"}])
    assert virt, "no metric"
    got = as_recorded(virt)
    want = case["messages"]
    for g, w in zip(got, want, strict=True):
        assert json.loads(g.pop("Payload"))["plugin"] == "virt"
        w = {k: v for k, v in w.items() if k != "Payload"}
        assert ["source", 0, "", ["virt"]] in g["Fields"]
        g["Fields"] = [f if f[0] != "source" else ["source", 0, "", ["libvirt"]]
                       for f in g["Fields"]]
        assert g == w
        assert fields(virt[0])["name"].startswith("virt_")


def test_virt_plugin_names_what_collectd_5_5_added_with_the_libvirt_rules():
    """Values collectd 5.4 never sent (ExtraStats) keep the virt_ prefix and the guest's
    tags, as the libvirt rules name anything else."""
    msgs = decode([sample("virt", "percent", "virt_cpu_total", host="inst-9"),
                   sample("virt", "domain_state", "", "", (1, 0), ("state", "reason"),
                          host="inst-9")])
    assert [(fields(m)["name"], fields(m)["instance_id"], m.hostname) for m in msgs] == [
        ("virt_percent_virt_cpu_total", "inst-9", "compute-1"),
        ("virt_domain_state_state", "inst-9", "compute-1"),
        ("virt_domain_state_reason", "inst-9", "compute-1")]


def test_bad_bodies_fail_whole():
    with pytest.raises(DecodeError, match="not JSON"):
        decode("[{")
    with pytest.raises(DecodeError, match="JSON array"):
        decode('{"values": [1]}')
    with pytest.raises(DecodeError, match="bad sample"):
        decode([{"plugin": "cpu"}])


def test_a_bad_sample_is_skipped_and_the_rest_kept(caplog):
    good = sample("cpu", "cpu", "idle", "0")
    nan = sample("cpu", "cpu", "user", "0", values=(None,))  # collectd writes NaN as null
    short = {**sample("load", "load"), "dsnames": []}
    msgs = decode([good, nan, short, 42, sample("users", "users")])
    assert [fields(m)["name"] for m in msgs] == ["cpu_idle", "logged_users"]
    assert "3 of 5 samples skipped" in caplog.text


def test_lma_sandbox_section_runs_the_native_decoder(tmp_path):
    p = Pipeline(config_from(tmp_path, """
        [collectd_decoder]
        type = "SandboxDecoder"
        filename = "/usr/share/lma_collector/decoders/collectd.lua"
          [collectd_decoder.config]
          hostname = "node-9"
          swap_size = 2147483648
    """))
    dec = p.build_plugin("collectd_decoder", "Decoder")
    assert isinstance(dec, CollectdDecoder)
    assert dec.local_host == "node-9" and dec.cfg.swap_size == 2147483648


@register
class VirtSeriesOutput(Output):
    """Keeps the metric messages it gets and sets `complete` once it has had every
    series name in `wanted`."""

    instances: ClassVar[dict[str, VirtSeriesOutput]] = {}

    def __init__(self, name, cfg) -> None:
        super().__init__(name, cfg)
        self.messages: list[Message] = []
        self.wanted: set[str] = set()
        self.complete = asyncio.Event()
        VirtSeriesOutput.instances[name] = self

    async def run(self, ctx) -> None:
        while (batch := await ctx.next_batch()) is not None:
            self.messages += batch.messages
            batch.done()
            if self.wanted <= {fields(m)["name"] for m in self.messages}:
                self.complete.set()


UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.mark.services
async def test_real_collectd_virt_plugin_gives_lmas_virt_series(tmp_path):
    """Debian's collectd 5.12 and its `virt` plugin on libvirt's built-in test driver (a
    running guest without a hypervisor) → HttpListenInput → CollectdDecoder: the series
    LMA's Hypervisor dashboard read, per instance_id, on this node. (The test driver
    has no block statistics, so no virt_disk_* here: the recorded cases cover them.)"""
    port = free_port()
    p = Pipeline(config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [collectd_httplisten]
        type = "HttpListenInput"
        address = "127.0.0.1:{port}"
        decoder = "collectd_decoder"
        [collectd_decoder]
        type = "CollectdDecoder"
        hostname = "compute-7"
        [virt_series]
        type = "VirtSeriesOutput"
        message_matcher = "Type == 'metric' && Fields[source] == 'virt'"
    """))
    await p.start()
    out = VirtSeriesOutput.instances["virt_series"]
    out.wanted = {"virt_cpu_time", "virt_vcpu_time", "virt_memory_total",
                  "virt_if_octets_rx", "virt_if_octets_tx"}
    # HostnameFormat uuid as LMA configured it; collectd 5.12 reports per-vCPU time
    # only with ExtraStats "vcpu".
    proc = await collectd(tmp_path / "collectd", f"http://127.0.0.1:{port}/",
                          plugins=("virt",), plugin_config="""
<Plugin virt>
  Connection "test:///default"
  HostnameFormat uuid
  ExtraStats "vcpu"
</Plugin>""")
    try:
        await asyncio.wait_for(out.complete.wait(), 60)
    finally:
        await stop_process(proc)
        await p.stop()
    by_name = {fields(m)["name"]: m for m in out.messages}
    instance_ids = {fields(m)["instance_id"] for m in out.messages}
    assert len(instance_ids) == 1 and UUID_RE.fullmatch(instance_ids.pop())
    for name in out.wanted:
        m = by_name[name]
        assert m.hostname == "compute-7" and fields(m)["hostname"] == "compute-7"
    assert {fields(m)["vcpu_number"] for m in out.messages
            if fields(m)["name"] == "virt_vcpu_time"} >= {"0"}
    assert fields(by_name["virt_if_octets_rx"])["interface"]
    assert fields(by_name["virt_memory_total"])["value"] > 0
    # As InfluxDB stores them: the measurement and the dashboard's tags.
    line = message_points(by_name["virt_vcpu_time"])[0]
    assert re.match(r"virt_vcpu_time,hostname=compute-7,instance_id=[0-9a-f-]{36},"
                    r"vcpu_number=\d+ value=", line), line
