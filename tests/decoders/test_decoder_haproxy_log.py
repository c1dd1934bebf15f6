"""HaproxyLogDecoder on lines captured from HAProxy 2.6 (tests/data/lab/README.txt), on
edge cases, bad input, fuzzed lines, and on the logs of a real HAProxy started by the
tests (tests/services.py)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.collector.engine.message import new_record_message
from hekapy.collector.engine.plugin import DecodeError
from hekapy.decoders.haproxy_log import HaproxyLogDecoder, access_fields
from tests.helpers.paths import LAB_DATA
from tests.helpers.plugins import make_plugin
from tests.services import free_port, haproxy, syslog_sink

LAB = LAB_DATA
_DECODERS: dict[str, HaproxyLogDecoder] = {}


def decode(line: str, logger: str = "system.haproxy.log", tz: str = "UTC"):
    dec = _DECODERS.get(tz)
    if dec is None:
        dec = _DECODERS[tz] = make_plugin(HaproxyLogDecoder, tz=tz)
    return dec.decode(new_record_message(1, "logfile", logger, "hekapy-host", line))


def fields(msg) -> dict:
    return {f.name: f.values[0] for f in msg.fields}


def lab_lines(name: str) -> list[str]:
    return (LAB / name).read_text().splitlines()


def access(message: str) -> dict:
    f = access_fields(message)
    assert f is not None, message
    names = [x.name for x in f]
    assert len(names) == len(set(names)), names
    return {x.name: x.values[0] for x in f}


# --- captured lines ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["haproxy_httplog.log",
                                  "haproxy_httplog_rfc5424_and_hostname.log"])
def test_captured_lines(name):
    lines = lab_lines(name)
    access_lines = [ln for ln in lines if "] fe_http " in ln]
    assert len(access_lines) >= len(lines) - 1  # one health-check line in the first file
    for line in access_lines:
        m = decode(line + "\n")
        f = fields(m)
        assert m.type == "log" and m.logger == "system.haproxy" and m.pid in (13036, 14595)
        assert m.severity == 6 and f["severity_label"] == "INFO"
        assert f["programname"] == "haproxy" and f["syslogfacility"] in (16, 17)  # local0/1
        assert f["haproxy_frontend"] == "fe_http" and f["haproxy_backend"] == "be_web"
        assert f["haproxy_server"] in ("web1", "web2")
        assert f["http_status"] in (200, 404) and f["http_method"] == "GET"
        assert f["http_url"].startswith("/") and f["http_version"] == "1.1"
        assert (f["haproxy_Tq"], f["haproxy_Tw"], f["haproxy_Tc"], f["haproxy_Tr"],
                f["haproxy_Ta"]) == (0, 0, 0, 1, 1)
        assert "haproxy_Tt" not in f
        assert f["http_response_time"] == 0.001
        assert f["haproxy_termination_state"] == "----"
        assert f["http_client_ip_address"] == "127.0.0.1"
        assert f["http_response_size"] in (196, 500)
        assert f["haproxy_redispatched"] is False
        assert m.payload == line[line.index("127.0.0.1:"):]


def test_first_captured_line_exactly():
    line = lab_lines("haproxy_httplog.log")[0]
    m = decode(line)
    assert (m.timestamp, m.severity, m.hostname) == (1795465081000000000, 6, "hekapy-host")
    assert m.payload == ('127.0.0.1:35114 [23/Nov/2026:20:18:01.555] fe_http be_web/web1 '
                         '0/0/0/1/1 200 196 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"')
    f = fields(m)
    assert f == {
        "programname": "haproxy", "syslogfacility": 16, "severity_label": "INFO",
        "http_client_ip_address": "127.0.0.1", "client_port": 35114,
        "haproxy_frontend": "fe_http", "haproxy_backend": "be_web", "haproxy_server": "web1",
        "haproxy_Tq": 0, "haproxy_Tw": 0, "haproxy_Tc": 0, "haproxy_Tr": 1, "haproxy_Ta": 1,
        "http_status": 200, "http_response_size": 196, "haproxy_termination_state": "----",
        "http_response_time": 0.001, "haproxy_actconn": 1, "haproxy_feconn": 1,
        "haproxy_beconn": 0, "haproxy_srv_conn": 0, "haproxy_retries": 0,
        "haproxy_redispatched": False, "haproxy_srv_queue": 0, "haproxy_backend_queue": 0,
        "http_method": "GET", "http_url": "/", "http_version": "1.1"}
    types = {f.name: f.value_type for f in m.fields}
    assert types["http_status"] == types["haproxy_Tq"] == types["client_port"] == 2
    assert types["http_response_time"] == 3 and types["haproxy_redispatched"] == 4


def test_rfc5424_and_hostname_variants():
    lines = lab_lines("haproxy_httplog_rfc5424_and_hostname.log")
    m = decode(lines[0])  # <134>1 2026-11-23T20:18:55.284954+00:00 lab-lb1 haproxy 14595
    assert (m.timestamp, m.hostname, m.pid) == (1795465135284954000, "lab-lb1", 14595)
    assert m.payload.startswith("127.0.0.1:33960 [23/Nov/2026:20:18:55.283] fe_http")
    m = decode(lines[1])  # <142>Nov 23 20:18:55 lab-lb1 haproxy[14595]:
    assert (m.timestamp, m.hostname, m.severity) == (1795465135000000000, "lab-lb1", 6)
    assert fields(m)["syslogfacility"] == 17 and fields(m)["http_url"] == "/x-5424"


def test_naive_syslog_time_is_read_in_tz_and_offsets_win():
    line = lab_lines("haproxy_httplog.log")[0]  # Nov 23 20:18:01, no offset
    assert decode(line, tz="Europe/Paris").timestamp == 1795465081000000000 - 3600 * 10**9
    rfc5424 = lab_lines("haproxy_httplog_rfc5424_and_hostname.log")[0]  # +00:00
    assert decode(rfc5424, tz="Europe/Paris").timestamp == 1795465135284954000


def test_rsyslog_file_lines_with_and_without_pri():
    body = ('10.1.2.3:5000 [23/Nov/2026:20:18:01.555] fe be/s1 1/2/3/4/10 302 50 - - '
            '---- 9/8/7/6/5 4/3 "POST /login HTTP/1.0"')
    m = decode("Nov 23 20:18:01 node-1 haproxy[42]: " + body + "\n")
    assert (m.hostname, m.pid, m.severity, m.payload) == ("node-1", 42, 7, body)
    f = fields(m)
    assert "syslogfacility" not in f and f["severity_label"] == "DEBUG"
    assert (f["haproxy_Tq"], f["haproxy_Tw"], f["haproxy_Tc"], f["haproxy_Tr"],
            f["haproxy_Ta"], f["http_response_time"]) == (1, 2, 3, 4, 10, 0.01)
    assert (f["haproxy_actconn"], f["haproxy_feconn"], f["haproxy_beconn"],
            f["haproxy_srv_conn"], f["haproxy_retries"], f["haproxy_srv_queue"],
            f["haproxy_backend_queue"]) == (9, 8, 7, 6, 5, 4, 3)
    assert (f["http_method"], f["http_url"], f["http_version"]) == ("POST", "/login", "1.0")
    m = decode("<134>Nov 23 20:18:01 node-1 haproxy[42]: " + body, logger="haproxy")
    assert m.logger == "haproxy" and fields(m)["syslogfacility"] == 16


# --- edge cases, most of them captured from HAProxy 2.6.12 (haproxy_edge_cases.log) -----

def _edge(i: int) -> dict:
    return fields(decode(lab_lines("haproxy_edge_cases.log")[i]))


def test_captured_ipv6_client_and_headers_with_spaces():
    f = _edge(0)
    assert (f["http_client_ip_address"], f["client_port"]) == ("::1", 53936)
    assert (f["http_url"], f["http_status"]) == ("/v6?x=1", 200)
    t = _edge(8)  # tcplog over IPv6
    assert (t["http_client_ip_address"], t["client_port"], t["haproxy_frontend"],
            t["haproxy_server"]) == ("::1", 58270, "fe_tcp", "raw1")


def test_captured_badreq():
    for i, state in ((1, "PR--"), (7, "CR--")):
        f = _edge(i)
        assert (f["haproxy_backend"], f["haproxy_server"], f["http_status"]) == (
            "fe_http", "<NOSRV>", 400)
        assert (f["haproxy_Tq"], f["haproxy_Tw"], f["haproxy_Tc"], f["haproxy_Tr"]) == (
            -1, -1, -1, -1)
        assert f["haproxy_termination_state"] == state
        assert not {"http_method", "http_url", "http_version"} & f.keys()


def test_captured_line_cut_by_haproxy_len():
    line = lab_lines("haproxy_edge_cases.log")[3]
    assert len(line) == 300 and not line.endswith('"')
    f = fields(decode(line))
    assert f["http_method"] == "GET" and f["http_url"].startswith("/aaaa")
    assert "http_version" not in f and f["http_status"] == 200


def test_captured_logasap_and_redispatch():
    f = _edge(4)  # 0/0/0/0/+0 200 +124
    assert (f["haproxy_Ta"], f["http_response_size"], f["http_url"]) == (0, 124, "/asap")
    f = _edge(5)  # 1/1/0/0/+1
    assert (f["haproxy_retries"], f["haproxy_redispatched"]) == (1, True)


def test_every_captured_edge_line_decodes():
    for line in lab_lines("haproxy_edge_cases.log"):
        assert "haproxy_frontend" in fields(decode(line))


def test_synthetic_edge_cases():
    d = access('10.0.0.1:4242 [09/Jan/2024:10:00:00.000] fe~ be/<NOSRV> -1/-1/-1/-1/+25 '
               '503 +212 - - SC-- 5/5/0/0/+3 0/0 {host.example|Mozilla/5 (X11)} {} '
               '"GET /x HTTP/1.1"')
    assert d["haproxy_frontend"] == "fe~" and d["haproxy_server"] == "<NOSRV>"
    assert (d["haproxy_Tq"], d["haproxy_Ta"], d["http_response_time"]) == (-1, 25, 0.025)
    assert d["haproxy_retries"] == 3 and d["haproxy_redispatched"] is True
    assert (d["http_url"], d["http_response_size"]) == ("/x", 212)
    # Ta == -1 (aborted): no response time
    d = access('10.0.0.1:1 [09/Jan/2024:10:00:00.000] fe be/s -1/-1/-1/-1/-1 -1 0 - - CR-- '
               '0/0/0/0/0 0/0 "<BADREQ>"')
    assert d["http_status"] == -1 and "http_response_time" not in d
    # a custom format that brackets IPv6, an HTTP/2 request, and httpslog's TLS tail
    d = access('[2001:db8::7]:443 [09/Jan/2024:10:00:00.000] fe be/s 0/0/0/0/0 200 1 - - '
               '---- 1/1/1/1/0 0/0 "GET /h2 HTTP/2.0" 0/0000000000000000/0/0/0 '
               'x.example/TLSv1.3/TLS_AES_256_GCM_SHA384')
    assert (d["http_client_ip_address"], d["client_port"]) == ("2001:db8::7", 443)
    assert (d["http_url"], d["http_version"]) == ("/h2", "2.0")
    # a cut inside the captured headers
    d = access('10.0.0.1:1 [09/Jan/2024:10:00:00.000] fe be/s 0/0/0/0/0 200 1 - - ---- '
               '1/1/1/1/0 0/0 {a very long hea')
    assert "http_method" not in d and d["http_status"] == 200
    # tcplog with -1 timers and a unix-socket client
    t = access("unix:1 [09/Jan/2024:10:00:00.000] fe_tcp be/<NOSRV> -1/-1/+17 +0 SC "
               "1/1/0/0/+2 0/0")
    assert (t["http_client_ip_address"], t["client_port"]) == ("unix", 1)
    assert (t["haproxy_Tw"], t["haproxy_Tc"], t["haproxy_Tt"], t["bytes_read"],
            t["haproxy_termination_state"], t["haproxy_redispatched"]) == (
        -1, -1, 17, 0, "SC", True)
    assert "http_status" not in t and "http_response_time" not in t


@pytest.mark.parametrize("message", [
    "Proxy fe_http started.",
    "Stopping frontend fe_http in 0 ms.",
    'Server be_web/web1 is DOWN, reason: Layer4 connection problem, info: "Connection '
    'refused", check duration: 0ms. 1 active and 0 backup servers left.',
    "127.0.0.1:40000 [24/Nov/2026:03:45:41.646] fe_https/1: SSL handshake failure",
    "Connect from 127.0.0.1:40000 to 127.0.0.1:8443 (fe_tcp/TCP)",
])
def test_other_haproxy_messages_are_plain_syslog(message):
    m = decode(f"<133>Nov 23 20:18:05 haproxy[13036]: {message}")
    assert m.payload == message and m.severity == 5
    assert set(fields(m)) == {"programname", "syslogfacility", "severity_label"}


def test_captured_health_check_line_is_plain_syslog():
    line = next(ln for ln in lab_lines("haproxy_httplog.log") if "is DOWN" in ln)
    m = decode(line)
    assert m.severity == 1 and fields(m)["severity_label"] == "ALERT"
    assert m.payload.startswith("Server be_web/web1 is DOWN") and m.pid == 13036


# --- bad input ---------------------------------------------------------------------------

_GOOD = lab_lines("haproxy_httplog.log")[1]


@pytest.mark.parametrize("line", [
    "", "\n", "garbage", "\ufffd\x00", "<1341>Nov 23 20:18:05 x: y", "<134>Nov 23 20:1",
    "x" * (1 << 20), _GOOD[:10], _GOOD[:15], _GOOD[:20],
    # access lines cut (or changed) before their connection counts
    _GOOD[:_GOOD.index(" 200 ")], _GOOD[:_GOOD.index(" ---- ")], _GOOD[:_GOOD.index(" 0/0 ")],
    _GOOD.replace(" 200 196 ", " 200 "), _GOOD.replace("0/0/0/1/1", "0/0/0/x/1"),
    "<134>Nov 23 20:18:05 haproxy[1]: 10.0.0.1:1 [d] fe be/s " + "1/" * (1 << 19),
])
def test_bad_input(line):
    with pytest.raises(DecodeError):
        decode(line)


def test_bad_access_line_says_why():
    with pytest.raises(DecodeError, match="neither the httplog nor the tcplog"):
        decode(_GOOD[:_GOOD.index(" ---- ")])


def test_decode_error_leaves_the_record_alone():
    msg = new_record_message(1, "logfile", "system.haproxy.log", "h", _GOOD[:-60])
    with pytest.raises(DecodeError):
        make_plugin(HaproxyLogDecoder, tz="UTC").decode(msg)
    assert (msg.payload, msg.logger, msg.fields) == (_GOOD[:-60], "system.haproxy.log", [])


def test_huge_lines_are_fast():
    header = "<134>Nov 23 20:18:05 haproxy[1]: "
    t0 = time.monotonic()
    big_url = _GOOD.replace("/?req=1", "/" + "a" * (1 << 20))
    assert len(fields(decode(big_url))["http_url"]) == (1 << 20) + 1
    for body in ("1:" * (1 << 19), "1:1 [" * (1 << 18), "a " * (1 << 19), "{" * (1 << 20),
                 "10.0.0.1:1 [d] fe be/s 0/0/0/0/0 200 1 - - ---- 1/1/1/1/0 0/0 "
                 + "{ " * (1 << 19)):
        try:
            decode(header + body)
        except DecodeError:
            pass
    assert time.monotonic() - t0 < 5


# --- fuzzing -----------------------------------------------------------------------------

_timer = st.one_of(st.just(-1), st.integers(0, 10**7))
_name = st.from_regex(r"[A-Za-z0-9_.~-]{1,20}", fullmatch=True)
_header = st.from_regex(r"[^{}\n\"]{0,30}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(ip=st.sampled_from(["10.0.0.1", "::1", "2001:db8::7", "::ffff:127.0.0.1"]),
       port=st.integers(0, 65535), fe=_name, be=st.from_regex(r"[A-Za-z0-9_.~-]{1,20}",
                                                             fullmatch=True),
       srv=st.one_of(_name, st.just("<NOSRV>")), timers=st.lists(_timer, min_size=5,
                                                                   max_size=5),
       logasap=st.booleans(), status=st.integers(-1, 599), size=st.integers(0, 10**12),
       state=st.from_regex(r"[A-Z-]{4}", fullmatch=True),
       conns=st.lists(st.integers(0, 10**6), min_size=7, max_size=7), plus=st.booleans(),
       headers=st.lists(st.lists(_header, min_size=1, max_size=3), max_size=2),
       method=st.sampled_from(["GET", "POST", "PROPFIND"]),
       url=st.from_regex(r"/[!-~]{0,40}", fullmatch=True).filter(lambda u: '"' not in u),
       version=st.sampled_from(["1.0", "1.1", "2.0"]))
def test_fuzz_httplog_round_trip(ip, port, fe, be, srv, timers, logasap, status, size, state,
                                 conns, plus, headers, method, url, version):
    ta = ("+" if logasap else "") + str(timers[4])
    caps = "".join(" {" + "|".join(h) + "}" for h in headers)
    line = (f"{ip}:{port} [24/Nov/2026:03:45:41.639] {fe} {be}/{srv} "
            f"{'/'.join(map(str, timers[:4]))}/{ta} {status} {'+' if logasap else ''}{size} "
            f"- - {state} {'/'.join(map(str, conns[:4]))}/{'+' if plus else ''}{conns[4]} "
            f'{conns[5]}/{conns[6]}{caps} "{method} {url} HTTP/{version}"')
    m = decode("<134>Nov 24 03:45:41 haproxy[7]: " + line)
    f = fields(m)
    assert m.payload == line
    assert (f["http_client_ip_address"], f["client_port"], f["haproxy_frontend"],
            f["haproxy_backend"], f["haproxy_server"]) == (ip, port, fe, be, srv)
    assert [f[n] for n in ("haproxy_Tq", "haproxy_Tw", "haproxy_Tc", "haproxy_Tr",
                           "haproxy_Ta")] == timers
    assert f.get("http_response_time") == (timers[4] / 1000 if timers[4] >= 0 else None)
    assert (f["http_status"], f["http_response_size"], f["haproxy_termination_state"]) == (
        status, size, state)
    assert [f[n] for n in ("haproxy_actconn", "haproxy_feconn", "haproxy_beconn",
                           "haproxy_srv_conn", "haproxy_retries", "haproxy_srv_queue",
                           "haproxy_backend_queue")] == conns
    assert f["haproxy_redispatched"] is plus
    assert (f["http_method"], f["http_url"], f["http_version"]) == (method, url, version)


@settings(max_examples=300, deadline=None)
@given(line=st.sampled_from(lab_lines("haproxy_httplog.log")
                            + lab_lines("haproxy_edge_cases.log")),
       cut=st.integers(0, 400), junk=st.text(max_size=20))
def test_fuzz_cut_and_spliced_lines(line, cut, junk):
    try:
        m = decode(line[:cut] + junk)
    except DecodeError:
        return
    assert m.type == "log"
    f = fields(m)
    if "haproxy_frontend" in f:
        assert isinstance(f["http_client_ip_address"], str)
        assert isinstance(f["haproxy_srv_queue"], int)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    try:
        m = decode("<134>Nov 23 20:18:05 haproxy[1]: " + text)
    except DecodeError:
        return
    assert m.type == "log"


# --- a real HAProxy ----------------------------------------------------------------------

@pytest.fixture
async def lab(tmp_path):
    """HAProxy 2.6 (Debian) in front of an aiohttp backend, logging over UDP syslog to a
    socket of the test: fe_http (httplog, RFC 3164 local0), fe_tcp (tcplog) and fe_5424
    (httplog as RFC 5424, local1, with a hostname)."""
    sink = await syslog_sink()

    async def hello(request: web.Request) -> web.Response:
        status = 404 if "missing" in request.path else 200
        return web.Response(text="hello " + request.path, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    backend_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", backend_port).start()
    http_port, tcp_port, rfc5424_port = free_port(), free_port(), free_port()
    config = f"""
