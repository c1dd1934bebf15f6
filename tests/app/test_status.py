"""The status server: /metrics (Prometheus text) counting what a real `hekapy run` did,
/health following the Elasticsearch double going down and coming back, a plugin that
gave up, a full disk buffer; Heka's all-report JSON; basic auth; no secret in any
endpoint or in the log; a remote bind refused without the flag; `hekapy top --once`."""

from __future__ import annotations

import asyncio
import subprocess

import aiohttp
import orjson
import pytest

from hekapy.benchmarks.es_double import EsDouble
from hekapy.collector import compiled
from hekapy.collector.app.status import StatusServer
from hekapy.collector.app.status.client import basic_auth_header
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.redact import Redactor
from tests.helpers.collectors import (
    HEKAPY,
    parse_prometheus,
    sample,
    start_collector,
    stop_collector,
    wait_status,
)
from tests.helpers.plugins import CollectOutput, config_from, write_config
from tests.helpers.wait import wait_for
from tests.services import free_port

STATUS_PASSWORD = "St4tus-Pa55word"
ES_PASSWORD = "Es-s3cret-99"


def value(metrics: dict, name: str, **labels: str) -> float | None:
    """The one sample of `name` with these labels, or None while there is none."""
    hits = [v for lab, v in metrics.get(name, []) if all(lab.get(k) == x
                                                          for k, x in labels.items())]
    assert len(hits) <= 1, f"{name}{labels}: {hits}"
    return hits[0] if hits else None


def check_with_prometheus_client(text: str) -> None:
    """Prometheus' own parser agrees, when it is installed (it is not a dependency)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return
    families = list(text_string_to_metric_families(text))
    assert families


# --- helpers ----------------------------------------------------------------------------

def auth_headers(user: str, password: str) -> dict[str, str]:
    return {"Authorization": basic_auth_header(user, password).decode()}


async def poll(get, predicate, what: str, timeout: float = 30):
    """Fetch with `get()` until `predicate(result)` holds; the last result."""
    last = None

    async def holds() -> bool:
        nonlocal last
        last = await get()
        return predicate(last)

    await wait_for(holds, what, timeout=timeout, interval=0.02,
                   details=lambda: f"last: {last}")
    return last


TAIL_TOML = """
[hekad]
base_dir = "{state}"
status_address = "127.0.0.1:{port}"
status_username = "ops"
status_password = "{password}"

[app]
type = "LogstreamerInput"
log_directory = "{logs}"
file_match = 'app\\.log'
decoder = "numbers"

[numbers]
type = "PayloadRegexDecoder"
match_regex = '^line (?P<n>\\d+)\\n$'

[counter]
type = "CounterFilter"
message_matcher = "Type == 'logfile'"
ticker_interval = 3600

[out]
type = "FileOutput"
message_matcher = "Logger == 'app' && Type == 'logfile'"
path = "{out}"
encoder = "PayloadEncoder"
flush_interval = 20

