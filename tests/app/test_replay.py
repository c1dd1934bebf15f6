"""`hekapy replay`: a generated archive set (plain and gzip, rotated names, tracebacks,
one spanning the 1 MiB read boundary) replayed into the Elasticsearch double: every
event once, Uuids equal to the daemon's, SIGINT then --resume, a second replay without
duplicates, a corrupt gzip member reported by file name, time windows."""

from __future__ import annotations

import asyncio
import gzip
import signal
from pathlib import Path

import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.benchmarks.openstack_config import es_output, openstack_logs
from hekapy.collector.app.replay import parse_time
from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.collectors import HEKAPY
from tests.helpers.plugins import CollectOutput, config_from, write_config
from tests.helpers.replay import DAY, events, expected_messages, write_lines
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.services

def archive(root: Path) -> dict[str, int]:
    """nova-api.log (plain), nova-api.log.1 (plain), nova-api.log.2.gz, nova-compute
    .log.1.gz and a large neutron server.log.1.gz whose events cross the 1 MiB chunk
    boundary of the reader. Returns events per file."""
    nova, neutron = root / "nova", root / "neutron"
    nova.mkdir(parents=True)
    neutron.mkdir(parents=True)
    layout = {
        nova / "nova-api.log.2.gz": ("nova-api", 400, DAY, True),
        nova / "nova-api.log.1": ("nova-api", 400, DAY + 400, False),
        nova / "nova-api.log": ("nova-api", 400, DAY + 800, False),
        nova / "nova-compute.log.1.gz": ("nova-compute", 500, DAY, True),
        neutron / "server.log.1.gz": ("neutron-server", 8000, DAY + 86400, True),
    }
    counts = {}
    for i, (path, (svc, n, start, gz)) in enumerate(layout.items()):
        evs = events(svc, n, start, seed=i)
        write_lines(path, evs, gz)
        counts[str(path)] = expected_messages(evs)
    return counts


def config_text(es_url: str, tmp_path: Path) -> str:
    # One bulk request of 500 at a time per worker: an outage (interrupt_at) stops the
    # replay within a few requests, whatever the speed.
    return openstack_logs(tmp_path / "state", hostname="ctl-1") + es_output(
        es_url, flush_count=500, flush_interval=20, max_in_flight=1, retry_delay="5ms",
        retry_max_delay="50ms")


