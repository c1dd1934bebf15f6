"""Notifications/s from a pre-filled RabbitMQ queue into the Elasticsearch double, next to
a bare aio-pika consumer draining the same queue in the same run (what the broker can
deliver here).

    .venv/bin/python -m hekapy.benchmarks.amqp_throughput --notifications 50000

(from the repository root: it starts a private RabbitMQ node with the tests' own helper,
tests/services.py, and the Elasticsearch double in-process)

The queue is filled with oslo.messaging v2 envelopes shaped like the captured one
(tests/data/lab/oslo_notification_envelope.json): compute.instance.create.end with a
realistic payload, unique message ids. Reported: notifications/s for the bare consumer
(one ack per 100 messages, prefetch 1000) and for hekapy (AMQPInput → NotificationDecoder →
ESJsonEncoder → ElasticSearchOutput, acks after the double stored each bulk), and
their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.pipeline import Pipeline

QUEUE = "bench.notifications"


def envelope(i: int) -> bytes:
    inner = {
        "message_id": str(uuid.UUID(int=i, version=4)),
        "publisher_id": f"compute.node-{i % 50}", "event_type": "compute.instance.create.end",
        "priority": "INFO", "timestamp": "2026-11-23 20:16:28.813068",
        "_unique_id": f"{i:032x}",
        "payload": {"tenant_id": "112245730b1f4858ab62e3673e1ee9e2",
                    "user_id": "8206d40abcc3452d8a9c1ea629b4a8d0",
                    "instance_id": str(uuid.UUID(int=i + 1, version=4)),
                    "display_name": f"vm-{i}", "instance_type": "m1.small",
                    "host": f"node-{i % 50}.domain.tld", "state": "active",
                    "memory_mb": 2048, "vcpus": 1, "disk_gb": 20,
                    "created_at": "2026-11-23 20:16:00+00:00",
                    "launched_at": "2026-11-23T20:16:28.000000",
                    "deleted_at": "", "terminated_at": "", "availability_zone": "nova",
                    "image_name": "cirros"}}
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)}).encode()


async def fill(url: str, n: int) -> None:
    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel()
        await ch.queue_delete(QUEUE)
        await ch.declare_queue(QUEUE, auto_delete=False)
        for start in range(0, n, 1000):
            await asyncio.gather(*(ch.default_exchange.publish(
                aio_pika.Message(envelope(i), content_type="application/json",
                                 delivery_mode=2), routing_key=QUEUE)
                for i in range(start, min(start + 1000, n))))


async def bare_consumer(url: str, n: int) -> float:
    conn = await aio_pika.connect(url)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=1000)
        q = await ch.declare_queue(QUEUE, auto_delete=False)
        done = asyncio.Event()
        count = 0

        async def on_message(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            json.loads(msg.body)
            count += 1
            if count % 100 == 0 or count == n:  # the same ack discipline as hekapy's
                await msg.ack(multiple=True)
            if count == n:
                done.set()

        t0 = time.perf_counter()
        tag = await q.consume(on_message)
        await done.wait()
        elapsed = time.perf_counter() - t0
        await q.cancel(tag)
    return elapsed


async def through_hekapy(url: str, es: EsDouble, n: int, tmp: Path) -> float:
    conf = tmp / "bench.toml"
    conf.write_text(f"""
[hekad]
base_dir = "{tmp / 'state'}"
[notifications]
type = "AMQPInput"
url = "{url}"
queue = "{QUEUE}"
bind_queue = false
queue_auto_delete = false
prefetch_count = 1000
decoder = "notification_decoder"
[notification_decoder]
type = "NotificationDecoder"
[enc]
type = "ESJsonEncoder"
index = "%{{Type}}-%{{%Y.%m.%d}}"
es_index_from_timestamp = true
type_name = ""
id = "%{{UUID}}"
[es]
type = "ElasticSearchOutput"
message_matcher = "Type == 'notification'"
encoder = "enc"
server = "{es.url}"
flush_count = 1000
flush_interval = 50
max_in_flight = 4
use_buffering = false
""")
    p = Pipeline(load_config(conf, strict=True))
    t0 = time.perf_counter()
    await p.start()
    await es.wait_count(n, "notification-*", timeout=600)
    elapsed = time.perf_counter() - t0
    await p.stop()
    return elapsed


async def main_async(args: argparse.Namespace) -> None:
    from tests.services import RabbitMQ  # the same start-up the tests use
    n = args.notifications
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        broker = RabbitMQ(tmp / "rabbitmq")
        await broker.start()
        try:
            rows = []
            for run in range(args.runs):
                await fill(broker.url, n)
                bare = await bare_consumer(broker.url, n)
                await fill(broker.url, n)
                async with EsDouble() as es:
                    (tmp / f"run{run}").mkdir()
                    hk = await through_hekapy(broker.url, es, n, tmp / f"run{run}")
                    assert len(es.ids("notification-*")) == n, "documents missing"
                rows.append((n / bare, n / hk))
                print(f"run {run + 1}: bare consumer {n / bare:,.0f} notifications/s, "
                      f"hekapy to ES double {n / hk:,.0f} notifications/s "
                      f"({bare / hk:.0%} of the bare consumer)", flush=True)
            best_bare = max(r[0] for r in rows)
            best_hk = max(r[1] for r in rows)
            print(f"best: bare {best_bare:,.0f}/s, hekapy {best_hk:,.0f}/s, ratio "
                  f"{best_hk / best_bare:.0%}")
        finally:
            await broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notifications", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
