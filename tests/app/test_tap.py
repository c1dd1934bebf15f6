"""`hekapy tap`: the registry the router offers batches to (bounded, never waits, one
attribute check when nobody watches), real `hekapy tap` processes reading matching
messages from a running `hekapy run`, and a viewer that never reads: the pipeline
delivers every line anyway and the viewer is told what it missed."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from hekapy.collector.app.tap import format_message_text
from hekapy.collector.engine.matcher import compile_matcher
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.queue import Batch, BatchQueue
from hekapy.collector.engine.router import Route, Router
from hekapy.collector.engine.stats import PluginStats
from hekapy.collector.engine.tap import TapRegistry, TapViewer
from tests.helpers.collectors import (
    HEKAPY,
    parse_prometheus,
    sample,
    start_collector,
    stop_collector,
    tap_config,
    wait_status,
)
from tests.helpers.wait import wait_for


def msgs(*payloads: str, logger: str = "app") -> list[Message]:
    return [Message(type="logfile", logger=logger, payload=p) for p in payloads]


async def test_router_pays_one_check_without_a_viewer_and_never_waits_with_one():
    router = Router()
    q = BatchQueue(max_batches=100)
    errors_only = compile_matcher("Payload =~ /ERROR/")
    router.add(Route("errors", errors_only, q, PluginStats()))
    reg = TapRegistry(router)
    assert router.tap is None
    everything = TapViewer(compile_matcher("TRUE"), capacity=3)
    info = TapViewer(compile_matcher("Payload =~ /INFO/"), capacity=100)
    at_errors = TapViewer(compile_matcher("TRUE"), route=router.routes[0], capacity=100)
    for v in (everything, info, at_errors):
        reg.attach(v)
    assert router.tap is reg
    await router.route(Batch(msgs("INFO 1", "ERROR 2", "INFO 3", "ERROR 4")))
    # The full viewer kept 3 and counted the 4th as dropped; later batches are not even
    # examined for it while its queue is full.
    assert [m.payload for m in everything.queue] == ["INFO 1", "ERROR 2", "INFO 3"]
    assert (everything.dropped, everything.unexamined) == (1, 0)
    await router.route(Batch(msgs("ERROR 5", "INFO 6")))
    assert (everything.dropped, everything.unexamined) == (1, 2)
    assert [m.payload for m in info.queue] == ["INFO 1", "INFO 3", "INFO 6"]
    # plugin= sees what the router hands that plugin: its own message_matcher applies.
    assert [m.payload for m in at_errors.queue] == ["ERROR 2", "ERROR 4", "ERROR 5"]
    assert [m.payload for b in (q.get_nowait(), q.get_nowait()) for m in b.messages] == [
        "ERROR 2", "ERROR 4", "ERROR 5"]
    # A filter's injected batch skips the filter itself, for the router and the tap.
    await router.route(Batch(msgs("ERROR 7")), skip="errors")
    assert len(at_errors.queue) == 3
    assert [m.payload for m in everything.take(10)] == ["INFO 1", "ERROR 2", "INFO 3"]
    assert everything.delivered == 3
    for v in (everything, info, at_errors):
        reg.detach(v)
    assert router.tap is None
    assert reg.dropped() == 1 + 3  # 1 dropped, 2 + 1 unexamined


def test_text_format_is_one_line_per_message():
    m = Message(timestamp=1_700_000_000_123_456_789, type="log", logger="openstack.nova",
                hostname="node-1", severity=6, payload="a\nb\n")
    m.add_field("programname", "nova-api")
    assert format_message_text(m.as_dict()) == (
        "2023-11-14T22:13:20.123456Z node-1 openstack.nova log sev=6 | a\\nb | "
        "programname=nova-api")


async def start_tap(conf: Path, *args: str) -> asyncio.subprocess.Process:
    """A `hekapy tap` process, once the collector has attached it (its stderr says)."""
    proc = await asyncio.create_subprocess_exec(
        *HEKAPY, "tap", "-c", str(conf), *args, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    line = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert line.startswith(b"tapping http://127.0.0.1:"), line
    return proc


async def wait_size(path: Path, size: int, proc: subprocess.Popen,
                    timeout: float = 120) -> None:
    """Until the file an output writes holds `size` bytes."""
    await wait_for(lambda: path.exists() and path.stat().st_size >= size,
                   f"{path} to reach {size} bytes", timeout=timeout, interval=0.02,
                   process=proc)


@pytest.mark.services
async def test_tap_shows_the_matching_messages_of_a_running_collector(tmp_path):
    conf, app_log, port = tap_config(tmp_path)
    log = tmp_path / "hekapy.log"
    collector = start_collector(conf, log)
    try:
        await wait_status(f"http://127.0.0.1:{port}", collector)
        by_match = await start_tap(conf, "--match", "Payload =~ /ERROR/", "--format",
                                   "json", "--head", "5")
        by_plugin = await start_tap(conf, "--plugin", "errors", "--head", "5")
        nothing = await start_tap(conf, "--plugin", "errors", "--match", "Logger != 'app'")
        with app_log.open("a") as f:
            for i in range(50):
                f.write(f"{'ERROR' if i % 10 == 0 else 'INFO'} {i}\n")
        out, err = await asyncio.wait_for(by_match.communicate(), 60)
        assert by_match.returncode == 0, err
        docs = [orjson.loads(x) for x in out.splitlines()]
        assert [d["Payload"] for d in docs] == [f"ERROR {i}\n" for i in range(0, 50, 10)]
        assert all(d["Logger"] == "app" and d["Type"] == "logfile" for d in docs)
        out, err = await asyncio.wait_for(by_plugin.communicate(), 60)
        assert by_plugin.returncode == 0, err
        lines = out.decode().splitlines()
        assert [x.split(" | ")[1] for x in lines] == [f"ERROR {i}" for i in range(0, 50, 10)]
        assert " app logfile sev=7 | " in lines[0]
        await wait_size(tmp_path / "out.log", app_log.stat().st_size, collector)
        assert nothing.returncode is None  # still attached, nothing matched
        nothing.terminate()
        await nothing.wait()
        r = subprocess.run([*HEKAPY, "tap", "-c", str(conf), "--plugin", "nope"],
                           capture_output=True, text=True)
        assert r.returncode == 1
        assert "no running filter or output named 'nope'" in r.stderr
        assert "errors, everything" in r.stderr
    finally:
        if collector.poll() is None:
            await stop_collector(collector)
    assert (tmp_path / "out.log").read_text() == app_log.read_text()


def _raw_tap(port: int, query: str) -> socket.socket:
    """A viewer that reads the handshake, then never reads again; a tiny receive
    buffer so the collector's writes block soon."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /tap?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = b""
    while b'{"tap":' not in got:
        data = s.recv(4096)
        assert data, got
        got += data
    assert got.startswith(b"HTTP/1.1 200"), got
    return s


