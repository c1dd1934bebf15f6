"""`hekapy replay` through the scale-out tier, with a real RabbitMQ node: the replay
publishes with conf/amqp_collector.toml's AMQPOutput (made to take logs too) to the
aggregator queue, two conf/amqp_aggregator.toml pipelines index into the Elasticsearch
double, and a second replay of the same archive adds no document (the Uuids are the
daemon's, the aggregators keep them as _id)."""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import aio_pika
import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.benchmarks.openstack_config import openstack_logs
from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.paths import TESTS
from tests.helpers.plugins import config_from
from tests.helpers.replay import DAY, events, expected_messages, run_replay, write_lines
from tests.helpers.wait import wait_for
from tests.services import RabbitMQ

pytestmark = pytest.mark.services

CONF = TESTS.parent / "conf"
COLLECTOR_MATCHER = "message_matcher = \"Type == 'notification' || Type == 'audit'\""


@pytest.fixture(scope="module")
def broker():
    directory = Path(tempfile.mkdtemp(prefix="rmq", dir="/tmp"))
    node = RabbitMQ(directory)
    asyncio.run(node.start())
    yield node
    asyncio.run(node.stop())


def replay_config(state: Path) -> str:
    """conf/amqp_collector.toml (its [hekad] and its AMQPOutput to the aggregators, now
    for logs as well) with LogstreamerInput sections for nova and neutron."""
    text = (CONF / "amqp_collector.toml").read_text()
    assert COLLECTOR_MATCHER in text
    text = text.replace(COLLECTOR_MATCHER, COLLECTOR_MATCHER.replace(
        '"Type ==', "\"Type == 'log' || Type =="))
    text = text.replace('base_dir = "/var/cache/hekapy-collector"', f'base_dir = "{state}"')
    sections = re.sub(r"^\[hekad\][^\[]*", "", openstack_logs(state), flags=re.S)
    return text + "\n" + sections


async def replay(conf: Path, *args: str) -> str:
    rc, text = await run_replay(conf, *args)
    assert rc == 0, text[-3000:]
    return text


async def test_replay_publishes_to_the_aggregators_and_twice_adds_nothing(
        broker, tmp_path, monkeypatch):
    conn = await aio_pika.connect(broker.url)
    async with conn:
        await (await conn.channel()).queue_delete("hekapy.aggregator")
    archive = tmp_path / "archive"
    layout = {archive / "nova" / "nova-api.log.1": ("nova-api", 300, DAY),
              archive / "nova" / "nova-api.log": ("nova-api", 300, DAY + 300),
              archive / "neutron" / "lbaas-agent.log": ("lbaas-agent", 300, DAY)}
    expected = 0
    for i, (path, (service, n, start)) in enumerate(layout.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        evs = events(service, n, start, seed=i)
        write_lines(path, evs)
        expected += expected_messages(evs)
    async with EsDouble() as es:
        for name, value in (("RABBITMQ_URL", broker.url), ("ES_URL", es.url),
                            ("HOSTNAME", "ctl-1"), ("HEKAPY_DEPLOYMENT_ID", "7")):
            monkeypatch.setenv(name, value)
        aggregators = []
        for name in ("a1", "a2"):
            text = (CONF / "amqp_aggregator.toml").read_text()
            text = text.replace('base_dir = "/var/cache/', f'base_dir = "{tmp_path}/{name}-')
            text = text.replace("flush_interval = 1000", "flush_interval = 20")
            (tmp_path / name).mkdir()
            aggregators.append(Pipeline(config_from(tmp_path / name, text)))
        for p in aggregators:
            await p.start()
        try:
            await asyncio.wait_for(asyncio.gather(
                *(p.inputs[0][0].consuming.wait() for p in aggregators)), 60)
            conf = tmp_path / "replay.toml"
            conf.write_text(replay_config(tmp_path / "collector"))
            await replay(conf, "--workers", "2", str(archive))
            # Acknowledged by RabbitMQ (publisher confirms) once replay ends; the
            # aggregators index on their own time.
            await es.wait_count(expected, "log-*", timeout=120)

            # The same archive again, from scratch: the same _ids, nothing new.
            await replay(conf, "--workers", "2", str(archive))

            def consumed() -> int:
                return sum(p.inputs[0][1].stats.messages_in for p in aggregators)

            await wait_for(lambda: consumed() >= 2 * expected,
                           "the second replay's messages at the aggregators", timeout=120)
            await asyncio.wait_for(asyncio.gather(
                *(p.inputs[0][1].tracker.wait_idle() for p in aggregators)), 60)
        finally:
            for p in aggregators:
                await p.stop()
        assert es.count("log-*") == expected
        assert sum(es.write_counts.values()) == 2 * expected
        docs = [d["_source"] for d in es.docs("log-*")]
    assert {d["Logger"] for d in docs} == {"openstack.nova", "openstack.neutron"}
    assert {d["Hostname"] for d in docs} == {"ctl-1"}
    # Both aggregators took part (competing consumers).
    assert all(p.inputs[0][1].stats.messages_in > 0 for p in aggregators)
