"""HttpListenInput: request bodies → messages with Heka's fields, authentication, size
limits, backpressure, TLS; and real collectd's write_http → CollectdDecoder → real
InfluxDB, as LMA's metric_collector ran it."""

from __future__ import annotations

import asyncio
import base64
import ssl

import aiohttp
import pytest

from hekapy.collector.engine.pipeline import Pipeline
from tests.helpers.collectors import HEKAPY
from tests.helpers.plugins import CollectOutput, config_from
from tests.helpers.wait import settle, wait_for
from tests.services import collectd, free_port, influxdb, make_certificates, stop_process


async def start(tmp_path, listener: str, extra: str = "", hekad: str = "") -> Pipeline:
    p = Pipeline(config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        hostname = "node-1"
        {hekad}
        [listen]
        type = "HttpListenInput"
        {listener}
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
        {extra}
    """))
    await p.start()
    return p


async def wait_listening(p: Pipeline) -> None:
    """Until the listener's socket accepts connections (it binds as the pipeline starts)."""
    await asyncio.wait_for(p.inputs[0][0].listening.wait(), 30)


async def test_a_request_becomes_a_message_with_hekas_fields(tmp_path):
    port = free_port()
    p = await start(tmp_path, f"""
        address = "127.0.0.1:{port}"
        request_headers = ["X-Node"]
        headers = {{ "X-Served-By" = "hekapy", "Cache-Control" = ["no-cache", "no-store"] }}
    """)
    sink = CollectOutput.instances["sink"]
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_listening(p)
        async with aiohttp.ClientSession() as s, s.get(url + "/ping") as r:
            assert r.status == 200  # an empty body: no message
        async with aiohttp.ClientSession() as s, s.post(
                url + "/collectd/write?node=cmp-1&tag=a&tag=b", data=b'{"x": "\xc3\xa9"}',
                headers={"X-Node": "cmp-1", "User-Agent": "collectd/5.12",
                         "Content-Type": "application/json"}) as r:
            assert r.status == 200
            assert r.headers["X-Served-By"] == "hekapy"
            assert r.headers["Cache-Control"] == "no-cache, no-store"
        await wait_for(lambda: len(sink.messages) == 1, "the message", timeout=120)
    finally:
        await p.stop()
    assert len(sink.messages) == 1
    m = sink.messages[0]
    assert (m.type, m.severity, m.env_version, m.hostname) == (
        "heka.httpdata.request", 6, "1", "node-1")
    assert m.pid is not None and m.pid > 0
    assert m.payload == '{"x": "é"}'
    f = {x.name: x.values for x in m.fields}
    assert f["Path"] == ["/collectd/write"]
    assert f["UserAgent"] == ["collectd/5.12"]
    assert f["ContentType"] == ["application/json"]
    assert f["Protocol"] == ["HTTP/1.1"]
    assert f["Host"] == [f"127.0.0.1:{port}"]
    assert f["RemoteAddr"][0].startswith("127.0.0.1:")
    assert f["X-Node"] == ["cmp-1"]
    assert f["node"] == ["cmp-1"] and f["tag"] == ["a", "b"]


@pytest.mark.parametrize("auth", ["Basic", "API"])
async def test_authentication(tmp_path, auth, caplog):
    port = free_port()
    secret = "s3cr3t-pass"
    keys = (f'username = "collectd"\npassword = "{secret}"' if auth == "Basic"
            else f'api_key = "{secret}"')
    p = await start(tmp_path, f"""
        address = "127.0.0.1:{port}"
        auth_type = "{auth}"
        {keys}
    """)
    sink = CollectOutput.instances["sink"]
    url = f"http://127.0.0.1:{port}/"
    good = ({"Authorization": "Basic " + base64.b64encode(f"collectd:{secret}".encode())
             .decode()} if auth == "Basic" else {"X-API-KEY": secret})
    bad = ({"Authorization": "Basic " + base64.b64encode(b"collectd:wrong").decode()}
           if auth == "Basic" else {"X-API-KEY": "wrong"})
    try:
        await wait_listening(p)
        async with aiohttp.ClientSession() as s:
            for headers in ({}, bad, {"Authorization": "Basic !!notbase64"}):
                async with s.post(url, data=b"refused", headers=headers) as r:
                    assert r.status == 401
                    if auth == "Basic":
                        assert "Basic" in r.headers["WWW-Authenticate"]
            async with s.post(url, data=b"accepted", headers=good) as r:
                assert r.status == 200
        await wait_for(lambda: sink.messages, "the accepted message", timeout=120)
    finally:
        await p.stop()
    assert [m.payload for m in sink.messages] == ["accepted"]
    assert "authentication failed" in caplog.text
    assert secret not in caplog.text


async def test_size_limits(tmp_path, caplog):
    port = free_port()
    p = await start(tmp_path, f"""
        address = "127.0.0.1:{port}"
        max_body_size = 200000
    """, hekad="max_message_size = 2000")
    sink = CollectOutput.instances["sink"]
    url = f"http://127.0.0.1:{port}/"
    try:
        await wait_listening(p)
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=b"x" * 300000) as r:
                assert r.status == 413  # over max_body_size
            async with s.post(url, data=b"y" * 5000) as r:
                assert r.status == 413  # one record over max_message_size
            async with s.post(url, data=b"small") as r:
                assert r.status == 200
        await wait_for(lambda: any(m.payload == "small" for m in sink.messages), "small",
                       timeout=120)
    finally:
        await p.stop()
    assert not [m for m in sink.messages if m.payload.startswith(("x", "y"))]
    assert "max_body_size" in caplog.text and "max_message_size" in caplog.text