@pytest.mark.services
async def test_a_viewer_that_never_reads_does_not_hold_the_pipeline(tmp_path):
    conf, app_log, port = tap_config(tmp_path)
    log = tmp_path / "hekapy.log"
    collector = start_collector(conf, log)
    base = f"http://127.0.0.1:{port}"
    sock = None
    try:
        await wait_status(base, collector)
        sock = await asyncio.to_thread(_raw_tap, port, "match=TRUE&buffer=50")
        n = 100_000
        line = "INFO a line long enough to fill the viewer's socket {:08d} " + "x" * 40 + "\n"
        with app_log.open("a") as f:
            f.write("".join(line.format(i) for i in range(n)))
        started = time.monotonic()
        # Every line reaches the output although the viewer reads nothing.
        await wait_size(tmp_path / "out.log", app_log.stat().st_size, collector)
        elapsed = time.monotonic() - started
        assert (tmp_path / "out.log").read_text() == app_log.read_text()
        async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as r:
            m = parse_prometheus(await r.text())
        assert sample(m, "hekapy_tap_viewers") == 1
        missed = sample(m, "hekapy_tap_dropped_total")
        assert missed > n // 2, missed
        assert sample(m, "hekapy_plugin_messages_out_total", plugin="everything") == n

        def read_drop_notice() -> tuple[int, int]:
            got = b""
            while True:
                data = sock.recv(1 << 16)
                assert data, "the stream ended without a drop notice"
                got = got[-200:] + data
                found = re.findall(rb'\{"dropped":(\d+),"unexamined":(\d+)\}', got)
                if found and sum(map(int, found[-1])) > 0:
                    return int(found[-1][0]), int(found[-1][1])

        dropped, unexamined = await asyncio.to_thread(read_drop_notice)
        assert dropped + unexamined > 0
        print(f"\n{n} lines through hekapy in {elapsed:.2f} s with a stalled viewer; "
              f"it missed {dropped + unexamined} messages")
    finally:
        if sock is not None:
            sock.close()
        if collector.poll() is None:
            await stop_collector(collector)
    logged = log.read_text()
    assert "tap viewer attached" in logged
