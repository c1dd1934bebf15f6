"""The alarm chain end to end, as the shipped configurations wire it on a controller: two
`hekapy run` processes, the log_collector (conf/lma_log_collector.toml) tailing oslo.log
lines and sending log_messages rates, and the metric_collector (conf/
lma_metric_collector.toml with lma_aggregator.toml, lma_aggregator_client.toml and
lma_nagios.toml in one directory) taking collectd's JSON; its AfdFilter raises the
node and service alarms, which go through the aggregator (TCP 5565) to the GSE filters;
statuses, cluster_status and annotations land in a real InfluxDB, and Nagios passive
checks in an HTTP server standing for Nagios. The metric_collector is stopped and
started again: with preserve_data, the AFD datapoints, the GSE facts and the last
annotated statuses carry over.

The configs are patched only for paths, ports and URLs, the node's role, and the time
scale: the shipped conf/alarms.yaml with 3 s windows, 1 s GSE intervals and warm-ups,
and 1 s rows and ticks (LMA's 5 s rows, 10 s ticks and 60-120 s windows otherwise)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import time
import urllib.parse
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.matcher import compile_matcher
from hekapy.collector.engine.message import DOUBLE, STRING, Field, Message
from hekapy.filters.afd import AfdFilter
from hekapy.filters.gse import GseFilter
from hekapy.filters.influxdb_annotation import InfluxdbAnnotationFilter
from hekapy.outputs.encoders.nagios import NagiosEncoder
from tests import grafana_queries as gq
from tests.helpers.collectors import HekapyProcesses
from tests.helpers.lma import HOST, LMA_ENV, oslo_now, replace_exactly
from tests.helpers.paths import CONF
from tests.services import free_port, influxdb, wait_for_port

ENV = {**LMA_ENV, "MANAGEMENT_ADDRESS": "127.0.0.1", "AGGREGATOR_ADDRESS": "127.0.0.1",
       "NAGIOS_USER": "nagiosadmin", "NAGIOS_PASSWORD": "s3cret",
       "NAGIOS_URL": "http://127.0.0.1:1/cgi-bin/cmd.cgi"}
METRIC_FILES = ("lma_metric_collector.toml", "lma_aggregator.toml",
                "lma_aggregator_client.toml", "lma_nagios.toml")


def test_shipped_files_wire_the_chain_as_lma(monkeypatch, tmp_path):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    for name in METRIC_FILES:
        (tmp_path / name).write_text((CONF / name).read_text())
    cfg = load_config(tmp_path, strict=True)
    p = cfg.plugins
    assert p["afd_filter"].cls is AfdFilter and p["afd_filter"].cfg.preserve_data
    assert {n: s.cls for n, s in p.items() if s.cls in (GseFilter, InfluxdbAnnotationFilter)
            } == {"gse_service_filter": GseFilter, "gse_node_filter": GseFilter,
                  "gse_global_filter": GseFilter,
                  "influxdb_annotation_filter": InfluxdbAnnotationFilter}
    assert p["nagios_afd_nodes_encoder"].cls is NagiosEncoder

    def status(kind: str, **fields: str) -> Message:
        return Message(type=f"heka.sandbox.{kind}", fields=[
            Field("name", ["x"], STRING), Field("value", [1.0], DOUBLE),
            *(Field(k, [v], STRING) for k, v in fields.items())])

    def routes(m: Message) -> set[str]:
        return {n for n, s in p.items() if s.category in ("Filter", "Output")
                and compile_matcher(s.cfg.message_matcher)(m)}

    afd = status("afd_node_metric", hostname=HOST, node_role="controller", source="cpu")
    assert routes(afd) == {"influxdb_output", "aggregator_tcpoutput",
                           "nagios_afd_nodes_output"}
    flagged = status("afd_service_metric", hostname=HOST, service="nova-logs",
                     source="error", aggregator="present")
    assert routes(flagged) == {"gse_service_filter"}
    # cluster statuses carry no hostname: like LMA's, the aggregator client forwards them
    # too (and the aggregator's filters leave what comes back flagged alone)
    service = status("gse_service_cluster_metric", cluster_name="nova-logs")
    assert routes(service) == {"gse_global_filter", "influxdb_output",
                               "nagios_gse_services_output", "aggregator_tcpoutput"}
    cluster = status("gse_cluster_metric", cluster_name="nova-control-plane")
    assert routes(cluster) == {"influxdb_output", "influxdb_annotation_filter",
                               "nagios_gse_global_output", "aggregator_tcpoutput"}
    quiet = status("gse_cluster_metric", cluster_name="nova-control-plane", no_alerting="1")
    assert routes(quiet) == {"influxdb_output", "influxdb_annotation_filter",
                             "aggregator_tcpoutput"}
    cluster.fields.append(Field("aggregator", ["present"], STRING))
    assert routes(cluster) == set()
    vip = status("metric", name="pacemaker_local_resource_active", resource="vip__management",
                 hostname=HOST)
    vip.fields[0] = Field("name", ["pacemaker_local_resource_active"], STRING)
    # (AfdFilter takes every metric type and keeps the names its alarms watch)
    assert routes(vip) == {"gse_service_filter", "gse_node_filter", "gse_global_filter",
                           "influxdb_output", "afd_filter"}
    wide = status("metric", name="openstack_nova_total_free_vcpus")
    assert routes(wide) == {"influxdb_output", "aggregator_tcpoutput", "afd_filter"}


def short_alarms(path: Path) -> Path:
    """The shipped alarms on a test's time scale."""
    doc = yaml.safe_load((CONF / "alarms.yaml").read_text())
    for alarm in doc["alarms"]:
        for rule in alarm["trigger"]["rules"]:
            rule["window"] = 3
    for key, level in doc.items():
        if key.startswith("gse_cluster_"):
            level["interval"] = 1
            level["warm_up_period"] = 1
    path.write_text(yaml.safe_dump(doc))
    return path


