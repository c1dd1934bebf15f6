"""conf/lma_log_collector.toml run for real: demo OpenStack, LBaaS, Keystone and HAProxy
logs tailed, decoded by the SandboxDecoder sections (native decoders) and shipped to the
Elasticsearch test double as LMA's documents."""

from __future__ import annotations

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.app.demo import DemoLogWriter
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.paths import CONF
from tests.helpers.wait import wait_for

LOG_COLLECTOR = CONF / "lma_log_collector.toml"


async def test_lma_log_collector_ships_lmas_documents(tmp_path, monkeypatch):
    logs = tmp_path / "var-log"
    writer = DemoLogWriter(logs, seed=3)
    lines = writer.write_batch(400)
    text = LOG_COLLECTOR.read_text().replace('"/var/log', f'"{logs}').replace(
        '"/var/cache/log_collector"', f'"{tmp_path / "state"}"')
    conf = tmp_path / "log_collector.toml"
    conf.write_text(text)
    async with EsDouble("opensearch2") as es:
        monkeypatch.setenv("ES_URL", es.url)
        monkeypatch.setenv("HOSTNAME", "node-9")
        monkeypatch.setenv("HEKAPY_DEPLOYMENT_ID", "42")
        cfg = load_config(conf, strict=True)
        p = Pipeline(cfg)
        await p.start()
        # Every line becomes a document, tracebacks merged: fewer documents than lines.
        await es.wait_count(int(lines * 0.9), "log-*")
        await wait_for(lambda: all(ctx.stats.decode_failures == 0 for _, ctx in p.inputs),
                       "no decode failure")
        docs = [d["_source"] for d in es.docs("log-*")]
        await p.stop()
    by_logger: dict[str, list[dict]] = {}
    for d in docs:
        by_logger.setdefault(d["Logger"], []).append(d)
    assert {"openstack.nova", "openstack.neutron", "openstack.keystone",
            "system.haproxy"} <= set(by_logger)
    nova = by_logger["openstack.nova"][0]
    # LMA's document shape: its field list, flattened dynamic fields, deployment tags.
    assert {"Hostname", "Logger", "Payload", "Pid", "Severity", "Timestamp", "Type",
            "severity_label", "python_module", "programname", "deployment_id",
            "environment_label", "openstack_region"} <= set(nova)
    assert "Uuid" not in nova and nova["Type"] == "log" and nova["Hostname"] == "node-9"
    assert nova["deployment_id"] == "42" and nova["environment_label"] == "env-42"
    assert nova["Timestamp"].endswith("+0000") and len(nova["Timestamp"]) == 24
    lbaas = [d for d in by_logger["openstack.neutron"] if d["programname"] == "lbaas-agent"]
    assert lbaas and any("loadbalancer_id" in d or "lbaas_pool_id" in d for d in lbaas)
    assert any("http_status" in d for d in by_logger["openstack.keystone"])
    assert all("haproxy_backend" in d for d in by_logger["system.haproxy"])
    # The documents' ids are their Uuids: a replay would overwrite, not duplicate.
    assert set(es.write_counts.values()) == {1}
