"""AMQPInput over a real RabbitMQ (its own node, tests/services.py) fed by
oslo.messaging's own Notifier (drivers messaging and messagingv2), decoded by the
NotificationDecoder into the Elasticsearch double: v1 and v2 envelopes, acks only after
storing, prefetch as backpressure, dead-lettering, a broker restart and a kill -9 of
hekapy mid-stream with every notification indexed once by `_id`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

import aio_pika
import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.collectors import HEKAPY
from tests.helpers.paths import CONF, LAB_DATA, TEST_TOOLS
from tests.helpers.plugins import config_from, write_config
from tests.helpers.wait import wait_for
from tests.services import RabbitMQ, stop_process

pytestmark = pytest.mark.services

NOTIFY = TEST_TOOLS / "oslo_notify.py"
QUEUES = ["notifications.info", "notifications.warn", "notifications.error"]


@pytest.fixture(scope="module")
def broker():
    """One RabbitMQ node for the module (it takes ~7 s to start)."""
    directory = Path(tempfile.mkdtemp(prefix="rmq", dir="/tmp"))
    node = RabbitMQ(directory)
    asyncio.run(node.start())
    yield node
    asyncio.run(node.stop())


async def purge(url: str, queues: list[str]) -> None:
    """Start from nothing: the queues and oslo's exchange (declared durable or not by
    the test before)."""
    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel()
        for q in queues:
            await ch.queue_delete(q)
        await ch.exchange_delete("openstack")


async def notify(url: str, driver: str, count: int, start: int, durable: bool = False) -> None:
    args = [sys.executable, str(NOTIFY), url, driver, str(count), str(start)]
    if durable:
        args.append("--durable")
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]


def config(url: str, es_url: str, tmp_path: Path, input_extra: str = "",
           es_extra: str = "") -> str:
    return f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        hostname = "collector-1"
        [openstack_notifications]
        type = "AMQPInput"
        url = "{url}"
        exchange = "openstack"
        exchange_type = "topic"
        exchange_auto_delete = false
        queues = {QUEUES!r}
        queue_auto_delete = false
        prefetch_count = 100
        decoder = "notification_decoder"
        {input_extra}
        [notification_decoder]
        type = "SandboxDecoder"
        filename = "/usr/share/lma_collector/decoders/notification.lua"
        [elasticsearch_encoder]
        type = "ESJsonEncoder"
        index = "%{{Type}}-%{{%Y.%m.%d}}"
        es_index_from_timestamp = true
        type_name = ""
        id = "%{{UUID}}"
        [elasticsearch_output]
        type = "ElasticSearchOutput"
        message_matcher = "Type == 'notification' || Type == 'audit'"
        encoder = "elasticsearch_encoder"
        server = "{es_url}"
        flush_count = 500
        flush_interval = 20
        retry_delay = "5ms"
        retry_max_delay = "50ms"
        use_buffering = false
        {es_extra}
    """


async def test_oslo_notifications_v1_and_v2_into_elasticsearch(broker, tmp_path):
    await purge(broker.url, QUEUES)
    async with EsDouble() as es:
        p = Pipeline(config_from(tmp_path, config(broker.url, es.url, tmp_path)))
        await p.start()
        try:
            await notify(broker.rabbit_url, "messaging", 60, 0)
            conn = await aio_pika.connect(broker.url)
            async with conn:  # undecodable, no dead-letter exchange: acked and counted
                ch = await conn.channel()
                await ch.default_exchange.publish(aio_pika.Message(b"garbage"),
                                                  routing_key="notifications.info")
            await notify(broker.rabbit_url, "messagingv2", 60, 60)
            await es.wait_count(120, "notification-*")
        finally:
            await p.stop()
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            for q in QUEUES:  # nothing left behind, nothing requeued
                declared = await ch.declare_queue(q, passive=True)
                assert declared.declaration_result.message_count == 0, q
        docs = {d["_source"]["display_name"]: d["_source"] for d in es.docs("notification-*")}
    assert len(docs) == 120
    for i in (0, 5, 7, 61, 65, 70):
        d = docs[f"vm-{i}"]
        assert d["Type"] == "notification" and d["Logger"] == "nova"
        assert d["event_type"] == "compute.instance.create.end"
        assert d["Hostname"] == f"node-{i % 3}" and d["publisher"] == "compute"
        assert d["tenant_id"] == "11224573-0b1f-4858-ab62-e3673e1ee9e2"
        want = ("ERROR", 3) if i % 7 == 0 else ("WARN", 4) if i % 5 == 0 else ("INFO", 6)
        assert (d["severity_label"], d["Severity"]) == want
    stats = p.inputs[0][1].stats
    assert stats.decode_failures == 1 and stats.messages_in == 121