class Nagios:
    """An HTTP server standing for Nagios' cmd.cgi: keeps each passive check posted."""

    def __init__(self) -> None:
        self.checks: list[dict[str, str]] = []
        self.auth: set[str] = set()
        self.types: set[str] = set()

    async def post(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        self.auth.add(request.headers.get("Authorization", ""))
        self.types.add(request.headers.get("Content-Type", ""))
        self.checks.append({**dict(urllib.parse.parse_qsl(body, keep_blank_values=True)),
                            "_at": str(time.time_ns())})
        return web.Response(text="ok")

    def find(self, service: str, state: str | None = None, after: int = 0) -> list[dict]:
        return [c for c in self.checks if c.get("service") == service and int(c["_at"]) > after
                and (state is None or c.get("plugin_state") == state)]


def collectd_body(cpu_idle: float | None) -> bytes:
    now = time.time()

    def sample(plugin: str, type_: str, type_instance: str, value: float,
               plugin_instance: str = "", meta: dict | None = None) -> dict:
        s = {"values": [value], "dstypes": ["gauge"], "dsnames": ["value"], "time": now,
             "interval": 0.5, "host": HOST, "plugin": plugin, "plugin_instance": plugin_instance,
             "type": type_, "type_instance": type_instance}
        if meta:
            s["meta"] = meta
        return s

    out = [sample("pacemaker", "gauge", "local_resource_active", 1,
                  meta={"host": HOST, "resource": "vip__management"}),
           sample("df", "percent_bytes", "free", 60.0, plugin_instance="root")]
    if cpu_idle is not None:
        out += [sample("cpu", "percent", "idle", cpu_idle, plugin_instance="0"),
                sample("cpu", "percent", "wait", 1.0, plugin_instance="0")]
    return json.dumps(out).encode()


@pytest.mark.services
async def test_afd_gse_influxdb_and_nagios_across_a_restart(tmp_path):
    logs = tmp_path / "var-log"
    nova_log = logs / "nova" / "nova-api.log"
    nova_log.parent.mkdir(parents=True)
    nova_log.write_text(f"{oslo_now()} 2310 INFO nova.compute.manager [-] starting\n")
    alarms = short_alarms(tmp_path / "alarms.yaml")
    tcp, collectd, status_log, status_metric, agg, check, nagios_port = (
        free_port() for _ in range(7))
    log_state, metric_state = tmp_path / "log_collector", tmp_path / "metric_collector"

    text = (CONF / "lma_log_collector.toml").read_text()
    text = replace_exactly(text, '"/var/cache/log_collector"', f'"{log_state}"')
    text = text.replace('"/var/log', f'"{logs}')
    text = replace_exactly(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{tcp}"')
    text = replace_exactly(text, "[hekad]\n",
                           f'[hekad]\nstatus_address = "127.0.0.1:{status_log}"\n')
    text = replace_exactly(text, "ticker_interval = 60\n", "ticker_interval = 1\n")
    log_conf = tmp_path / "log_collector.toml"
    log_conf.write_text(text)

    metric_dir = tmp_path / "metric_collector.d"
    metric_dir.mkdir()
    text = (CONF / "lma_metric_collector.toml").read_text()
    text = replace_exactly(text, '"/var/cache/metric_collector"', f'"{metric_state}"')
    text = replace_exactly(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{tcp}"')
    text = replace_exactly(text, 'address = "127.0.0.1:8325"', f'address = "127.0.0.1:{collectd}"')
    text = replace_exactly(text, 'status_address = "127.0.0.1:4353"',
                           f'status_address = "127.0.0.1:{status_metric}"')
    text = text.replace('"/var/lib/', f'"{tmp_path}/lib/')
    text = replace_exactly(text, 'node_roles = ["default"]', 'node_roles = ["controller"]')
    text = replace_exactly(text, '# alarms_file = "/etc/hekapy/alarms.yaml"',
                           f'alarms_file = "{alarms}"\nseconds_per_row = 1\nticker_interval = 1\n#')
    (metric_dir / "1_metric_collector.toml").write_text(text)
    text = (CONF / "lma_aggregator.toml").read_text()
    text = replace_exactly(text, ':5565"', f':{agg}"')
    text = replace_exactly(text, ':5566"', f':{check}"')
    text = replace_exactly(text, 'level = "', f'alarms_file = "{alarms}"\nlevel = "', count=3)
    (metric_dir / "2_aggregator.toml").write_text(text)
    text = replace_exactly((CONF / "lma_aggregator_client.toml").read_text(), ':5565"', f':{agg}"')
    (metric_dir / "3_aggregator_client.toml").write_text(text)
    (metric_dir / "4_nagios.toml").write_text((CONF / "lma_nagios.toml").read_text())

    nagios = Nagios()
    app = web.Application()
    app.router.add_post("/cgi-bin/cmd.cgi", nagios.post)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", nagios_port).start()

    cpu: dict[str, float | None] = {"idle": 2.0}  # under 5 %: critical
    errors = {"on": True}

    async def feed(session: aiohttp.ClientSession) -> None:
        """collectd every 0.5 s; nova ERROR lines (6 a second) while errors are on."""
        k = 0
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(f"http://127.0.0.1:{collectd}/",
                                        data=collectd_body(cpu["idle"])):
                    pass
            if errors["on"]:
                with nova_log.open("a") as f:
                    for _ in range(3):
                        k += 1
                        f.write(f"{oslo_now()} 2310 ERROR nova.compute.manager [-] Instance "
                                f"{k} failed to spawn\n")
            await asyncio.sleep(0.5)

    async with influxdb(tmp_path / "influxdb") as db, EsDouble("opensearch2") as es, \
            aiohttp.ClientSession() as session:
        await db.query("CREATE DATABASE lma")
        env = {**os.environ, **ENV, "ES_URL": es.url, "INFLUXDB_URL": db.url, "TZ": "UTC",
               "NAGIOS_URL": f"http://127.0.0.1:{nagios_port}/cgi-bin/cmd.cgi"}
        run = HekapyProcesses(tmp_path, env)

        async def last(measurement: str, after: int = 0, **tags: str) -> float | None:
            where = " AND ".join([f"\"{k}\" = '{v}'" for k, v in tags.items()]
                                 + [f"time > {after}ms"])
            rows = await db.query(f'SELECT last("value") FROM {measurement} WHERE {where}',
                                  db="lma")
            return rows[0]["last"] if rows else None

        async def equals(value: float, measurement: str, after: int = 0, **tags: str) -> bool:
            return await last(measurement, after, **tags) == value

        feeder = asyncio.create_task(feed(session))
        try:
            metric = run.start("metric_collector", metric_dir)
            await wait_for_port(tcp, metric, timeout=60, log=run.log)
            run.start("log_collector", log_conf)

            # The node alarm (CPU), the service alarm (nova's errors) and what the
            # aggregator's GSE filters make of them, all in InfluxDB.
            await run.until(lambda: equals(3, "node_status", node_role="controller",
                                           source="cpu", hostname=HOST), "cpu CRITICAL")
            await run.until(lambda: equals(1, "service_status", service="nova-logs",
                                           source="error"), "nova-logs WARN")
            await run.until(lambda: equals(3, "cluster_node_status", cluster_name="controller"),
                            "the controller cluster CRITICAL")
            await run.until(lambda: equals(1, "cluster_service_status",
                                           cluster_name="nova-logs"), "nova-logs cluster WARN")
            await run.until(lambda: equals(1, "cluster_status",
                                           cluster_name="nova-control-plane"),
                            "nova-control-plane WARN")
            # The Overview dashboard's cluster row shows it, through the panel's own query
            # (the dashboards' lab runs no aggregator).
            [panel] = [p for p in gq.panels(gq.load_dashboards()["overview"])
                       if p["title"] == "OpenStack clusters"]
            query = panel["targets"][0]["query"].replace(
                "$environment", f"env-{ENV['HEKAPY_DEPLOYMENT_ID']}").replace(
                "$timeFilter", "time > now() - 1h").replace("$interval", "10s")
            shown = await db.query(query, db="lma")
            assert any(r["cluster_name"] == "nova-control-plane" and r["last"] == 1
                       for r in shown), (query, shown)

            async def annotated(title_end: str) -> bool:
                rows = await db.query("SELECT * FROM annotations WHERE "
                                      "\"cluster\" = 'nova-control-plane'", db="lma")
                return any(r["title"].endswith(title_end) for r in rows)

            # ("General status is WARN", or "UNKNOWN -> WARN" when the GSE filter spoke
            # before the first AFD status came: the test's warm-up is 1 s)
            await run.until(lambda: annotated(" WARN"), "the annotation")
            await run.until(lambda: bool(nagios.find("global-nova-control-plane", "1")),
                            "the global cluster's passive check")
            await run.until(lambda: bool(nagios.find("controller.cpu", "2")), "the cpu check")

            # Stopped: the state of the alarm filters is saved ...
            metric.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(metric.wait, 60) == 0
            del run.procs["metric_collector"]
            saved = {p.name for p in (metric_state / "alarm_state").iterdir()}
            assert saved == {"afd_filter.json", "gse_service_filter.json",
                             "gse_node_filter.json", "gse_global_filter.json",
                             "influxdb_annotation_filter.json"}
            # ... and read back: no CPU data for now, and the AFD's first status
            # already knows the datapoints it had (a fresh one would have waited its
            # window and then found none "ever").
            cpu["idle"] = None
            errors["on"] = False
            restart = time.time_ns()
            metric = run.start("metric_collector", metric_dir)
            await run.until(lambda: bool(nagios.find("controller.cpu", after=restart)),
                            "the first cpu check after the restart")
            first = nagios.find("controller.cpu", after=restart)[0]
            assert "received ever" not in first["plugin_output"], first
            cpu["idle"] = 90.0
            await run.until(lambda: equals(0, "node_status", restart // 1_000_000,
                                           node_role="controller", source="cpu"), "cpu OKAY")
            # The errors stopped: nova-control-plane is OKAY again, which the restarted
            # annotation filter knows is a change.
            await run.until(lambda: equals(0, "cluster_status", restart // 1_000_000,
                                           cluster_name="nova-control-plane"),
                            "nova-control-plane OKAY", timeout=90)
            await run.until(lambda: annotated("WARN -> OKAY"), "the annotation of the recovery")
            await run.until(lambda: bool(nagios.find("global-nova-control-plane", "0",
                                                     restart)), "the recovery's passive check")
        finally:
            feeder.cancel()
            await run.stop_all()
            await runner.cleanup()

        rows = await db.query("SELECT * FROM annotations WHERE \"cluster\" = "
                              "'nova-control-plane'", db="lma")
        warned = [r for r in rows if r["title"].endswith(" WARN")]
        assert len(warned) == 1, rows  # not announced again after the restart
        warn = warned[0]
        assert (warn["tags"], warn["deployment_id"]) == ("nova-control-plane", "42")
        assert "Too many errors have been detected in Nova logs (WARN, rule='max(" \
               "log_messages[level=\"error\",service=\"nova\"])>0.1'" in warn["text"]
        [cpu_row] = await db.query("SELECT * FROM node_status WHERE source = 'cpu' "
                                   "AND \"value\" = 3 LIMIT 1", db="lma")
        assert (cpu_row["hostname"], cpu_row["node_role"], cpu_row["environment_label"]) == (
            HOST, "controller", "env-42")
        # Nagios got LMA's passive checks, authenticated, form-encoded
        token = base64.b64encode(b"nagiosadmin:s3cret").decode()
        assert nagios.auth == {f"Basic {token}"}
        assert nagios.types == {"application/x-www-form-urlencoded"}
        critical = nagios.find("controller.cpu", "2")[0]
        assert (critical["cmd_typ"], critical["cmd_mod"], critical["host"]) == ("30", "2", HOST)
        lines = critical["plugin_output"].split("\\n")
        assert lines[0] == "controller.cpu CRITICAL"
        assert lines[1].startswith("The CPU usage is too high (controller node) (CRITICAL, "
                                   "rule='avg(cpu_idle)<=5', current=2.00")
        glob = nagios.find("global-nova-control-plane", "1")[0]
        assert glob["host"] == "00-global-clusters-env42"
        lines = glob["plugin_output"].split("\\n")
        assert lines[0] == "global-nova-control-plane WARN"
        # its members' alarms: nova-logs' errors, and nova-api, which has no HAProxy here
        assert any(line.startswith("Too many errors have been detected in Nova logs (WARN, "
                                   "rule='max(log_messages[level=\"error\",service=\"nova\"])"
                                   ">0.1', current=") and line.endswith(f", host={HOST})")
                   for line in lines)
        assert any(line.startswith("No datapoint have been received ever (UNKNOWN, "
                                   "rule='last(haproxy_backend_servers[backend=\"nova-api\"")
                   for line in lines)
        assert nagios.find("nova-logs.error", "1")  # the service AFD's own check