async def replay(conf: Path, *args: str, es: EsDouble | None = None,
                 interrupt_at: int = 0) -> tuple[int, str]:
    if interrupt_at:
        # Elasticsearch goes away by itself once it holds `interrupt_at` documents, so
        # the replay cannot finish before the signal arrives, whatever the speed.
        assert es is not None
        es.faults.down_after = interrupt_at
    proc = await asyncio.create_subprocess_exec(
        *HEKAPY, "replay", "-c", str(conf), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    if interrupt_at:
        assert es is not None
        try:
            await es.wait_count(interrupt_at, timeout=120)
        except AssertionError:
            proc.kill()
            out, err = await proc.communicate()
            raise AssertionError((out + err).decode()[-3000:]) from None
        proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None  # communicate() waited for it
    return proc.returncode, (out + err).decode()


def test_parse_time():
    assert parse_time("2025-11-23") == int(DAY) * 10**9
    assert parse_time("2025-11-23T01:00:00+01:00") == int(DAY) * 10**9
    assert parse_time("2025-11-23T00:00:00.5Z") == int(DAY) * 10**9 + 500_000_000


async def test_replay_resume_twice_and_uuids_like_the_daemon(tmp_path):
    logs = tmp_path / "archive"
    counts = archive(logs)
    total = sum(counts.values())
    async with EsDouble() as es:
        conf = write_config(tmp_path, config_text(es.url, tmp_path))
        rc, out = await replay(conf, "--dry-run", str(logs))
        assert rc == 0, out
        assert "nova-api.log.2.gz\tstream nova_nova-api" in out
        assert "server.log.1.gz\tstream neutron_server" in out
        # Interrupted mid-way, then resumed: every event once.
        rc, out = await replay(conf, "--workers", "2", str(logs), es=es, interrupt_at=2000)
        assert rc == 130, out
        assert "--resume continues" in out
        got_first = es.count()
        assert got_first < total
        es.faults.down = False
        rc, out = await replay(conf, "--workers", "2", "--resume", str(logs))
        assert rc == 0, out
        assert es.count() == total
        # Replayed again from scratch: the same _ids, nothing new.
        writes_before = sum(es.write_counts.values())
        rc, out = await replay(conf, "--workers", "1", str(logs))
        assert rc == 0, out
        assert es.count() == total
        assert sum(es.write_counts.values()) - writes_before == total
        assert f"  elasticsearch_output: {total:,} stored" in out
        docs = es.docs()
    tracebacks = [d["_source"] for d in docs if "Traceback" in d["_source"]["Payload"]]
    assert tracebacks and all(d["Payload"].count("\n") >= 2 for d in tracebacks)
    loggers = {d["_source"]["Logger"] for d in docs}
    assert loggers == {"openstack.nova", "openstack.neutron"}

    # The daemon's Uuids: LogstreamerInput over the same (uncompressed) file.
    live = tmp_path / "live" / "nova"
    live.mkdir(parents=True)
    (live / "nova-api.log").write_bytes((logs / "nova" / "nova-api.log").read_bytes())
    text = openstack_logs(tmp_path / "live" / "state", tmp_path / "live", "ctl-1") + (
        '[x]\ntype = "CollectOutput"\nmessage_matcher = "TRUE"\n')
    (tmp_path / "live").mkdir(exist_ok=True)
    p = Pipeline(config_from(tmp_path / "live", text))
    await p.start()
    sink = CollectOutput.instances["x"]
    await wait_for(lambda: len(sink.messages) >= 399, "the daemon's messages")
    await p.stop()
    daemon_ids = {m.uuid_text for m in sink.messages}
    replay_ids = {d["_id"] for d in docs}
    assert daemon_ids and daemon_ids <= replay_ids


async def test_corrupt_gzip_is_reported_and_the_rest_replayed(tmp_path):
    logs = tmp_path / "archive" / "nova"
    logs.mkdir(parents=True)
    write_lines(logs / "nova-api.log.1", events("nova-api", 100, DAY, 1))
    good = gzip.compress("".join(ln + "\n" for ev in events("nova-api", 50, DAY + 100, 2)
                                 for ln in ev).encode())
    bad = gzip.compress(b"x" * 100000)
    (logs / "nova-api.log.2.gz").write_bytes(good + bad[:40] + b"\0garbage" * 50)
    async with EsDouble() as es:
        conf = write_config(tmp_path, config_text(es.url, tmp_path))
        rc, out = await replay(conf, "--workers", "2", str(tmp_path / "archive"))
        assert rc == 1
        assert "nova-api.log.2.gz" in out and "error" in out.lower()
        ids = es.count()
    assert ids >= 150 - 5  # the good member's events, and the whole plain file


async def test_time_window(tmp_path):
    logs = tmp_path / "archive" / "nova"
    logs.mkdir(parents=True)
    write_lines(logs / "nova-api.log", events("nova-api", 600, DAY, 3))
    async with EsDouble() as es:
        conf = write_config(tmp_path, config_text(es.url, tmp_path))
        rc, out = await replay(conf, "--since", "2025-11-23T00:01:40Z", "--until",
                               "2025-11-23T00:03:20Z", str(tmp_path / "archive"))
        assert rc == 0, out
        docs = es.docs()
    assert 95 <= len(docs) <= 100
    assert "skipped by the time window: " in out


async def test_heka_stream_files_keep_their_uuids(tmp_path):
    """A Heka protobuf stream (what a FileOutput with the ProtobufEncoder writes) is
    replayed with HekaFramingSplitter + ProtobufDecoder: same Uuids, same fields."""
    import uuid

    from hekapy.collector.engine.message import STRING, Field, Message
    from hekapy.collector.engine.protobuf import encode_message, frame
    msgs = [Message(uuid=uuid.uuid4().bytes, timestamp=int(DAY) * 10**9 + i * 10**9,
                    type="log", logger="openstack.nova", severity=6, hostname="cmp-1",
                    payload=f"line {i}", fields=[Field("programname", ["nova-api"], STRING)])
            for i in range(300)]
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    (archive_dir / "forwarded.heka.gz").write_bytes(
        gzip.compress(b"".join(frame(encode_message(m)) for m in msgs)))
    async with EsDouble() as es:
        conf = write_config(tmp_path, config_text(es.url, tmp_path))
        rc, out = await replay(conf, "--dry-run", str(archive_dir))
        assert "decoder ProtobufDecoder" in out, out
        rc, out = await replay(conf, str(archive_dir))
        assert rc == 0, out
        docs = {d["_id"]: d["_source"] for d in es.docs()}
    assert set(docs) == {m.uuid_text for m in msgs}
    first = docs[msgs[0].uuid_text]
    assert (first["Payload"], first["Hostname"], first["programname"]) == (
        "line 0", "cmp-1", "nova-api")


async def test_metrics_follow_message_time_into_influxdb(tmp_path):
    """LMA's metric filters under replay tick on the lines' Timestamps: every line is
    counted once in the minute it was written, the points carry those minutes, and the
    documents land in Elasticsearch as usual, with two workers."""
    import os

    from tests.services import influxdb
    logs = tmp_path / "archive"
    counts = archive(logs)
    # A rotated file was last written when its last line was: mtime = its end.
    ends = {"nova-api.log.2.gz": DAY + 400, "nova-api.log.1": DAY + 800,
            "nova-api.log": DAY + 1200, "nova-compute.log.1.gz": DAY + 500,
            "server.log.1.gz": DAY + 86400 + 8000}
    for path in counts:
        end = ends[Path(path).name]
        os.utime(path, (end, end))
    async with EsDouble() as es, influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        text = config_text(es.url, tmp_path) + f"""
[logs_counter]
type = "LogCounterFilter"
[http_metrics]
type = "HttpMetricsFilter"
[influxdb_output]
type = "InfluxdbOutput"
message_matcher = "Type =~ /metric$/"
url = "{db.url}"
database = "lma"
flush_interval = 50
use_buffering = false
"""
        conf = write_config(tmp_path, text)
        rc, out = await replay(conf, "--workers", "2", str(logs))
        assert rc == 0, out
        assert "came after their interval" not in out, out  # no line out of its time
        docs = [d["_source"] for d in es.docs()]
        per_minute = await db.query("SELECT value FROM log_messages WHERE value > 0 "
                                    "GROUP BY *",
                                    db="lma")
        http = await db.query('SELECT "count", "max" FROM '
                              "openstack_nova_http_response_times", db="lma")
    assert len(docs) == sum(counts.values())
    minute = 60_000
    # Every line once, in its own minute: rate x 60 summed per (service, level, minute)
    # equals the documents of that service, level and minute.
    from datetime import datetime
    expected: dict[tuple, int] = {}
    for d in docs:
        ms = int(datetime.fromisoformat(d["Timestamp"] + "+00:00").timestamp() * 1000)
        key = (d["Logger"].split(".")[1], d["severity_label"].lower(),
               (ms // minute + 1) * minute)
        expected[key] = expected.get(key, 0) + 1
    got = {(r["service"], r["level"], r["time"]): round(r["value"] * 60)
           for r in per_minute}
    assert got == expected
    # HTTP response times: every access line once, at its 10 s tick.
    access = [d for d in docs if d.get("http_response_time") is not None
              and d["Logger"] == "openstack.nova"]
    assert access and sum(r["count"] for r in http) == len(access)
    assert all(r["time"] % 10_000 == 0 for r in http)
    assert max(r["max"] for r in http) == max(d["http_response_time"] for d in access)


async def test_uuids_across_read_chunks_are_the_daemons(tmp_path):
    """Every line's Uuid is the daemon's (file identity XOR the line's offset), also for
    lines that straddle the 1 MiB chunks replay reads."""
    import uuid

    from hekapy.collector.inputs.logstreamer.logstreamer_input import identity_key
    lines = [f"2025-11-23 00:{i // 60 % 60:02d}:{i % 60:02d}.000 2310 INFO nova.api.wsgi "
             f"[-] line {i} {'x' * (300 + i % 97)}\n".encode() for i in range(9000)]
    data = b"".join(lines)
    assert len(data) > 3 * 2**20
    nova = tmp_path / "archive" / "nova"
    nova.mkdir(parents=True)
    (nova / "nova-api.log.1.gz").write_bytes(gzip.compress(data))
    key = identity_key("ctl-1", "nova_nova-api", lines[0])
    offsets = [0]
    for ln in lines[:-1]:
        offsets.append(offsets[-1] + len(ln))
    expected = {str(uuid.UUID(bytes=(key ^ off).to_bytes(16, "big"))) for off in offsets}
    async with EsDouble() as es:
        conf = write_config(tmp_path, config_text(es.url, tmp_path))
        rc, out = await replay(conf, str(tmp_path / "archive"))
        assert rc == 0, out
        ids = {d["_id"] for d in es.docs()}
    assert ids == expected