async def test_acks_wait_for_elasticsearch_and_prefetch_bounds_the_rest(broker, tmp_path):
    """With Elasticsearch down nothing is acknowledged: the consumer holds only
    prefetch_count messages and the rest wait in RabbitMQ; after a stop they are all
    still there, and they are indexed once it comes back."""
    await purge(broker.url, QUEUES)
    await notify(broker.rabbit_url, "messagingv2", 50, 0)
    async with EsDouble() as es:
        await es.go_down()
        cfg = config(broker.url, es.url, tmp_path).replace("prefetch_count = 100",
                                                           "prefetch_count = 10")
        p = Pipeline(config_from(tmp_path, cfg))
        await p.start()
        amqp_input = p.inputs[0][0]
        await wait_for(lambda: p.outputs[0][1].stats.retried > 0, "a refused bulk", timeout=300)
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            waiting = 0
            for q in QUEUES:
                waiting += (await ch.declare_queue(q, passive=True)).declaration_result \
                    .message_count
        # 3 queues x prefetch 10 on one channel: RabbitMQ's prefetch is per consumer.
        assert waiting >= 50 - 3 * 10
        await p.stop()
        assert amqp_input.ack_lost == 0
        await es.come_back()
        p = Pipeline(config_from(tmp_path, cfg))
        await p.start()
        try:
            await es.wait_count(50, "notification-*")
        finally:
            await p.stop()
        assert len(es.ids("notification-*")) == 50


