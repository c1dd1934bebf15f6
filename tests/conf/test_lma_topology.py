"""The shipped LMA pair, conf/lma_log_collector.toml → conf/lma_metric_collector.toml,
as LMA ran it (docs/compatibility.md, "LMA collectors"): two `hekapy run` processes, the
log_collector tailing OpenStack logs, deriving metrics and sending them in Heka's framed
protobuf to the metric_collector, which writes them to a real InfluxDB. The
metric_collector is restarted mid-stream: the log_collector's disk buffer keeps what it
could not send, and every metric arrives.

The configs are patched only for paths, ports and URLs, and for the two filters'
ticker_interval (LMA's 10 s and 60 s become 1 s, so that the test sees many ticks)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.engine.buffer import buffer_dir
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.matcher import compile_matcher
from hekapy.collector.engine.message import DOUBLE, Field, Message
from hekapy.collector.engine.metrics import metric_message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.protobuf import encode_message, frame
from hekapy.decoders.metric import MetricDecoder
from hekapy.decoders.noop import NoopDecoder
from tests.helpers.collectors import HekapyProcesses
from tests.helpers.lma import HOST, LMA_ENV, oslo_now, replace_exactly
from tests.helpers.paths import CONF
from tests.helpers.plugins import CollectOutput, write_config
from tests.helpers.wait import wait_for
from tests.services import InfluxDB, free_port, influxdb, wait_for_port

# --- the two configs, wired together ------------------------------------------------------

def test_shipped_pair_is_wired_as_lma(monkeypatch):
    for k, v in LMA_ENV.items():
        monkeypatch.setenv(k, v)
    log = load_config(CONF / "lma_log_collector.toml", strict=True)
    metric = load_config(CONF / "lma_metric_collector.toml", strict=True)
    out = log.plugins["metric_tcpoutput"]
    inp = metric.plugins["metric_tcpinput"]
    assert out.type_name == "TcpOutput" and inp.type_name == "TcpInput"
    assert out.cfg.address == inp.cfg.address == "127.0.0.1:5567"
    assert out.cfg.encoder == "ProtobufEncoder" and out.cfg.use_buffering
    assert out.cfg.buffering.max_buffer_size == 256 << 20
    assert out.cfg.buffering.max_file_size == 64 << 20
    assert out.cfg.buffering.full_action == "drop"
    assert inp.cfg.splitter == "HekaFramingSplitter" and inp.cfg.decoder == "metric_decoder"
    # LMA's metric.lua section runs the native MetricDecoder, for LMA's three filters.
    dec = metric.plugins["metric_decoder"]
    assert dec.cls is MetricDecoder
    loggers = dec.cfg.deserialize_bulk_metric_for_loggers
    assert loggers == {"aggregated_http_metrics_filter", "hdd_errors_counter_filter",
                       "logs_counter_filter"}
    # The log-derived metric filters carry LMA's section names (their Logger).
    filters = {n: s.type_name for n, s in log.plugins.items() if s.category == "Filter"}
    assert filters == {"aggregated_http_metrics_filter": "HttpMetricsFilter",
                       "logs_counter_filter": "LogCounterFilter",
                       "hdd_errors_counter_filter": "HddErrorsCounterFilter",
                       "resource_creation_time_filter": "ResourceCreationTimeFilter"}
    # The TcpOutput takes what those filters emit, and LMA's own types; the InfluxDB
    # output takes what the metric decoder makes of them.
    to_metric = compile_matcher(out.cfg.message_matcher)
    to_influx = compile_matcher(metric.plugins["influxdb_output"].cfg.message_matcher)
    single = metric_message("log_messages", 1.0, {"service": "nova"}, 1, "logs_counter_filter",
                            HOST)
    multi = metric_message("openstack_nova_http_response_times", {"count": 1}, {}, 1,
                           "aggregated_http_metrics_filter", HOST)
    for m in (single, multi):
        assert to_metric(m) and to_influx(m), m.type
    for kind in ("metric", "heka.sandbox.metric", "heka.sandbox.bulk_metric"):
        assert to_metric(Message(type=kind))
    for kind in ("metric", "multivalue_metric"):  # exploded bulk points
        assert to_influx(Message(type=kind))
    assert not to_metric(Message(type="log")) and not to_influx(Message(type="log"))
    # The two processes' status servers do not clash.
    assert log.hekad.status_address != metric.hekad.status_address


# --- two real processes --------------------------------------------------------------------

class Lines:
    """Appends OpenStack log lines (oslo.log's format; the API lines with their
    response times) and counts what the metrics must add up to."""

    NOVA = [("GET", "/v2.1/servers/detail", 200), ("POST", "/v2.1/servers", 202),
            ("GET", "/v2.1/os-hypervisors", 403), ("DELETE", "/v2.1/servers/1", 204)]
    NEUTRON = [("GET", "/v2.0/networks", 200), ("POST", "/v2.0/floatingips", 201),
               ("GET", "/v2.0/ports/x", 404)]

    def __init__(self, logs: Path) -> None:
        self.nova = logs / "nova" / "nova-api.log"
        self.neutron = logs / "neutron" / "server.log"
        self.levels: Counter[tuple[str, str]] = Counter()  # (service, level)
        self.requests: Counter[tuple[str, str, str]] = Counter()  # (service, method, 2xx)
        self.total = 0

    def write(self, n: int, http: bool = True) -> None:
        """`n` lines; without `http`, no API lines (their response times only count
        when they are read within the filter's grace time)."""
        nova, neutron = [], []
        for i in range(n):
            ts = oslo_now()
            k = self.total + i
            if not http or k % 5 == 4:
                level = ("WARNING", "DEBUG", "INFO")[k % 3]
                nova.append(f"{ts} 2310 {level} nova.compute.manager [-] "
                            f"Instance {k} took long to shut down")
                self.levels["nova", level.lower()] += 1
            elif k % 2:
                method, url, status = self.NOVA[k // 2 % len(self.NOVA)]
                nova.append(f"{ts} 2310 INFO nova.osapi_compute.wsgi.server [-] 10.0.0.{k % 250} "
                            f'"{method} {url} HTTP/1.1" status: {status} len: 321 '
                            f"time: 0.{k % 9 + 1:03d}")
                self.levels["nova", "info"] += 1
                self.requests["nova", method, f"{status // 100}xx"] += 1
            else:
                method, url, status = self.NEUTRON[k // 2 % len(self.NEUTRON)]
                neutron.append(f"{ts} 1822 INFO neutron.wsgi [-] 10.20.0.{k % 250} "
                               f'"{method} {url} HTTP/1.1" {status} 456 0.0{k % 9 + 1}')
                self.levels["neutron", "info"] += 1
                self.requests["neutron", method, f"{status // 100}xx"] += 1
        for path, lines in ((self.nova, nova), (self.neutron, neutron)):
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write("".join(line + "\n" for line in lines))
        self.total += n


async def influx_totals(db: InfluxDB) -> tuple[Counter, Counter]:
    """What the stored points add up to: (service, level) → the sum of log_messages
    (messages per second, over 1 s ticks); (service, method, status class) → the sum
    of the response-time counts."""
    levels: Counter[tuple[str, str]] = Counter()
    for r in await db.query('SELECT sum("value") AS n FROM log_messages '
                            "GROUP BY service, level", db="lma"):
        if r["n"]:
            levels[r["service"], r["level"]] = round(r["n"])
    requests: Counter[tuple[str, str, str]] = Counter()
    for service in ("nova", "neutron"):
        for r in await db.query(f'SELECT sum("count") AS n FROM '
                                f"openstack_{service}_http_response_times "
                                "GROUP BY http_method, http_status", db="lma"):
            requests[service, r["http_method"], r["http_status"]] = round(r["n"])
    return levels, requests


@pytest.mark.services
async def test_two_processes_log_metrics_reach_influxdb_across_a_restart(tmp_path):
    logs = tmp_path / "var-log"
    lines = Lines(logs)
    lines.write(10, http=False)  # the files exist before the log_collector looks
    tcp, collectd, status_log, status_metric = (free_port() for _ in range(4))
    log_state, metric_state = tmp_path / "log_collector", tmp_path / "metric_collector"

    text = (CONF / "lma_log_collector.toml").read_text()
    text = replace_exactly(text, '"/var/cache/log_collector"', f'"{log_state}"')
    text = text.replace('"/var/log', f'"{logs}')
    text = replace_exactly(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{tcp}"')
    text = replace_exactly(text, "[hekad]\n",
                           f'[hekad]\nstatus_address = "127.0.0.1:{status_log}"\n')
    text = replace_exactly(text, "ticker_interval = 10\npercentile",
                           "ticker_interval = 1\npercentile")
    text = replace_exactly(text, "ticker_interval = 60\n", "ticker_interval = 1\n")
    log_conf = tmp_path / "log_collector.toml"
    log_conf.write_text(text)

    text = (CONF / "lma_metric_collector.toml").read_text()
    text = replace_exactly(text, '"/var/cache/metric_collector"', f'"{metric_state}"')
    text = replace_exactly(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{tcp}"')
    text = replace_exactly(text, 'address = "127.0.0.1:8325"', f'address = "127.0.0.1:{collectd}"')
    text = replace_exactly(text, 'status_address = "127.0.0.1:4353"',
                           f'status_address = "127.0.0.1:{status_metric}"')
    text = text.replace('"/var/lib/', f'"{tmp_path}/lib/')
    metric_conf = tmp_path / "metric_collector.toml"
    metric_conf.write_text(text)

    async with influxdb(tmp_path / "influxdb") as db, EsDouble("opensearch2") as es:
        await db.query("CREATE DATABASE lma")
        env = {**os.environ, **LMA_ENV, "ES_URL": es.url, "INFLUXDB_URL": db.url,
               "TZ": "UTC"}
        run = HekapyProcesses(tmp_path, env)

        async def all_metrics_stored() -> bool:
            levels, requests = await influx_totals(db)
            return levels == lines.levels and requests == lines.requests

        try:
            metric = run.start("metric_collector", metric_conf)
            await wait_for_port(tcp, metric, timeout=60, log=run.log)
            run.start("log_collector", log_conf)
            # Everything up and connected: the first lines' counts are in InfluxDB.
            await run.until(all_metrics_stored, "the first lines' metrics")
            lines.write(80)
            await run.until(all_metrics_stored, "the metrics of 90 lines")

            # The metric_collector stops (SIGTERM: it drains and exits) as new lines
            # come in ...
            lines.write(40)
            metric.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(metric.wait, 60) == 0
            del run.procs["metric_collector"]
            down_at = time.time_ns() // 1_000_000
            # ... and the log_collector reads on: its lines reach Elasticsearch and
            # their metrics pile up in metric_tcpoutput's disk buffer.
            lines.write(40)
            await es.wait_count(lines.total, "log-*", timeout=60,
                                proc=run.procs["log_collector"])
            queue = buffer_dir(str(log_state), "metric_tcpoutput")

            def buffered() -> int:
                return sum(p.stat().st_size for p in queue.iterdir() if p.is_file())

            seen = buffered()
            await run.until(lambda: buffered() > seen, "a tick after those lines, buffered")
            up_at = time.time_ns() // 1_000_000
            levels, _ = await influx_totals(db)
            assert levels != lines.levels  # not there yet

            # Back up: the buffered metrics arrive, then the new ones.
            metric = run.start("metric_collector", metric_conf)
            lines.write(80)
            await run.until(all_metrics_stored, "every metric of 250 lines", timeout=120)

            # A bulk metric as LMA's hekad log_collector sent it (hdd_errors_counter)
            # is exploded: no hostname tag, as in LMA.
            bulk = Message(type="heka.sandbox.bulk_metric", logger="hdd_errors_counter_filter",
                           hostname=HOST, severity=6, payload=json.dumps(
                               [{"name": "hdd_errors_rate", "value": 0.5,
                                 "tags": {"device": "sdb"}}]))
            _r, w = await asyncio.open_connection("127.0.0.1", tcp)
            w.write(frame(encode_message(bulk)))
            await w.drain()

            async def hdd_stored() -> bool:
                return bool(await db.query("SELECT * FROM hdd_errors_rate", db="lma"))

            await run.until(hdd_stored, "the exploded bulk metric")
            w.close()
        finally:
            await run.stop_all()

        # Nothing lost: the sums above matched the lines written, exactly. Points made
        # while the metric_collector was down are there, with their own time.
        rows = await db.query("SELECT * FROM log_messages", db="lma")
        during = [r for r in rows if down_at < r["time"] < up_at and r["value"] > 0]
        assert during, "no log_messages point from the metric_collector's downtime"
        assert {r["service"] for r in rows} == {"nova", "neutron"}
        assert {r["level"] for r in rows} == {"emergency", "alert", "critical", "error",
                                              "warning", "notice", "info", "debug"}
        for r in rows:
            assert (r["hostname"], r["deployment_id"], r["environment_label"]) == (
                HOST, "42", "env-42")
        nova = await db.query("SELECT * FROM openstack_nova_http_response_times", db="lma")
        assert {(r["http_method"], r["http_status"]) for r in nova} == {
            ("GET", "2xx"), ("POST", "2xx"), ("GET", "4xx"), ("DELETE", "2xx")}
        for r in nova:
            assert (r["hostname"], r["deployment_id"], r["environment_label"]) == (
                HOST, "42", "env-42")
            assert r["min"] <= r["upper_90"] <= r["max"] <= r["sum"]
            assert r["rate"] == r["count"]  # count per second, over 1 s ticks
        assert any(down_at < r["time"] < up_at for r in nova)
        neutron = await db.query("SELECT * FROM openstack_neutron_http_response_times",
                                 db="lma")
        assert {(r["http_method"], r["http_status"]) for r in neutron} == {
            ("GET", "2xx"), ("POST", "2xx"), ("GET", "4xx")}
        [hdd] = await db.query("SELECT * FROM hdd_errors_rate", db="lma")
        assert (hdd["device"], hdd["value"], hdd["deployment_id"]) == ("sdb", 0.5, "42")
        assert hdd.get("hostname") is None


# --- the aggregator role (controllers) -----------------------------------------------------

@pytest.mark.services
async def test_aggregator_role_flags_what_other_nodes_send(tmp_path, monkeypatch):
    """conf/lma_aggregator.toml beside the metric_collector in one config directory, as
    LMA's controllers ran both roles: a metric another node sends to port 5565 is
    flagged aggregator = "present" and kept out of InfluxDB; the node's own metrics
    (port 5567) go to InfluxDB; HAProxy's health check on 5566 is answered and becomes
    an lma.http-check message. A stand-in for LMA's GSE filters takes the flagged ones."""
    tcp, collectd, status, agg, check = (free_port() for _ in range(5))
    conf = tmp_path / "metric_collector"
    conf.mkdir()
    text = (CONF / "lma_metric_collector.toml").read_text()
    text = replace_exactly(text, '"/var/cache/metric_collector"', f'"{tmp_path / "state"}"')
    text = replace_exactly(text, 'address = "127.0.0.1:5567"', f'address = "127.0.0.1:{tcp}"')
    text = replace_exactly(text, 'address = "127.0.0.1:8325"', f'address = "127.0.0.1:{collectd}"')
    text = replace_exactly(text, 'status_address = "127.0.0.1:4353"',
                           f'status_address = "127.0.0.1:{status}"')
    text = text.replace('"/var/lib/', f'"{tmp_path}/lib/')
    (conf / "metric_collector.toml").write_text(text)
    text = (CONF / "lma_aggregator.toml").read_text()
    text = replace_exactly(text, ':5565"', f':{agg}"')
    text = replace_exactly(text, ':5566"', f':{check}"')
    (conf / "aggregator.toml").write_text(text)
    (conf / "zz_gse.toml").write_text("""
        [gse_stand_in]
        type = "CollectOutput"
        message_matcher = "Fields[aggregator] != NIL || Type == 'lma.http-check'"
    """.replace("\n        ", "\n"))

    def metric(name: str, host: str) -> Message:
        return Message(type="metric", logger="collectd", hostname=host, severity=6,
                       fields=[Field("name", [name]), Field("value", [12.0], DOUBLE),
                               Field("source", ["nova"])])

    async with influxdb(tmp_path / "influxdb") as db:
        await db.query("CREATE DATABASE lma")
        for k, v in {**LMA_ENV, "INFLUXDB_URL": db.url,
                     "MANAGEMENT_ADDRESS": "127.0.0.1"}.items():
            monkeypatch.setenv(k, v)
        cfg = load_config(conf, strict=True)
        assert cfg.plugins["http-check_decoder"].cls is NoopDecoder
        p = Pipeline(cfg)
        await p.start()
        try:
            for plugin, _ctx in p.inputs:
                if plugin.name not in ("haproxy_stats", "hekapy_stats"):  # tickers
                    await asyncio.wait_for(plugin.listening.wait(), 10)
            sink = CollectOutput.instances["gse_stand_in"]
            other = metric("openstack_nova_total_free_vcpus", "node-3")
            _r, w = await asyncio.open_connection("127.0.0.1", agg)
            w.write(frame(encode_message(other)))
            await w.drain()
            await wait_for(lambda: len(sink.messages) == 1, "the flagged metric", timeout=120)
            w.close()
            _r, w = await asyncio.open_connection("127.0.0.1", tcp)
            w.write(frame(encode_message(metric("openstack_nova_total_used_vcpus", HOST))))
            await w.drain()
            w.close()
            async with aiohttp.ClientSession() as s:
                # HAProxy's `option httpchk`: OPTIONS / without a body, answered 200.
                async with s.options(f"http://127.0.0.1:{check}/") as r:
                    assert r.status == 200
                # A request with a body goes through LMA's noop decoder.
                async with s.post(f"http://127.0.0.1:{check}/", data=b"ping") as r:
                    assert r.status == 200
            await wait_for(lambda: len(sink.messages) == 2, "the health check", timeout=120)
            deadline = time.monotonic() + 30
            while not await db.query("SELECT * FROM openstack_nova_total_used_vcpus",
                                     db="lma"):
                assert time.monotonic() < deadline, "the node's own metric never arrived"
                await asyncio.sleep(0.1)
            # Written in order by the same output: the flagged one would be there too.
            assert not await db.query("SELECT * FROM openstack_nova_total_free_vcpus",
                                      db="lma")
        finally:
            await p.stop()
    flagged, http_check = sink.messages
    assert flagged.get_field("aggregator") == "present"
    assert (flagged.uuid, flagged.hostname, flagged.get_field("name")) == (
        other.uuid, "node-3", "openstack_nova_total_free_vcpus")
    assert flagged.get_field("deployment_id") == "42"  # this node's tags, as LMA's
    assert (http_check.type, http_check.severity, http_check.payload) == (
        "lma.http-check", 7, "")


def test_scribble_decoder_sets_headers_and_fields(tmp_path):
    cfg = load_config(write_config(tmp_path, """
        [scribble]
        type = "ScribbleDecoder"
          [scribble.message_fields]
          aggregator = "present"
          Type = "flagged"
          Severity = "3"
          Pid = "42"
          "size|B" = "10"
    """), strict=True)
    dec = cfg.plugins["scribble"].build()
    msg = Message(type="metric", payload="x", raw=b"\x0a", fields=[Field("name", ["m"])])
    out = dec.decode(msg)
    assert (out.type, out.severity, out.pid, out.payload, out.raw) == (
        "flagged", 3, 42, "x", None)
    assert [(f.name, f.values, f.representation) for f in out.fields] == [
        ("name", ["m"], ""), ("aggregator", ["present"], ""), ("size", ["10"], "B")]
    bad = write_config(tmp_path, """
        [scribble]
        type = "ScribbleDecoder"
          [scribble.message_fields]
          Severity = "high"
    """, "bad.toml")
    assert any("not an integer" in str(e) for e in load_config(bad).errors)