async def test_a_full_pipeline_holds_the_response_back(tmp_path):
    """Requests are answered once their messages are in the pipeline: with the output
    holding every batch unacknowledged, request poolsize+1 waits until it gets room."""
    port = free_port()
    p = await start(tmp_path, f'address = "127.0.0.1:{port}"', extra='mode = "hold"',
                    hekad="poolsize = 2")
    sink = CollectOutput.instances["sink"]
    url = f"http://127.0.0.1:{port}/"
    try:
        async with aiohttp.ClientSession() as s:
            await wait_listening(p)
            for body in (b"first", b"second"):
                async with s.post(url, data=body) as r:
                    assert r.status == 200
            pending = asyncio.ensure_future(s.post(url, data=b"third"))
            await wait_for(lambda: len(sink.messages) == 2, "two held batches", timeout=120)
            await settle(5000)
            assert not pending.done()
            for batch in sink.held:
                batch.done()
            r = await asyncio.wait_for(pending, 10)
            assert r.status == 200
            r.release()
            await wait_for(lambda: len(sink.messages) == 3, "the third message", timeout=120)
            for batch in sink.held[2:]:
                batch.done()
    finally:
        await p.stop()


async def test_tls_with_client_certificates(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    p = await start(tmp_path, f"""
        address = "127.0.0.1:{port}"
        use_tls = true
        [listen.tls]
        cert_file = "{certs['server_cert']}"
        key_file = "{certs['server_key']}"
        client_auth = "RequireAndVerifyClientCert"
        client_cafile = "{certs['ca']}"
    """)
    sink = CollectOutput.instances["sink"]
    url = f"https://127.0.0.1:{port}/"
    with_cert = ssl.create_default_context(cafile=str(certs["ca"]))
    with_cert.load_cert_chain(str(certs["client_cert"]), str(certs["client_key"]))
    without_cert = ssl.create_default_context(cafile=str(certs["ca"]))
    try:
        await wait_listening(p)
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=b"over tls", ssl=with_cert) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with s.post(url, data=b"no cert", ssl=without_cert) as r:
                    await r.read()
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port
                async with s.post(f"http://127.0.0.1:{port}/", data=b"plain") as r:
                    await r.read()
        await wait_for(lambda: any(m.payload == "over tls" for m in sink.messages), "tls",
                       timeout=120)
    finally:
        await p.stop()
    assert [m.payload for m in sink.messages] == ["over tls"]


