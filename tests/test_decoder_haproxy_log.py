"""HaproxyLogDecoder on lines captured from HAProxy 2.6 (tests/data/lab/README.txt), on
edge cases, and on the log lines of a real HAProxy started by the test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.collector.message import new_record_message
from hekapy.collector.plugin import DecodeError
from hekapy.decoders.haproxy_log import HaproxyLogDecoder, access_fields
from tests.conftest import make_plugin
from tests.services import free_port, haproxy

LAB = Path(__file__).parent / "data" / "lab"


def decode(line: str, logger: str = "system.haproxy.log"):
    dec = make_plugin(HaproxyLogDecoder, tz="UTC")
    return dec.decode(new_record_message(1, "logfile", logger, "hekapy-host", line))


def fields(msg) -> dict:
    return {f.name: f.values[0] for f in msg.fields}


@pytest.mark.parametrize("name", ["haproxy_httplog.log",
                                  "haproxy_httplog_rfc5424_and_hostname.log"])
def test_captured_lines(name):
    lines = (LAB / name).read_text().splitlines()
    access = [ln for ln in lines if "] fe_http " in ln]
    assert len(access) >= len(lines) - 1  # one health-check line in the first file
    for line in access:
        m = decode(line + "\n")
        f = fields(m)
        assert m.logger == "system.haproxy" and m.pid in (13036, 14595)
        assert f["programname"] == "haproxy" and f["syslogfacility"] in (16, 17)  # local0/1
        assert f["haproxy_frontend"] == "fe_http" and f["haproxy_backend"] == "be_web"
        assert f["haproxy_server"] in ("web1", "web2")
        assert f["http_status"] in (200, 404) and f["http_method"] == "GET"
        assert f["http_url"].startswith("/") and f["http_version"] == "1.1"
        assert (f["haproxy_Tq"], f["haproxy_Tr"], f["haproxy_Tt"]) == (0, 1, 1)
        assert f["http_response_time"] == 0.001
        assert f["haproxy_termination_state"] == "----"
        assert f["http_client_ip_address"] == "127.0.0.1"


def test_first_captured_line_exactly():
    line = (LAB / "haproxy_httplog.log").read_text().splitlines()[0]
    m = decode(line)
    assert (m.timestamp, m.severity, m.hostname) == (1795465081000000000, 6, "hekapy-host")
    assert m.payload.startswith("127.0.0.1:35114 [23/Nov/2026:20:18:01.555] fe_http")
    f = fields(m)
    assert (f["client_port"], f["http_response_size"], f["haproxy_actconn"],
            f["haproxy_srv_queue"], f["haproxy_retries"]) == (35114, 196, 1, 0, 0)
    assert "haproxy_redispatched" not in f


def test_rfc5424_line_keeps_fraction_and_host():
    line = (LAB / "haproxy_httplog_rfc5424_and_hostname.log").read_text().splitlines()[0]
    m = decode(line)
    assert (m.timestamp, m.hostname) == (1795465135284954000, "lab-lb1")


def test_edge_cases():
    f = access_fields('[::1]:4242 [09/Jan/2024:10:00:00.000] fe~ be/<NOSRV> -1/-1/-1/-1/+0 '
                      '503 +212 - - SC-- 5/5/0/0/+3 0/0 {host.example|Mozilla/5 (X11)} '
                      '"<BADREQ>"')
    assert f is not None
    d = {x.name: x.values[0] for x in f}
    assert (d["http_client_ip_address"], d["client_port"]) == ("[::1]", 4242)
    assert d["haproxy_server"] == "<NOSRV>" and d["haproxy_Tq"] == -1
    assert d["haproxy_Tt"] == 0 and d["http_response_time"] == 0.0
    assert d["haproxy_retries"] == 3 and d["haproxy_redispatched"] is True
    assert "http_method" not in d
    tcp = access_fields("10.0.0.9:5000 [09/Jan/2024:10:00:00.000] fe_tcp be/s1 0/1/15 "
                        "8123 -- 1/1/1/1/0 0/0")
    t = {x.name: x.values[0] for x in tcp}
    assert (t["haproxy_Tw"], t["haproxy_Tc"], t["haproxy_Tt"], t["bytes_read"],
            t["haproxy_termination_state"]) == (0, 1, 15, 8123, "--")
    assert access_fields("Proxy fe_http started.") is None


def test_health_check_messages_are_plain_syslog():
    m = decode('<129>Nov 23 20:18:05 haproxy[13036]: Server be_web/web1 is DOWN, reason: '
               'Layer4 connection problem, info: "Connection refused", check duration: 0ms.')
    f = fields(m)
    assert m.severity == 1 and "haproxy_backend" not in f
    assert m.payload.startswith("Server be_web/web1 is DOWN")


@pytest.mark.parametrize("line", ["", "garbage", "\ufffd\x00", "<1341>Nov 23 20:18:05 x: y",
                                  "x" * (1 << 20)])
def test_bad_input(line):
    with pytest.raises(DecodeError):
        decode(line)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz(text):
    try:
        m = decode("<134>Nov 23 20:18:05 haproxy[1]: " + text)
    except DecodeError:
        return
    assert m.type == "log"


# --- a real HAProxy --------------------------------------------------------------------

class _Syslog(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.lines.put_nowait(data.decode("utf-8", "replace"))


async def test_live_haproxy_http_and_tcp_logs(tmp_path):
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(_Syslog, local_addr=("127.0.0.1", 0))
    syslog_port = transport.get_extra_info("sockname")[1]

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello " + request.path, status=404 if "missing" in
                            request.path else 200)

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    backend_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", backend_port).start()
    http_port, tcp_port = free_port(), free_port()
    config = f"""