async def test_undecodable_messages_are_dead_lettered_or_dropped(broker, tmp_path):
    queue = "hekapy.dlx.test"
    await purge(broker.url, [queue, "hekapy.dead"])
    conn = await aio_pika.connect(broker.url)
    async with conn:
        ch = await conn.channel()
        dlx = await ch.declare_exchange("hekapy.dlx", "fanout", durable=False,
                                        auto_delete=False)
        dead = await ch.declare_queue("hekapy.dead", auto_delete=False)
        await dead.bind(dlx)
    async with EsDouble() as es:
        cfg = config(broker.url, es.url, tmp_path, input_extra=(
            f'queue = "{queue}"\ndead_letter_exchange = "hekapy.dlx"'))
        cfg = cfg.replace(f"queues = {QUEUES!r}", "")
        p = Pipeline(config_from(tmp_path, cfg))
        await p.start()
        try:
            conn = await aio_pika.connect(broker.url)
            async with conn:
                ch = await conn.channel()
                # Declared as the input declares it (it may not have connected yet).
                await ch.declare_queue(queue, auto_delete=False, arguments={
                    "x-dead-letter-exchange": "hekapy.dlx"})
                good = (LAB_DATA / "oslo_notification_envelope.json").read_bytes()
                for body in (b"not json", good, b'{"oslo.version": "2.0"}'):
                    await ch.default_exchange.publish(aio_pika.Message(body),
                                                      routing_key=queue)
                await es.wait_count(1, "notification-*")
                dead = await ch.declare_queue("hekapy.dead", passive=True)
                bodies: list[bytes] = []
                both = asyncio.Event()

                async def on_dead(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                    bodies.append(msg.body)
                    await msg.ack()
                    if len(bodies) == 2:
                        both.set()

                await dead.consume(on_dead)
                await asyncio.wait_for(both.wait(), 30)
        finally:
            await p.stop()
    assert sorted(bodies) == [b"not json", b'{"oslo.version": "2.0"}']
    assert p.inputs[0][0].rejected == 2
    assert p.inputs[0][1].stats.decode_failures == 2


@pytest.mark.faults
async def test_broker_restart_and_kill_9_lose_nothing(broker, tmp_path):
    """oslo.messaging with durable queues (amqp_durable_queues): a broker restart while
    hekapy consumes and a kill -9 of hekapy mid-stream: every notification sent is
    indexed, each once by _id."""
    await purge(broker.url, QUEUES)
    total = 3000
    await notify(broker.rabbit_url, "messagingv2", 2000, 0, durable=True)
    async with EsDouble() as es:
        es_extra = "max_in_flight = 2"
        text = config(broker.url, es.url, tmp_path,
                      input_extra="queue_durability = true\nexchange_durability = true",
                      es_extra=es_extra).replace("flush_count = 500", "flush_count = 50")
        path = write_config(tmp_path, text)
        cmd = [*HEKAPY, "run", "-c", str(path)]
        log = open(tmp_path / "hekapy.log", "ab")  # the children keep it
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        try:
            await es.wait_count(300, "notification-*", timeout=60, proc=proc)
            await broker.stop()
            await broker.start()
            await es.wait_count(900, "notification-*", timeout=90, proc=proc)
            proc.kill()  # kill -9, mid-stream
            proc.wait()
            await notify(broker.rabbit_url, "messagingv2", total - 2000, 2000, durable=True)
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
            await es.wait_count(total, "notification-*", timeout=120, proc=proc)
        finally:
            await stop_process(proc)
            log.close()
        ids = es.ids("notification-*")
        names = [d["_source"]["display_name"] for d in es.docs("notification-*")]
    assert len(ids) == total
    assert set(names) == {f"vm-{i}" for i in range(total)}
    # A row of the fault suite's accounting table (tests/fault_harness.py).
    from tests.fault_harness import account_seqs
    account_seqs("RabbitMQ restarted, then kill -9 of hekapy (oslo notifications)", total,
                 [int(n[3:]) for n in names], [])


async def test_collector_to_aggregators_over_rabbitmq(broker, tmp_path, monkeypatch):
    """conf/amqp_collector.toml and two conf/amqp_aggregator.toml processes: the
    collector decodes oslo notifications and publishes Heka protobuf frames; the two
    aggregators share the queue (competing consumers) and index every notification
    once, with the collector's Uuid as _id and its fields intact."""
    await purge(broker.url, [*QUEUES, "hekapy.aggregator"])
    conf = CONF
    async with EsDouble() as es:
        monkeypatch.setenv("RABBITMQ_URL", broker.url)
        monkeypatch.setenv("ES_URL", es.url)
        monkeypatch.setenv("HOSTNAME", "ctl-1")
        monkeypatch.setenv("HEKAPY_DEPLOYMENT_ID", "7")

        def load(name: str, state: str) -> Pipeline:
            text = (conf / name).read_text()
            text = text.replace('base_dir = "/var/cache/', f'base_dir = "{tmp_path}/')
            text = text.replace("flush_interval = 1000", "flush_interval = 20")
            return Pipeline(config_from(tmp_path / state, text))

        for d in ("a1", "a2", "c"):
            (tmp_path / d).mkdir()
        aggregators = [load("amqp_aggregator.toml", "a1"), load("amqp_aggregator.toml", "a2")]
        collector = load("amqp_collector.toml", "c")
        for p in (*aggregators, collector):
            await p.start()
        try:
            # Both aggregators consume before anything is published (round robin).
            await asyncio.wait_for(asyncio.gather(
                *(p.inputs[0][0].consuming.wait() for p in aggregators)), 60)
            await notify(broker.rabbit_url, "messagingv2", 600, 0)
            await es.wait_count(600, "notification-*")
        finally:
            for p in (collector, *aggregators):
                await p.stop()
        docs = [d for d in es.docs("notification-*")]
    assert len({d["_id"] for d in docs}) == 600
    assert {d["_source"]["display_name"] for d in docs} == {f"vm-{i}" for i in range(600)}
    d = next(d["_source"] for d in docs if d["_source"]["display_name"] == "vm-4")
    assert (d["Hostname"], d["Logger"], d["Severity"]) == ("node-1", "nova", 6)
    assert d["tenant_id"] == "11224573-0b1f-4858-ab62-e3673e1ee9e2"
    # The deployment tags the Kibana dashboards filter on.
    assert (d["environment_label"], d["deployment_id"]) == ("env-7", "7")
    taken = [p.inputs[0][1].stats.messages_in for p in aggregators]
    assert sum(taken) >= 600 and min(taken) > 0, taken