global
    log 127.0.0.1:{sink.port} local0 info
    log-send-hostname lab-lb1
    maxconn 64
defaults
    option dontlognull
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe_http
    mode http
    log global
    option httplog
    bind 127.0.0.1:{http_port}
    capture request header User-Agent len 64
    default_backend be_web
frontend fe_5424
    mode http
    log 127.0.0.1:{sink.port} format rfc5424 local1 info
    option httplog
    bind 127.0.0.1:{rfc5424_port}
    default_backend be_web
frontend fe_tcp
    mode tcp
    log global
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
        async with haproxy(config, tmp_path, wait_port=http_port):
            yield SimpleNamespace(sink=sink, http_port=http_port, tcp_port=tcp_port,
                                  rfc5424_port=rfc5424_port)
    finally:
        sink.close()
        await runner.cleanup()


async def access_messages(sink, count: int) -> list:
    """The next `count` decoded access-log messages (other HAProxy messages skipped)."""
    got = []
    while len(got) < count:
        m = decode(await sink.next_line(10))
        if "haproxy_frontend" in fields(m):
            got.append(m)
    return got


@pytest.mark.services
async def test_live_httplog(lab):
    async with aiohttp.ClientSession() as s:
        for method, path in (("GET", "/a?x=1"), ("GET", "/missing"), ("POST", "/post")):
            async with s.request(method, f"http://127.0.0.1:{lab.http_port}{path}",
                                 data=b"body" if method == "POST" else None,
                                 headers={"User-Agent": "test agent {1}"}) as r:
                await r.read()
    by_url = {fields(m)["http_url"]: m for m in await access_messages(lab.sink, 3)}
    assert set(by_url) == {"/a?x=1", "/missing", "/post"}
    for url, (method, status) in {"/a?x=1": ("GET", 200), "/missing": ("GET", 404),
                                  "/post": ("POST", 200)}.items():
        m = by_url[url]
        f = fields(m)
        assert (m.type, m.logger, m.hostname, m.severity) == (
            "log", "system.haproxy", "lab-lb1", 6)
        assert (f["programname"], f["syslogfacility"]) == ("haproxy", 16)
        assert m.pid > 0 and m.payload.startswith("127.0.0.1:")
        assert abs(m.timestamp - time.time_ns()) < 120 * 10**9  # read in UTC: the lab's zone
        assert (f["http_method"], f["http_status"], f["http_version"]) == (method, status, "1.1")
        assert (f["haproxy_frontend"], f["haproxy_backend"], f["haproxy_server"]) == (
            "fe_http", "be_web", "web1")
        assert all(f[t] >= 0 for t in ("haproxy_Tq", "haproxy_Tw", "haproxy_Tc",
                                        "haproxy_Tr", "haproxy_Ta"))
        assert f["http_response_time"] == f["haproxy_Ta"] / 1000
        assert f["http_response_size"] > 0 and f["haproxy_termination_state"] == "----"
        assert f["http_client_ip_address"] == "127.0.0.1" and f["client_port"] > 0
        assert f["haproxy_retries"] == 0 and f["haproxy_redispatched"] is False
        assert f["haproxy_actconn"] >= 1 and f["haproxy_srv_queue"] == 0
        assert "{test agent #7B1#7D}" in m.payload