global
    log 127.0.0.1:{syslog_port} local0 info
    maxconn 64
defaults
    option dontlognull
    timeout connect 2s
    timeout client 5s
    timeout server 5s
    log global
frontend fe_http
    mode http
    option httplog
    bind 127.0.0.1:{http_port}
    default_backend be_web
frontend fe_tcp
    mode tcp
    option tcplog
    bind 127.0.0.1:{tcp_port}
    default_backend be_tcp
backend be_web
    mode http
    server web1 127.0.0.1:{backend_port}
backend be_tcp
    mode tcp
    server raw1 127.0.0.1:{backend_port}
"""
    try:
        async with haproxy(config, tmp_path, http_port):
            async with aiohttp.ClientSession() as s:
                for path in ("/a?x=1", "/missing"):
                    async with s.get(f"http://127.0.0.1:{http_port}{path}") as r:
                        await r.read()
            reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
            writer.write(b"GET /raw HTTP/1.0\r\nHost: x\r\n\r\n")
            await reader.read()
            writer.close()
            got = []
            while len(got) < 3:
                line = await asyncio.wait_for(sink.lines.get(), 10)
                m = decode(line)
                if "haproxy_frontend" in fields(m):
                    got.append(m)
    finally:
        transport.close()
        await runner.cleanup()
    by_url = {f.get("http_url", f["haproxy_frontend"]): f for f in map(fields, got)}
    assert by_url["/a?x=1"]["http_status"] == 200
    assert by_url["/missing"]["http_status"] == 404
    for f in (by_url["/a?x=1"], by_url["/missing"]):
        assert (f["haproxy_frontend"], f["haproxy_backend"], f["haproxy_server"]) == (
            "fe_http", "be_web", "web1")
        assert f["http_method"] == "GET" and f["http_version"] == "1.1"
        assert all(f[t] >= 0 for t in ("haproxy_Tq", "haproxy_Tw", "haproxy_Tc",
                                        "haproxy_Tr", "haproxy_Tt"))
        assert f["http_response_size"] > 0 and f["programname"] == "haproxy"
    tcp = by_url["fe_tcp"]
    assert (tcp["haproxy_frontend"], tcp["haproxy_server"]) == ("fe_tcp", "raw1")
    assert tcp["bytes_read"] > 0 and tcp["haproxy_Tt"] >= 0