def test_bad_settings_are_named(tmp_path):
    from hekapy.collector.engine.config import ConfigInvalid, load_config
    from tests.helpers.plugins import write_config
    path = write_config(tmp_path, """
        [listen]
        type = "HttpListenInput"
        address = "localhost"
        auth_type = "Basic"
        [tls_listen]
        type = "HttpListenInput"
        use_tls = true
    """)
    with pytest.raises(ConfigInvalid) as e:
        load_config(path, strict=True)
    text = str(e.value)
    assert "[listen] address" in text and "host:port" in text
    assert "[tls_listen] tls.cert_file" in text


@pytest.mark.services
async def test_collectd_write_http_into_influxdb(tmp_path):
    """Real collectd → HttpListenInput → CollectdDecoder → InfluxdbOutput → real influxd,
    queried back as LMA's dashboards query it."""
    port = free_port()
    async with influxdb(tmp_path / "influx") as db:
        await db.query("CREATE DATABASE lma")
        p = Pipeline(config_from(tmp_path, f"""
            [hekad]
            base_dir = "{tmp_path / 'state'}"
            hostname = "node-1"
            [hekad.deployment_tags]
            deployment_id = "42"
            environment_label = "lab"
            [collectd_httplisten]
            type = "HttpListenInput"
            address = "127.0.0.1:{port}"
            decoder = "collectd_decoder"
            [collectd_decoder]
            type = "SandboxDecoder"
            filename = "/usr/share/lma_collector/decoders/collectd.lua"
              [collectd_decoder.config]
              hostname = "node-1"
            [influxdb_output]
            type = "InfluxdbOutput"
            message_matcher = "Type == 'metric' || Type == 'heka.sandbox.metric'"
            url = "{db.url}"
            database = "lma"
            flush_interval = 50
            use_buffering = false
        """))
        await p.start()
        proc = await collectd(tmp_path / "collectd", f"http://127.0.0.1:{port}/")
        try:
            async def series() -> dict[str, dict]:
                rows = await db.query("SELECT last(value) FROM load_shortterm, cpu_idle, "
                                      "memory_used GROUP BY *", db="lma")
                return {r["_measurement"]: r for r in rows}

            for _ in range(400):
                got = await series()
                if len(got) == 3:
                    break
                assert proc.poll() is None, "collectd exited"
                await asyncio.sleep(0.05)  # InfluxDB offers no event to wait on
            else:
                raise AssertionError(f"collectd's series not in InfluxDB: {got}")
        finally:
            await stop_process(proc)
            await p.stop()
    assert got["cpu_idle"]["hostname"] == "node-1"
    assert got["cpu_idle"]["cpu_number"].isdigit()
    assert got["load_shortterm"]["deployment_id"] == "42"
    assert got["load_shortterm"]["environment_label"] == "lab"
    assert got["memory_used"]["last"] > 0


@pytest.mark.services
def test_no_secret_in_check_output(tmp_path):
    """The password must not leak through `hekapy check`'s plugin graph."""
    import subprocess
    path = tmp_path / "h.toml"
    path.write_text('[listen]\ntype = "HttpListenInput"\nauth_type = "Basic"\n'
                    'username = "u"\npassword = "hunter2-secret"\n'
                    '[out]\ntype = "LogOutput"\nmessage_matcher = "TRUE"\n'
                    'encoder = "PayloadEncoder"\n[PayloadEncoder]\n')
    r = subprocess.run([*HEKAPY, "check", "-c",
                        str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "listen" in r.stdout
    assert "hunter2-secret" not in r.stdout + r.stderr