@pytest.mark.services
async def test_live_tcplog_and_badreq(lab):
    reader, writer = await asyncio.open_connection("127.0.0.1", lab.tcp_port)
    writer.write(b"GET /raw HTTP/1.0\r\nHost: x\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.0 200")
    writer.close()
    [m] = await access_messages(lab.sink, 1)
    t = fields(m)
    assert (t["haproxy_frontend"], t["haproxy_backend"], t["haproxy_server"]) == (
        "fe_tcp", "be_tcp", "raw1")
    assert t["bytes_read"] > 0 and t["haproxy_termination_state"] == "--"
    assert all(t[n] >= 0 for n in ("haproxy_Tw", "haproxy_Tc", "haproxy_Tt"))
    assert "http_status" not in t and "haproxy_Ta" not in t

    reader, writer = await asyncio.open_connection("127.0.0.1", lab.http_port)
    writer.write(b"this is not http\r\n\r\n")
    assert b" 400 " in await reader.read()
    writer.close()
    [m] = await access_messages(lab.sink, 1)
    f = fields(m)
    assert (f["http_status"], f["haproxy_server"], f["haproxy_Tq"]) == (400, "<NOSRV>", -1)
    assert "http_method" not in f and m.payload.endswith('"<BADREQ>"')


@pytest.mark.services
async def test_live_rfc5424(lab):
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{lab.rfc5424_port}/x-5424") as r:
            assert r.status == 200
    [m] = await access_messages(lab.sink, 1)
    f = fields(m)
    assert (m.hostname, m.severity, f["syslogfacility"], f["programname"]) == (
        "lab-lb1", 6, 17, "haproxy")
    assert abs(m.timestamp - time.time_ns()) < 120 * 10**9  # RFC 5424: with its offset
    assert (f["haproxy_frontend"], f["http_url"], f["http_status"]) == (
        "fe_5424", "/x-5424", 200)
