"""The benchmark corpus (benchmarks/corpus.py): deterministic, the asked size, and every
line decodes with the LMA decoders (oslo.log's own formatter wrote the OpenStack lines;
tracebacks merge into one message each)."""

from __future__ import annotations

import filecmp
import json

from hekapy.benchmarks.corpus import Corpus
from hekapy.collector.engine.message import Message
from hekapy.decoders.haproxy_log import HaproxyLogDecoder
from hekapy.decoders.keystone_wsgi import KeystoneWsgiDecoder
from hekapy.decoders.notification import NotificationDecoder
from hekapy.decoders.openstack_log import OpenStackLogDecoder
from tests.helpers.plugins import make_plugin


def test_same_seed_same_bytes_and_the_asked_size(tmp_path):
    a = Corpus(seed=4).write(tmp_path / "a", 600_000)
    b = Corpus(seed=4).write(tmp_path / "b", 600_000)
    c = Corpus(seed=5).write(tmp_path / "c", 600_000)
    assert a == b
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not cmp.diff_files and all(not sub.diff_files for sub in cmp.subdirs.values())
    assert a != c
    total = sum(n for n, _ in a.values())
    assert 600_000 <= total < 620_000
    assert set(a) == {"nova/nova-api.log", "nova/nova-compute.log", "neutron/server.log",
                      "neutron/lbaas-agent.log", "keystone/keystone-wsgi-public.log",
                      "haproxy.log", "notifications/notifications.jsonl"}


def test_every_line_decodes(tmp_path):
    Corpus(seed=2, long_fraction=0.1).write(tmp_path, 1_500_000)
    oslo = make_plugin(OpenStackLogDecoder, tz="UTC")
    msgs = []
    for rel in ("nova/nova-api.log", "neutron/server.log", "neutron/lbaas-agent.log"):
        for line in (tmp_path / rel).read_text().splitlines(keepends=True):
            r = oslo.decode(Message(payload=line, logger=rel))
            msgs += [] if r is None else [r] if isinstance(r, Message) else r
    msgs += oslo.flush()
    tracebacks = [m for m in msgs if m.payload.startswith("Traceback")]
    assert tracebacks and all(m.payload.count("\n") >= 4 for m in tracebacks)
    assert any(len(m.payload) > 1000 for m in msgs)  # the long lines
    assert any(m.find_field("http_status") for m in msgs)
    keystone = make_plugin(KeystoneWsgiDecoder)
    for line in (tmp_path / "keystone/keystone-wsgi-public.log").read_text().splitlines():
        keystone.decode(Message(payload=line + "\n", logger="keystone-wsgi-public"))
    haproxy = make_plugin(HaproxyLogDecoder)
    for line in (tmp_path / "haproxy.log").read_text().splitlines():
        assert haproxy.decode(Message(payload=line + "\n")).find_field("http_status")
    notification = make_plugin(NotificationDecoder)
    for line in (tmp_path / "notifications/notifications.jsonl").read_text().splitlines():
        m = notification.decode(Message(payload=line))
        assert m.type == "notification" and json.loads(line)["oslo.version"] == "2.0"
