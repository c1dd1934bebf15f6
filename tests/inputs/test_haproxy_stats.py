"""HaproxyStatsInput: LMA's HAProxy metrics from `show info` / `show stat` (the LMA
research vector and answers captured from HAProxy 2.6), and live: a real HAProxy with two
backends and a stats socket laid out like the LBaaS agent's, read into a real InfluxDB;
a backend killed mid-test shows up DOWN within two ticks."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from aiohttp import web

from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.inputs.haproxy_stats import (
    LMA_IGNORE,
    LMA_RENAME,
    parse_info,
    parse_stat,
    stats_points,
)
from tests.helpers.paths import TEST_DATA
from tests.helpers.plugins import CollectOutput, config_from
from tests.helpers.wait import wait_for
from tests.services import free_port, haproxy, influxdb

VECTOR = json.loads((TEST_DATA / "lma" / "haproxy_stats.json").read_text())


def test_lma_vector():
    """Constructed by the LMA research from collectd's haproxy.py (not upstream)."""
    points = stats_points(parse_info(VECTOR["input_show_info"]),
                          parse_stat(VECTOR["input_show_stat"]), set(LMA_IGNORE),
                          LMA_RENAME)
    got = sorted((n, json.dumps(t, sort_keys=True), v) for n, v, t in points)
    want = sorted((m["metric"], json.dumps(m["tags"], sort_keys=True), m["value"])
                  for m in VECTOR["expected_metrics"] if m["metric"] != "haproxy_check")
    missing = set(want) - set(got)
    assert not missing, missing
    # Nothing from the ignored `stats` proxy; the queue gauge LMA's table lists is there.
    assert not [p for p in points if "stats" in p[2].values()]
    assert ("haproxy_backend_queue_current", 0, {"backend": "nova-api"}) in points


def test_captured_haproxy_26_answers_and_a_down_server():
    info = parse_info((TEST_DATA / "lab" / "haproxy_show_info.txt").read_text())
    rows = parse_stat((TEST_DATA / "lab" / "haproxy_show_stat.csv").read_text())
    points = {(n, tuple(sorted(t.items()))): v
              for n, v, t in stats_points(info, rows, set(), {})}
    assert points[("haproxy_backend_servers", (("backend", "be_web"), ("state", "up")))] == 2
    assert points[("haproxy_frontend_session_total", (("frontend", "fe_http"),))] == 106
    assert points[("haproxy_uptime", ())] >= 0
    down = parse_stat((TEST_DATA / "lab" / "haproxy_show_stat_web1_down.csv").read_text())
    points = {(n, tuple(sorted(t.items()))): v
              for n, v, t in stats_points(None, down, set(), {})}
    key = ("haproxy_backend_server",
           (("backend", "be_web"), ("server", "web1"), ("state", "down")))
    assert points[key] == 0
    assert points[("haproxy_backend_servers_percent",
                   (("backend", "be_web"), ("state", "down")))] == 50.0


def test_other_versions_columns_and_bad_answers():
    # Fewer columns (an old HAProxy), an extra unknown one, empty values: no error.
    rows = parse_stat("# pxname,svname,scur,stot,status,newcol\n"
                      "p,FRONTEND,,5,OPEN,x\np,BACKEND,1,,UP,y\np,s1,,,MAINT,z\n")
    points = stats_points(None, rows, set(), {})
    assert ("haproxy_frontend_session_current", 0, {"frontend": "p"}) in points
    assert ("haproxy_backend_status", 1, {"backend": "p"}) in points
    assert not [p for p in points if p[0] == "haproxy_backend_server"]  # MAINT left out
    with pytest.raises(ValueError):
        parse_stat("Unknown command.\n")


# --- live -------------------------------------------------------------------------------