[PayloadEncoder]
"""


@pytest.mark.services
async def test_metrics_count_what_a_running_collector_did(tmp_path):
    """1000 lines tailed, 100 of them undecodable: every counter says so, in valid
    Prometheus text; the all-report has Heka's shape; `hekapy top --once` lists every
    plugin; the password is nowhere."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [f"garbage {i}" if i % 10 == 0 else f"line {i}" for i in range(1000)]
    (logs / "app.log").write_text("".join(x + "\n" for x in lines))
    port = free_port()
    conf = write_config(tmp_path, TAIL_TOML.format(state=tmp_path / "state", port=port,
                                                   password=STATUS_PASSWORD, logs=logs,
                                                   out=tmp_path / "out.log"))
    log = tmp_path / "hekapy.log"
    proc = start_collector(conf, log)
    base = f"http://127.0.0.1:{port}"
    auth = auth_headers("ops", STATUS_PASSWORD)
    bodies: list[bytes] = []
    try:
        await wait_status(base, proc)
        async with aiohttp.ClientSession(headers=auth) as s:
            async def metrics() -> tuple[str, dict]:
                async with s.get(base + "/metrics") as r:
                    assert r.status == 200
                    assert r.content_type == "text/plain"
                    text = await r.text()
                bodies.append(text.encode())
                return text, parse_prometheus(text)

            def settled(res: tuple[str, dict]) -> bool:
                m = res[1]
                return (value(m, "hekapy_plugin_messages_out_total", plugin="out") == 900
                        and value(m, "hekapy_logstreamer_ack_lag_bytes", plugin="app",
                                  stream="app") == 0)

            text, m = await poll(metrics, settled, "900 messages written and acknowledged")
            check_with_prometheus_client(text)
            total_bytes = sum(len(x) + 1 for x in lines)
            c = "hekapy_plugin_{}_total"
            # The input read every line; its decoder failed on the 100 garbage lines.
            assert sample(m, c.format("messages_in"), plugin="app",
                          type="LogstreamerInput") == 1000
            assert sample(m, c.format("bytes_out"), plugin="app") == total_bytes
            assert sample(m, c.format("messages_out"), plugin="app") == 900
            assert sample(m, c.format("messages_in"), plugin="numbers",
                          type="PayloadRegexDecoder") == 1000
            assert sample(m, c.format("decode_failures"), plugin="numbers") == 100
            assert sample(m, c.format("messages_out"), plugin="numbers") == 900
            assert sample(m, c.format("messages_in"), plugin="counter",
                          type="CounterFilter") == 900
            assert sample(m, c.format("messages_in"), plugin="out", type="FileOutput") == 900
            assert sample(m, c.format("bytes_in"), plugin="out") > 0
            for key in ("dropped", "retried", "dead_lettered", "errors", "restarts"):
                assert sample(m, c.format(key), plugin="out") == 0
            assert sample(m, "hekapy_plugin_up", plugin="out") == 1
            assert sample(m, "hekapy_plugin_matcher_seconds_total", plugin="out") > 0
            assert sample(m, "hekapy_router_messages_total") == 900
            assert sample(m, "hekapy_queue_messages", plugin="out", queue="input") == 0
            assert sample(m, "hekapy_queue_capacity_batches", plugin="counter",
                          queue="input") == 30
            assert sample(m, "hekapy_input_unacknowledged_batches", plugin="app") == 0
            assert sample(m, "hekapy_input_forced_flushes_total", plugin="app") == 0
            assert sample(m, "hekapy_logstreamer_read_offset_bytes", plugin="app",
                          stream="app") == total_bytes
            assert sample(m, "process_resident_memory_bytes") > 1 << 20
            assert sample(m, "process_cpu_seconds_total") > 0
            assert sample(m, "hekapy_uptime_seconds") > 0
            (build, _), = m["hekapy_build_info"]
            assert build["version"] and build["python"]
            assert build["hot_path"] == compiled.summary()  # "compiled" under scripts/test
            assert sample(m, "hekapy_health", status="ok") == 1

            for path in ("/heka.all-report", "/heka/all-report.json"):
                async with s.get(base + path) as r:
                    assert r.status == 200 and r.content_type == "application/json"
                    raw = await r.read()
                bodies.append(raw)
                report = orjson.loads(raw)
                assert set(report) == {"globals", "inputs", "decoders", "filters",
                                       "outputs", "encoders"}
                for entries in report.values():
                    for e in entries:
                        assert isinstance(e["Name"], str)
                        for k, v in e.items():
                            if k != "Name":
                                assert set(v) == {"value", "representation"}, (k, v)
                by = {k: {e["Name"]: e for e in v} for k, v in report.items()}
                assert by["globals"]["Router"]["ProcessMessageCount"] == {
                    "value": 900, "representation": "count"}
                assert by["inputs"]["app"]["MessagesIn"]["value"] == 1000
                assert by["decoders"]["numbers"]["ProcessMessageCount"]["value"] == 1000
                assert by["decoders"]["numbers"]["ProcessMessageFailures"]["value"] == 100
                assert by["filters"]["counter"]["InChanCapacity"]["value"] == 30
                assert by["filters"]["counter"]["ProcessMessageCount"]["value"] == 900
                assert by["outputs"]["out"]["MessagesOut"]["value"] == 900
                assert by["outputs"]["out"]["MatchAvgDuration"]["representation"] == "ns"
                assert "PayloadEncoder" in by["encoders"]

            async with s.get(base + "/health") as r:
                assert r.status == 200
                assert await r.json() == {"status": "ok"}

        top = await asyncio.create_subprocess_exec(
            *HEKAPY, "top", "-c", str(conf), "--once", "--interval", "0.2",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await top.communicate()
        assert top.returncode == 0, err
        table = out.decode()
        bodies.append(out)
        assert "health ok" in table
        rows = {line.split()[0]: line.split() for line in table.splitlines()[2:]}
        assert set(rows) == {"app", "numbers", "counter", "out"}
        assert rows["out"][1] == "FileOutput" and rows["out"][-1] == "running"
    finally:
        if proc.poll() is None:
            await stop_collector(proc)
    logged = log.read_text()
    assert "status server on http://127.0.0.1" in logged
    for body in [*bodies, logged.encode()]:
        assert STATUS_PASSWORD.encode() not in body


@pytest.mark.services
async def test_basic_auth_and_no_secret_in_any_output(tmp_path):
    """Every endpoint answers 401 without the password; with it, no endpoint, no tap
    line and no log line shows the status password or the Elasticsearch credentials
    (in the server URL's userinfo), even when a logged line contains one."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").touch()
    port = free_port()
    async with EsDouble("es8", username="elastic", password=ES_PASSWORD) as es:
        url = es.url.replace("http://", f"http://elastic:{ES_PASSWORD}@")
        conf = write_config(tmp_path, f"""
            [hekad]
            base_dir = "{tmp_path / 'state'}"
            status_address = "127.0.0.1:{port}"
            status_username = "ops"
            status_password = "{STATUS_PASSWORD}"
            [app]
            type = "LogstreamerInput"
            log_directory = "{logs}"
            file_match = 'app\\.log'
            [enc]
            type = "ESJsonEncoder"
            index = "log-%{{%Y.%m.%d}}"
            type_name = ""
            [es]
            type = "ElasticSearchOutput"
            message_matcher = "TRUE"
            encoder = "enc"
            server = "{url}"
            flush_interval = 20
        """)
        log = tmp_path / "hekapy.log"
        proc = start_collector(conf, log)
        base = f"http://127.0.0.1:{port}"
        bodies: list[bytes] = []
        try:
            await wait_status(base, proc)
            paths = ("/", "/metrics", "/health", "/stats", "/heka.all-report",
                     "/heka/all-report.json", "/tap")
            async with aiohttp.ClientSession() as s:
                for path in paths:
                    for bad in ({}, auth_headers("ops", "wrong"),
                                auth_headers("nobody", STATUS_PASSWORD),
                                {"Authorization": "Basic !!"}):
                        async with s.get(base + path, headers=bad) as r:
                            assert r.status == 401, path
                            assert r.headers["WWW-Authenticate"].startswith("Basic")
                            bodies.append(await r.read())
            async with aiohttp.ClientSession(headers=auth_headers("ops",
                                                                   STATUS_PASSWORD)) as s:
                async with s.get(base + "/tap", params={"match": "TRUE"}) as tap:
                    assert tap.status == 200
                    first = await tap.content.readline()
                    assert orjson.loads(first)["tap"]["match"] == "TRUE"
                    with (logs / "app.log").open("a") as f:
                        f.write(f"connecting to {url} with password {ES_PASSWORD}\n")
                        f.write("an ordinary line\n")
                    await es.wait_count(2, proc=proc)
                    got = []
                    while len(got) < 2:
                        doc = orjson.loads(await tap.content.readline())
                        bodies.append(orjson.dumps(doc))
                        if "message" in doc:
                            got.append(doc["message"]["Payload"])
                assert got[0] == (f"connecting to http://***@127.0.0.1:{es.port} with "
                                  "password ***\n")
                for path in paths[:-1]:
                    async with s.get(base + path) as r:
                        assert r.status == 200, path
                        bodies.append(await r.read())
            # The document itself reached Elasticsearch unchanged: only views are masked.
            assert any(ES_PASSWORD in d["_source"]["Payload"] for d in es.docs())
        finally:
            if proc.poll() is None:
                await stop_collector(proc)
    logged = log.read_text()
    assert "authentication failed" in logged
    assert "tap viewer attached" in logged
    for body in [*bodies, logged.encode()]:
        for secret in (STATUS_PASSWORD, ES_PASSWORD):
            assert secret.encode() not in body, body[:300]


def test_redactor_masks_urls_and_secret_keys(tmp_path):
    config = config_from(tmp_path, """
        [hekad]
        status_username = "ops"
        status_password = "sesame-42"
        [amqp]
        type = "AMQPInput"
        url = "amqp://nova:rabbit-pw@10.0.0.5:5672/"
        exchange = "nova"
        queue = "notifications.info"
        [influx]
        type = "InfluxdbOutput"
        message_matcher = "TRUE"
        url = "http://127.0.0.1:8086"
        password = "influx-pw"
    """)
    r = Redactor(config)
    text = ("sesame-42 amqp://nova:rabbit-pw@10.0.0.5:5672/ influx-pw rabbit-pw "
            "https://u:p@example.org/x")
    assert r.mask(text) == ("*** amqp://***@10.0.0.5:5672/ *** *** https://***@example.org/x")
    doc = {"Payload": "x influx-pw y", "Fields": [{"value": ["sesame-42", 3]}], "n": 1}
    assert r.mask_obj(doc) == {"Payload": "x *** y", "Fields": [{"value": ["***", 3]}],
                               "n": 1}


async def health(base: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(base + "/health") as r:
        return r.status, await r.json()


async def test_health_degraded_while_elasticsearch_is_down_ok_when_back(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with EsDouble("es8") as es:
        await es.go_down()
        p = Pipeline(config_from(tmp_path, f"""
            [hekad]
            base_dir = "{tmp_path / 'state'}"
            status_address = "127.0.0.1:{port}"
            status_degraded_after = "200ms"
            [src]
            type = "SequenceInput"
            count = 2000
            batch = 100
            record_type = "log"
            [enc]
            type = "ESJsonEncoder"
            index = "log-%{{%Y.%m.%d}}"
            type_name = ""
            id = "%{{UUID}}"
            [es]
            type = "ElasticSearchOutput"
            message_matcher = "TRUE"
            encoder = "enc"
            server = "{es.url}"
            flush_interval = 20
            retry_delay = "5ms"
            retry_max_delay = "50ms"
        """))
        server = StatusServer(p, p.config)
        assert await server.start()
        await p.start()
        try:
            status, body = await poll(lambda: health(base),
                                      lambda r: r[1]["status"] != "ok",
                                      "/health to leave ok")
            assert status == 200
            assert body["status"] == "degraded"
            assert len(body["reasons"]) == 1
            assert body["reasons"][0].startswith("output 'es' has retried for ")
            assert "without storing a message" in body["reasons"][0]
            await es.come_back()
            await es.wait_count(2000)
            status, body = await poll(lambda: health(base),
                                      lambda r: r[1]["status"] == "ok", "/health ok")
            assert (status, body) == (200, {"status": "ok"})
        finally:
            await p.stop()
            await server.stop()


async def test_health_degraded_when_the_disk_buffer_fills(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with EsDouble("es8") as es:
        await es.go_down()
        p = Pipeline(config_from(tmp_path, f"""
            [hekad]
            base_dir = "{tmp_path / 'state'}"
            status_address = "127.0.0.1:{port}"
            status_degraded_after = "1h"
            [src]
            type = "SequenceInput"
            count = 400
            batch = 10
            pad = 200
            record_type = "log"
            [enc]
            type = "ESJsonEncoder"
            index = "log-%{{%Y.%m.%d}}"
            type_name = ""
            id = "%{{UUID}}"
            [es]
            type = "ElasticSearchOutput"
            message_matcher = "TRUE"
            encoder = "enc"
            server = "{es.url}"
            retry_delay = "5ms"
            retry_max_delay = "50ms"
            use_buffering = true
                [es.buffering]
                max_buffer_size = 20000
                full_action = "block"
        """))
        server = StatusServer(p, p.config)
        assert await server.start()
        await p.start()
        try:
            status, body = await poll(lambda: health(base),
                                      lambda r: r[1]["status"] != "ok", "a full buffer")
            assert status == 200 and body["status"] == "degraded"
            assert any(r.startswith("output 'es': disk buffer ") and "% full" in r
                       for r in body["reasons"]), body
            async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as r:
                m = parse_prometheus(await r.text())
            assert sample(m, "hekapy_buffer_max_bytes", plugin="es") == 20000
            assert sample(m, "hekapy_buffer_bytes", plugin="es") > 16000
            assert sample(m, "hekapy_queue_capacity_batches", plugin="es",
                          queue="buffer-in") == 30
            await es.come_back()
            await es.wait_count(400)
            await poll(lambda: health(base), lambda r: r[1]["status"] == "ok",
                       "/health ok once the buffer drained")
        finally:
            await p.stop()
            await server.stop()


async def test_health_failing_when_a_plugin_gave_up(tmp_path):
    """One output restarts (degraded), another gives up for good (failing, 503)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    p = Pipeline(config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        status_address = "127.0.0.1:{port}"
        [src]
        type = "SequenceInput"
        count = 50
        [flaky]
        type = "CollectOutput"
        message_matcher = "TRUE"
        mode = "fail:1"
            [flaky.retries]
            delay = "1ms"
            max_jitter = "0s"
        [broken]
        type = "CollectOutput"
        message_matcher = "TRUE"
        mode = "fail:1000"
        can_exit = true
            [broken.retries]
            max_retries = 0
    """))
    server = StatusServer(p, p.config)
    assert await server.start()
    await p.start()
    try:
        status, body = await poll(lambda: health(base),
                                  lambda r: r[1]["status"] == "failing"
                                  and len(r[1]["reasons"]) == 2, "/health failing")
        assert status == 503
        assert body["reasons"][0] == ("output 'broken' gave up after 0 restart(s) and is "
                                      "not running")
        assert body["reasons"][1].startswith("output 'flaky' restarted 1 time(s), last ")
        await poll(lambda: asyncio.sleep(0, len(CollectOutput.instances["flaky"].messages)),
                   lambda n: n == 50, "the flaky output's messages")
        async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as r:
            m = parse_prometheus(await r.text())
        assert sample(m, "hekapy_plugin_up", plugin="broken") == 0
        assert sample(m, "hekapy_plugin_up", plugin="flaky") == 1
        assert sample(m, "hekapy_plugin_restarts_total", plugin="flaky") == 1
        assert sample(m, "hekapy_health", status="failing") == 1
    finally:
        await p.stop()
        await server.stop()


@pytest.mark.services
def test_remote_bind_refused_without_the_flag(tmp_path):
    port = free_port()
    conf = write_config(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path}"
        status_address = "0.0.0.0:{port}"
        [out]
        type = "LogOutput"
        message_matcher = "TRUE"
        encoder = "PayloadEncoder"
        [PayloadEncoder]
    """)
    for cmd in ("check", "run"):
        r = subprocess.run([*HEKAPY, cmd, "-c", str(conf)], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert (f"error: {conf}: [hekad] status_address: '0.0.0.0:{port}' is not a "
                "loopback address") in r.stderr
        assert "status_allow_remote = true" in r.stderr
    conf.write_text(conf.read_text().replace(
        "status_address", 'status_allow_remote = true\nstatus_username = "ops"\n'
        'status_password = "x-Pw-1"\nstatus_address'))
    r = subprocess.run([*HEKAPY, "check", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    conf.write_text(conf.read_text().replace('status_password = "x-Pw-1"\n', ""))
    r = subprocess.run([*HEKAPY, "check", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == 2
    assert f"error: {conf}: [hekad] status_password: status_username and " \
           "status_password go together" in r.stderr


def test_process_start_time_is_the_process_start_not_the_servers():
    import os

    import psutil

    from hekapy.collector.engine.report import process_start_time
    assert abs(process_start_time() - psutil.Process(os.getpid()).create_time()) < 0.1


async def test_health_degraded_while_state_writes_fail(tmp_path):
    """Journal or disk-buffer writes that fail (read-only or full file system) make
    /health degraded, with the reason, for a minute after the last failure."""
    from hekapy.collector.app.status import Snapshot
    from hekapy.collector.engine.pipeline import Pipeline
    from tests.helpers.plugins import config_from
    (tmp_path / "logs").mkdir()
    p = Pipeline(config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        [app]
        type = "LogstreamerInput"
        log_directory = "{tmp_path / 'logs'}"
        file_match = 'app\\.log'
        [out]
        type = "FileOutput"
        message_matcher = "TRUE"
        path = "{tmp_path / 'out.txt'}"
        encoder = "PayloadEncoder"
        use_buffering = true
        [PayloadEncoder]
    """))
    snap = Snapshot(p)
    assert snap.health() == {"status": "ok"}
    plugin = p.inputs[0][0]
    plugin.counters["journal_errors"] += 2
    p.buffers["out"].disk.write_failures += 1
    health = snap.health()
    assert health["status"] == "degraded"
    assert any("'app': journal writes failing" in r for r in health["reasons"])
    assert any("'out': disk buffer writes failing" in r for r in health["reasons"])
    # A minute without a new failure: ok again.
    snap._failure_marks = {k: (v, t - 61) for k, (v, t) in snap._failure_marks.items()}
    assert snap.health() == {"status": "ok"}
