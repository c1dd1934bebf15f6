"""Every field a Kibana saved object (conf/kibana/) uses exists, with the mapped type its
visualization needs, in what hekapy really produces: oslo.log lines through the shipped
conf/lma_log_collector.toml, and OpenStack notifications and CADF audit events (the
bodies pycadf and keystonemiddleware emitted) sent by oslo.messaging through RabbitMQ
to the shipped conf/amqp_collector.toml and conf/amqp_aggregator.toml, all into the
Elasticsearch double with `hekapy es-setup`'s templates installed first. A dashboard
that names a field hekapy does not produce, or one mapped as text where a chart splits
by it, fails here."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.app import es_setup
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.outputs.elasticsearch.client import EsClient
from tests.helpers.paths import CONF, LAB_DATA, TEST_TOOLS
from tests.helpers.plugins import config_from
from tests.services import RabbitMQ, free_port

NOTIFY = TEST_TOOLS / "oslo_notify_events.py"
CADF = json.loads((LAB_DATA / "cadf_notifications.json").read_text())
NUMERIC = {"long", "integer", "short", "byte", "float", "double", "half_float",
           "scaled_float"}
AGGREGATABLE = NUMERIC | {"keyword", "date", "boolean", "ip"}
_KQL_FIELD = re.compile(r"([A-Za-z_][\w.]*)\s*(:|<=|>=|<|>)")


# --- what the saved objects use ----------------------------------------------------------

def field_uses() -> list[tuple[str, str, str, str]]:
    """(index pattern, field, need, where) for every field the objects use; need is
    'date', 'aggregatable', 'numeric' or 'present'."""
    uses = []
    for path in sorted((CONF / "kibana").glob("*.ndjson")):
        objects = [json.loads(line) for line in path.read_text().splitlines()][:-1]
        titles = {o["id"]: o["attributes"]["title"] for o in objects
                  if o["type"] == "index-pattern"}
        for o in objects:
            attrs, where = o["attributes"], f"{path.name}:{o['id']}"
            patterns = {titles[r["id"]] for r in o["references"]
                        if r["type"] == "index-pattern"}
            if o["type"] == "index-pattern":
                uses.append((attrs["title"], attrs["timeFieldName"], "date", where))
                continue
            for pattern in patterns:
                for column in attrs.get("columns", []):
                    uses.append((pattern, column, "present", where))
                for field, _order in attrs.get("sort", []):
                    uses.append((pattern, field, "aggregatable", where))
                source = json.loads(attrs.get("kibanaSavedObjectMeta", {}).get(
                    "searchSourceJSON", "{}"))
                for field, op in _KQL_FIELD.findall(source.get("query", {}).get("query", "")):
                    uses.append((pattern, field, "present" if op == ":" else "numeric",
                                 where))
                if "visState" not in attrs:
                    continue
                state = json.loads(attrs["visState"])
                for agg in state["aggs"]:
                    field = agg["params"].get("field")
                    if field is None:
                        continue
                    need = {"date_histogram": "date", "terms": "aggregatable"}.get(
                        agg["type"], "numeric")
                    uses.append((pattern, field, need, where))
                for control in state["params"].get("controls", []):
                    uses.append((pattern, control["fieldName"], "aggregatable", where))
    return uses


def test_the_field_walk_sees_every_kind_of_use():
    uses = field_uses()
    needs = {(p, f, n) for p, f, n, _ in uses}
    assert ("log-*", "Timestamp", "date") in needs
    assert ("log-*", "severity_label", "aggregatable") in needs
    assert ("log-*", "Severity", "numeric") in needs  # the error loggers' query
    assert ("audit-*", "initiator_host_address", "aggregatable") in needs
    assert ("notification-*", "display_name", "present") in needs
    assert {p for p, _, _, _ in uses} == {"log-*", "notification-*", "audit-*"}


# --- what hekapy produces -----------------------------------------------------------------

def stamp(seconds_ago: float) -> str:
    t = time.time() - seconds_ago
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}"


def write_logs(logs: Path) -> int:
    """oslo.log lines of three services: API requests, errors with a request id,
    warnings. Returns how many lines."""
    lines = {"nova/nova-api.log": [], "neutron/server.log": [], "keystone/keystone.log": []}
    for i in range(30):
        req = f"req-{i:08x}-1111-4222-8333-444455556666"
        ctx = f"[{req} 8f1c2a7e9b3d4e5f8f1c2a7e9b3d4e5f 0b1d2c3e4f5a6b7c0b1d2c3e4f5a6b7c - - -]"
        ts = stamp(60 - i)
        lines["nova/nova-api.log"] += [
            f'{ts} 2310 INFO nova.osapi_compute.wsgi.server {ctx} 10.0.0.{i} "GET '
            f'/v2.1/servers/detail HTTP/1.1" status: 200 len: 1893 time: 0.{i + 100:04d}',
            f"{ts} 2310 ERROR nova.compute.manager {ctx} Instance failed to spawn: "
            "libvirtError: internal error"]
        lines["neutron/server.log"].append(
            f"{ts} 4120 WARNING neutron.plugins.ml2.managers {ctx} Port {i} has no binding")
        lines["keystone/keystone.log"].append(
            f"{ts} 998 INFO keystone.common.wsgi {ctx} POST http://ctl:5000/v3/auth/tokens")
    for name, text in lines.items():
        (logs / name).parent.mkdir(parents=True, exist_ok=True)
        (logs / name).write_text("\n".join(text) + "\n")
    return sum(len(v) for v in lines.values())


def notifications() -> list[dict]:
    """Nova state changes and creations, a Cinder volume, and the CADF captures."""
    events = []
    # (old_state, state, old_task_state, new_task_state), null where Nova sends null
    states = [("building", "active", "spawning", None),
              ("active", "active", None, "powering-off"),
              ("active", "stopped", "powering-off", None),
              ("stopped", "active", None, "powering-on"),
              ("active", "deleted", "deleting", None)]
    for i, (old, new, old_task, new_task) in enumerate(states * 3):
        events.append({"publisher_id": f"compute.node-{i % 2}",
                       "event_type": "compute.instance.update", "payload": {
                           "instance_id": f"{i:08x}-0000-4000-8000-000000000001",
                           "tenant_id": "112245730b1f4858ab62e3673e1ee9e2",
                           "user_id": "8f1c2a7e9b3d4e5f8f1c2a7e9b3d4e5f",
                           "display_name": f"vm-{i}", "old_state": old, "state": new,
                           "old_task_state": old_task, "new_task_state": new_task,
                           "memory_mb": 512, "vcpus": 1, "host": f"node-{i % 2}"}})
    events.append({"publisher_id": "compute.node-0", "event_type":
                   "compute.instance.create.end", "payload": {
                       "instance_id": "00000009-0000-4000-8000-000000000002",
                       "tenant_id": "212245730b1f4858ab62e3673e1ee9e2", "state": "active",
                       "display_name": "vm-new", "created_at": "2026-11-23 20:16:20+00:00",
                       "launched_at": "2026-11-23T20:16:28.500000"}})
    events.append({"publisher_id": "volume.node-2", "event_type": "volume.create.end",
                   "priority": "warn", "payload": {
                       "volume_id": "0b7a4f5c9f778f0bd1f0a1b23f1a7c3e", "status": "available",
                       "size": 10, "display_name": "vol1",
                       "tenant_id": "112245730b1f4858ab62e3673e1ee9e2"}})
    for body in CADF:
        notif = json.loads(json.loads(body)["oslo.message"])
        events.append({"publisher_id": notif["publisher_id"],
                       "event_type": notif["event_type"], "payload": notif["payload"]})
    return events


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the shipped config no longer has {old!r}"
    return text.replace(old, new)


@pytest.fixture(scope="module")
def broker():
    directory = Path(tempfile.mkdtemp(prefix="rmq", dir="/tmp"))
    node = RabbitMQ(directory)
    asyncio.run(node.start())
    yield node
    asyncio.run(node.stop())


async def purge(url: str) -> None:
    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel()
        for q in ("notifications.info", "notifications.warn", "notifications.error",
                  "hekapy.aggregator"):
            await ch.queue_delete(q)
        await ch.exchange_delete("openstack")


async def produce(es: EsDouble, broker: RabbitMQ, tmp: Path, monkeypatch) -> None:
    """The shipped log collector, notification collector and aggregator, fed for real."""
    for key, value in {"HOSTNAME": "ctl-1", "HEKAPY_DEPLOYMENT_ID": "5", "ES_URL": es.url,
                       "RABBITMQ_URL": broker.url, "MANAGEMENT_ADDRESS": "127.0.0.1",
                       "INFLUXDB_URL": "http://127.0.0.1:9", "INFLUXDB_PASSWORD": "x"
                       }.items():
        monkeypatch.setenv(key, value)
    logs = tmp / "log"
    log_lines = write_logs(logs)
    for quiet in ("glance", "cinder", "heat", "apache2"):  # the shipped config reads them
        (logs / quiet).mkdir()

    def load(name: str, state: str, *edits: tuple[str, str]) -> Pipeline:
        text = (CONF / name).read_text()
        for old, new in edits:
            text = replace(text, old, new)
        text = re.sub(r'^status_address = .*\n', "", text, flags=re.M)  # the role's own
        text = replace(text, "[hekad]\n", '[hekad]\nstatus_address = ""\n')
        text = replace(text, 'base_dir = "/var/cache/', f'base_dir = "{tmp / state}/')
        (tmp / state).mkdir()
        return Pipeline(config_from(tmp / state, text))

    collector = load("lma_log_collector.toml", "logs", ('"/var/log', f'"{logs}'),
                     ("flush_interval = 5000", "flush_interval = 50"),
                     ('address = "127.0.0.1:5567"', f'address = "127.0.0.1:{free_port()}"'))
    await purge(broker.url)
    notifier = load("amqp_collector.toml", "notif")
    aggregator = load("amqp_aggregator.toml", "agg",
                      ("flush_interval = 1000", "flush_interval = 50"))
    pipelines = [aggregator, notifier, collector]
    for p in pipelines:
        await p.start()
    try:
        await asyncio.wait_for(aggregator.inputs[0][0].consuming.wait(), 60)
        events = notifications()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(NOTIFY), broker.rabbit_url, stdin=subprocess.PIPE,
            stderr=subprocess.PIPE)
        _, err = await proc.communicate(json.dumps(events).encode())
        assert proc.returncode == 0, err.decode()[-2000:]
        await es.wait_count(len(CADF), "audit-*")
        await es.wait_count(len(events) - len(CADF), "notification-*")
        await es.wait_count(log_lines, "log-*")
    finally:
        for p in reversed(pipelines):
            await p.stop()


@pytest.mark.services
async def test_every_field_the_saved_objects_use_is_produced_and_mapped(
        broker, tmp_path, monkeypatch):
    async with EsDouble("es8") as es:
        assert await es_setup.setup(EsClient([es.url]), 1, 0, 30) == 0
        await produce(es, broker, tmp_path, monkeypatch)
        problems = []
        for pattern, field, need, where in field_uses():
            indices = es._match(pattern)
            assert indices, f"no {pattern} index"
            mapped = {ix.mapping.get(field) for ix in indices} - {None}
            docs = [d for ix in indices for d in ix.parsed.values()
                    if d.get(field) not in (None, "")]
            if not docs:
                problems.append(f"{where}: no {pattern} document has {field}")
            if need == "date" and mapped != {"date"}:
                problems.append(f"{where}: {pattern} {field} is mapped {mapped}, not date")
            elif need == "aggregatable" and (not mapped or not mapped <= AGGREGATABLE):
                problems.append(f"{where}: {pattern} {field} is mapped {mapped}: Kibana "
                                "cannot aggregate on it")
            elif need == "numeric" and not mapped <= NUMERIC:
                problems.append(f"{where}: {pattern} {field} is mapped {mapped}, not a "
                                "number")
        assert not problems, "\n".join(sorted(set(problems)))
        # The filters every dashboard opens with have something to offer.
        for pattern in ("log-*", "notification-*", "audit-*"):
            labels = {d["_source"].get("environment_label") for d in es.docs(pattern)}
            assert labels == {"env-5"}, (pattern, labels)


def test_a_field_hekapy_does_not_produce_would_fail(tmp_path):
    """The check above is not vacuous: an aggregation on a field no document has, or on
    a dynamically mapped string, is reported."""
    uses = [("audit-*", "initiator_name", "aggregatable", "x"),
            ("audit-*", "no_such_field", "aggregatable", "y")]
    mapping = {"initiator_name": "text"}
    docs = [{"initiator_name": "alice"}]
    problems = []
    for pattern, field, need, where in uses:
        mapped = {mapping.get(field)} - {None}
        if not [d for d in docs if d.get(field)]:
            problems.append(f"{where}: no {pattern} document has {field}")
        if need == "aggregatable" and (not mapped or not mapped <= AGGREGATABLE):
            problems.append(f"{where}: {field} mapped {mapped}")
    assert problems == ["x: initiator_name mapped {'text'}",
                        "y: no audit-* document has no_such_field",
                        "y: no_such_field mapped set()"]