@pytest.fixture
def short_dir():
    """Unix socket paths are limited to ~100 bytes; pytest's tmp_path is too deep."""
    d = Path(tempfile.mkdtemp(prefix="lb", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.services
async def test_lbaas_haproxy_into_influxdb_and_a_backend_going_down(tmp_path, short_dir):
    lb_id = str(uuid.uuid4())
    lbaas = short_dir / "lbaas" / "v2" / lb_id
    lbaas.mkdir(parents=True)
    sock = lbaas / "haproxy_stats.sock"

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    runners = []
    ports = []
    for _ in range(2):
        app = web.Application()
        app.router.add_get("/{tail:.*}", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        ports.append(port)
    front = free_port()
    cfg = f"""
global
    stats socket {sock} mode 600 level admin
    maxconn 64
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_{lb_id[:8]}
    bind 127.0.0.1:{front}
    default_backend be_{lb_id[:8]}
backend be_{lb_id[:8]}
    balance roundrobin
    option httpchk GET /
    server m1 127.0.0.1:{ports[0]} check inter 200ms fall 2 rise 2
    server m2 127.0.0.1:{ports[1]} check inter 200ms fall 2 rise 2
"""
    try:
        async with influxdb(tmp_path / "influx") as db, \
                haproxy(cfg, tmp_path, wait_port=front, wait_socket=sock):
            await db.query("CREATE DATABASE lma")
            p = Pipeline(config_from(tmp_path, f"""
                [hekad]
                base_dir = "{tmp_path / 'state'}"
                hostname = "node-7"
                deployment_tags = {{ environment_label = "env-3", deployment_id = "3" }}
                [haproxy_stats]
                type = "HaproxyStatsInput"
                sockets = ["{short_dir}/lbaas/*/sock",
                           "{short_dir}/lbaas/v2/*/haproxy_stats.sock"]
                ticker_interval = 0.3
                [influxdb]
                type = "InfluxdbOutput"
                message_matcher = "Type == 'metric'"
                url = "{db.url}"
                flush_interval = 50
                use_buffering = false
            """))
            await p.start()
            be = f"be_{lb_id[:8]}"

            async def servers(state: str) -> float | None:
                rows = await db.query(
                    "SELECT last(value) FROM haproxy_backend_servers WHERE "
                    f"backend = '{be}' AND state = '{state}' AND "
                    f"loadbalancer_id = '{lb_id}' AND hostname = 'node-7' AND "
                    # An input without a decoder: its metrics carry the tags all the same.
                    "environment_label = 'env-3' AND deployment_id = '3'", db="lma")
                return rows[0]["last"] if rows else None

            async def both_up() -> bool:
                return await servers("up") == 2.0

            await wait_for(both_up, "both servers UP in InfluxDB", timeout=15, interval=0.05)
            await runners[1].cleanup()  # kill one backend

            async def one_down() -> bool:
                return await servers("down") == 1.0

            await wait_for(one_down, "the killed server DOWN in InfluxDB", timeout=15,
                           interval=0.05)
            rows = await db.query("SELECT last(value) FROM haproxy_check", db="lma")
            assert rows[0]["last"] == 1.0
            await p.stop()
    finally:
        for r in runners:
            await r.cleanup()


async def test_a_socket_that_is_gone_reports_check_0_and_logs_once(tmp_path, caplog):
    p = Pipeline(config_from(tmp_path, f"""
        [haproxy_stats]
        type = "HaproxyStatsInput"
        sockets = ["{tmp_path}/gone.sock", "{tmp_path}/lbaas/*/sock"]
        ticker_interval = 0.01
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """))
    await p.start()
    sink = CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) >= 5, "five ticks", timeout=300)
    await p.stop()
    checks = [(m.find_field("name").values[0], m.find_field("value").values[0])
              for m in sink.messages]
    assert set(checks) == {("haproxy_check", 0)}
    assert caplog.text.count("gone.sock") == 1  # logged once, not every tick


@pytest.mark.services
async def test_stats_url_mode(tmp_path):
    """The stats page's CSV (`stats uri`) instead of a socket."""
    front, stats = free_port(), free_port()
    cfg = f"""
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_x
    bind 127.0.0.1:{front}
    default_backend be_x
backend be_x
    server s1 127.0.0.1:9 check inter 200ms
listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
"""
    async with haproxy(cfg, tmp_path, wait_port=stats):
        p = Pipeline(config_from(tmp_path, f"""
            [haproxy_stats]
            type = "HaproxyStatsInput"
            url = "http://127.0.0.1:{stats}/stats;csv"
            ticker_interval = 0.1
            [sink]
            type = "CollectOutput"
            message_matcher = "TRUE"
        """))
        await p.start()
        sink = CollectOutput.instances["sink"]

        def names() -> set[str]:
            return {m.find_field("name").values[0] for m in sink.messages}

        await wait_for(lambda: "haproxy_backend_status" in names(), "stats from the URL",
                       timeout=300)
        await p.stop()
    by = {(m.find_field("name").values[0],
           (m.find_field("backend") or m.find_field("frontend") or m.find_field("name"))
           .values[0]): m.find_field("value").values[0] for m in sink.messages}
    assert by[("haproxy_check", "haproxy_check")] == 1
    assert ("haproxy_frontend_session_total", "fe_x") in by
