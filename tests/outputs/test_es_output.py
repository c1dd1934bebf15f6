"""ElasticSearchOutput against the Elasticsearch test double: every document stored
exactly once by `_id` through 429 storms, per-item failures, mapping conflicts, a server
that is down, failover, and a kill -9 of hekapy; acknowledgements only after storing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.collectors import HEKAPY
from tests.helpers.plugins import config_from, sequence_to_es_config, write_config
from tests.helpers.wait import settle, wait_for


async def run_until_acked(p: Pipeline, count: int) -> None:
    """Start `p`, wait until its SequenceInput's last position `count` is acknowledged,
    stop."""
    await p.start()
    src = p.inputs[0][0]
    await wait_for(lambda: src.acked and src.acked[-1] == count, "every batch acknowledged",
                   timeout=300)
    await p.stop()


def dead_letters(tmp_path: Path) -> list[dict]:
    path = tmp_path / "dead.ndjson"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


async def test_100k_documents_through_429_storms_item_failures_and_conflicts(tmp_path):
    n = 100_000
    async with EsDouble("es8", seed=7) as es:
        es.faults.reject_429 = 5
        es.faults.fail_5xx = 3
        es.faults.item_failure_rate = 0.05
        es.faults.mapping_conflicts = 3
        p = Pipeline(config_from(tmp_path, sequence_to_es_config(es.url, tmp_path, n)))
        await run_until_acked(p, n)
        stats = p.outputs[0][1].stats
        dead = dead_letters(tmp_path)
        stored = es.ids("log-*")
    assert len(dead) == 3 and all(d["status"] == 400 for d in dead)
    dead_ids = {d["action"]["index"]["_id"] for d in dead}
    # Every document: stored once, or dead-lettered with its reason; none missing.
    assert len(stored) + len(dead_ids) == n and not stored & dead_ids
    assert set(es.write_counts.values()) == {1}
    assert stats.dead_lettered == 3 and stats.messages_out == n - 3
    assert stats.retried > 0 and es.stats["item_failures"] > 0
    assert dead[0]["error"]["type"] == "mapper_parsing_exception"
    assert dead[0]["source"]["Type"] == "log"


async def test_server_down_then_back_nothing_acknowledged_meanwhile(tmp_path):
    n = 50_000
    async with EsDouble("opensearch2") as es:
        await es.go_down()
        p = Pipeline(config_from(tmp_path, sequence_to_es_config(es.url, tmp_path, n, batch=100)))
        await p.start()
        src, (_out, out_ctx) = p.inputs[0][0], p.outputs[0]
        await wait_for(lambda: out_ctx.stats.retried >= 3000, "retries while down",
                       timeout=300)
        # Nothing stored, nothing acknowledged, and the input stopped reading: memory
        # is bounded by the input's window, not by the outage.
        assert src.acked == []
        await settle()
        produced = src.produced
        assert produced < n and p.inputs[0][1].tracker.in_flight <= p.hekad.poolsize
        await es.come_back()
        await wait_for(lambda: src.acked and src.acked[-1] == n, "delivery after the outage",
                       timeout=300)
        await p.stop()
        assert es.count() == n and set(es.write_counts.values()) == {1}


async def test_a_server_back_from_an_outage_is_noticed_before_the_backoff_ends(tmp_path):
    """While backing off from a server that did not answer, the output asks every
    second whether it is back: with a one-minute backoff, the documents still arrive
    within seconds of the server's return (the test's 20 s limit is the proof)."""
    n = 3000
    async with EsDouble("es8") as es:
        await es.go_down()
        text = sequence_to_es_config(es.url, tmp_path, n).replace('retry_delay = "5ms"',
                                                                 'retry_delay = "60s"')
        text = text.replace('retry_max_delay = "50ms"', 'retry_max_delay = "120s"')
        p = Pipeline(config_from(tmp_path, text))
        await p.start()
        out_ctx = p.outputs[0][1]
        await wait_for(lambda: out_ctx.stats.retried > 0, "a first failed attempt",
                       timeout=300)
        await es.come_back()
        await es.wait_count(n, timeout=20)
        await p.stop()
    assert es.count() == n


async def test_failover_to_the_next_server(tmp_path):
    from tests.services import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    async with EsDouble("es7") as es:
        p = Pipeline(config_from(tmp_path, sequence_to_es_config([dead, es.url], tmp_path, 2000)))
        await run_until_acked(p, 2000)
        assert es.count() == 2000


async def test_auth_gzip_and_a_timeout(tmp_path):
    async with EsDouble("es8", api_key="aWQ6a2V5") as es:
        es.faults.hang = 1  # the first request never gets an answer: http_timeout ends it
        extra = 'api_key = "aWQ6a2V5"\ncompression = "gzip"'
        p = Pipeline(config_from(tmp_path, sequence_to_es_config(es.url, tmp_path, 3000, extra,
                                                                 http_timeout=300)))
        await run_until_acked(p, 3000)
        assert es.count() == 3000 and es.stats["hangs"] == 1


async def test_wrong_credentials_are_retried_not_dropped_and_not_logged(tmp_path, caplog):
    async with EsDouble("es8", username="elastic", password="right") as es:
        extra = 'username = "elastic"\npassword = "wrong-s3cret"'
        p = Pipeline(config_from(tmp_path, sequence_to_es_config(es.url, tmp_path, 100, extra)))
        await p.start()
        out_ctx = p.outputs[0][1]
        await wait_for(lambda: out_ctx.stats.retried >= 200, "401 retries", timeout=300)
        assert p.inputs[0][0].acked == [] and dead_letters(tmp_path) == []
        es.auth = {next(iter(es.auth))}  # unchanged: then fix the server side instead
        import base64
        es.auth.add("Basic " + base64.b64encode(b"elastic:wrong-s3cret").decode())
        await wait_for(lambda: p.inputs[0][0].acked[-1:] == [100], "delivered",
                       timeout=300)
        await p.stop()
    assert "wrong-s3cret" not in caplog.text and "401" in caplog.text


def test_config_errors_name_the_key(tmp_path):
    from hekapy.collector.engine.config import load_config
    cfg = load_config(write_config(tmp_path, """
        [JsonEncoder]
        [a]
        type = "ElasticSearchOutput"
        message_matcher = "TRUE"
        encoder = "JsonEncoder"
        server = "udp://x:9700"
        [b]
        type = "ElasticSearchOutput"
        message_matcher = "TRUE"
        [c]
        type = "ElasticSearchOutput"
        message_matcher = "TRUE"
        encoder = "JsonEncoder"
        max_in_flight = 0
        [d]
        type = "ElasticSearchOutput"
        message_matcher = "TRUE"
        encoder = "JsonEncoder"
        server = "https://elastic:hunter2@es:9200"
        [d.tls]
        min_version = "TLS99"
    """))
    errors = "\n".join(str(e) for e in cfg.errors)
    assert "[a] server: 'udp://x:9700' is not an http:// or https:// URL" in errors
    assert "[b] encoder: ElasticSearchOutput needs an encoder" in errors
    assert "[c] max_in_flight: must be at least 1" in errors
    assert "[d] tls.min_version:" in errors and "hunter2" not in errors


# --- kill -9 of a real hekapy process --------------------------------------------------

KILL_CONFIG = """
[hekad]
base_dir = "{state}"
hostname = "node-3"
[logs]
type = "LogstreamerInput"
log_directory = "{logdir}"
file_match = 'app\\.log$'
differentiator = ["app"]
[enc]
type = "ESJsonEncoder"
index = "log-%{{%Y.%m.%d}}"
type_name = ""
id = "%{{UUID}}"
[es]
type = "ElasticSearchOutput"
message_matcher = "TRUE"
encoder = "enc"
server = "{url}"
flush_count = 2000
flush_interval = 50
max_in_flight = 2
retry_delay = "10ms"
use_buffering = {buffering}
"""


@pytest.mark.services
@pytest.mark.parametrize("buffering", ["false", "true"])
async def test_kill_9_mid_flight_loses_nothing_and_duplicates_nothing(tmp_path, buffering):
    n = 60_000
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (logdir / "app.log").write_bytes(b"".join(b"kill line %d\n" % i for i in range(n)))
    async with EsDouble("es8") as es:
        es.faults.delay = 0.02  # slow bulk answers: there is always something in flight
        conf = write_config(tmp_path, KILL_CONFIG.format(state=tmp_path / "state",
                                                         logdir=logdir, url=es.url,
                                                         buffering=buffering))
        cmd = [*HEKAPY, "run", "-c", str(conf)]
        log = tmp_path / "hekapy.log"  # a file, not a pipe: a full pipe would block it
        proc: subprocess.Popen | None = None

        def start() -> subprocess.Popen:
            with open(log, "ab") as f:
                return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f)

        try:
            for kill_at in (5_000, 20_000, 35_000):
                proc = start()
                await es.wait_count(kill_at, timeout=60, proc=proc)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            es.faults.delay = 0
            proc = start()
            await es.wait_count(n, timeout=120, proc=proc)
            proc.send_signal(signal.SIGTERM)
            # Wait without blocking this loop: the double runs on it and must keep
            # answering the requests hekapy finishes while it drains.
            deadline = time.monotonic() + 60
            while proc.poll() is None:
                assert time.monotonic() < deadline, "hekapy did not stop"
                await asyncio.sleep(0.02)
            assert proc.returncode == 0, log.read_text()
            assert "did not stop within shutdown_timeout" not in log.read_text()
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        docs = es.docs("log-*")
    # Exactly one document per line: re-sent lines kept their _id and overwrote.
    assert len(docs) == n
    assert {d["_source"]["Payload"] for d in docs} == {f"kill line {i}\n" for i in range(n)}
    # And the kills did hit documents in flight: some were sent again after a restart.
    assert max(es.write_counts.values()) > 1


async def test_tls_with_a_private_ca_and_verification(tmp_path):
    import ssl
    cert, key = tmp_path / "es.pem", tmp_path / "es.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    es = EsDouble("es8")
    await es.start(ssl_context=server_ctx)
    try:
        assert es.url.startswith("https://")
        # Without the CA the certificate is refused: nothing stored, nothing acknowledged.
        p = Pipeline(config_from(tmp_path, sequence_to_es_config(es.url, tmp_path, 500)))
        await p.start()
        await wait_for(lambda: p.outputs[0][1].stats.retried >= 1000, "verification failures",
                       timeout=300)
        assert es.count() == 0 and p.inputs[0][0].acked == []
        await p.stop()
        tls = f'[es.tls]\nroot_cafile = "{cert}"'
        second = tmp_path / "second"
        second.mkdir()
        p = Pipeline(config_from(second, sequence_to_es_config(es.url, second, 500, tls)))
        await run_until_acked(p, 500)
        assert es.count() == 500
    finally:
        await es.stop()
