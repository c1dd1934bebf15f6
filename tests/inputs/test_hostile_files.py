"""Hostile files under the daemon: `file_match` picks up a binary file, a file with a
50 MB line and no newline, a file truncated and rewritten faster than hekapy looks at it,
and a FIFO, while two good logs are written. The real daemon (`hekapy run`) keeps serving
the good streams and loses none of their lines, names each bad one in /health and
/metrics, and keeps its memory bounded by max_message_size (the 50 MB line is dropped
as it comes, never held whole)."""

from __future__ import annotations

import asyncio
import os
import random
import re

import aiohttp
import pytest

from hekapy.benchmarks.es_double import EsDouble
from tests.fault_harness import Daemon, settle_to, wait_for
from tests.helpers.plugins import write_config
from tests.services import free_port

GOOD = ("good1", "good2")
SEQ = re.compile(r"hostile seq=(\d+) file=(\w+)")
FLIP = re.compile(r"flip gen=(\d+) n=(\d+) ")


def config(tmp_path, es_url: str, status: int) -> str:
    return f"""
[hekad]
base_dir = "{tmp_path / 'state'}"
hostname = "hostile-1"
status_address = "127.0.0.1:{status}"

[logs]
type = "LogstreamerInput"
log_directory = "{tmp_path / 'logs'}"
file_match = '(?P<Service>[a-z0-9]+)\\.log'
differentiator = ["Service"]
decoder = "openstack_decoder"

[openstack_decoder]
type = "OpenStackLogDecoder"
tz = "UTC"
hold_timeout = "100ms"

[elasticsearch_encoder]
type = "ESJsonEncoder"
index = "log-%{{%Y.%m.%d}}"
type_name = ""
id = "%{{UUID}}"

[elasticsearch_output]
type = "ElasticSearchOutput"
message_matcher = "TRUE"
encoder = "elasticsearch_encoder"
server = "{es_url}"
flush_count = 1000
flush_interval = 50
"""


def oslo(text: str) -> bytes:
    return (f"2025-11-23 10:00:00.000 4242 INFO nova.api.wsgi [-] {text}\n").encode()


async def write_good(logs, total: int) -> None:
    """Numbered lines into good1.log and good2.log in turn, 500 every 20 ms."""
    fds = {name: os.open(logs / f"{name}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
           for name in GOOD}
    try:
        for start in range(0, total, 500):
            chunks: dict[str, list[bytes]] = {name: [] for name in GOOD}
            for i in range(start, min(start + 500, total)):
                name = GOOD[i % 2]
                chunks[name].append(oslo(f"hostile seq={i} file={name} " + "p" * (i % 50)))
            for name, lines in chunks.items():
                os.write(fds[name], b"".join(lines))
            await asyncio.sleep(0.02)  # a steady stream beside the hostile files
    finally:
        for fd in fds.values():
            os.close(fd)


async def flip(path, generations: int) -> int:
    """Truncate and rewrite `path` again and again, each time with more lines than
    before, within milliseconds (faster than any scan): the size never shrinks between
    two looks. Returns the last generation's line count."""
    n = 0
    for gen in range(generations):
        n = 20 + 10 * gen
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.truncate(0)
            f.write(b"".join(oslo(f"flip gen={gen} n={i} ") for i in range(n)))
        await asyncio.sleep(0.005 if gen % 5 else 0.2)
    return n


def payloads(es: EsDouble) -> list[str]:
    return [d["_source"]["Payload"] for d in es.docs()]


async def metrics_and_health(status: int) -> tuple[str, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{status}/metrics") as r:
            text = await r.text()
        async with s.get(f"http://127.0.0.1:{status}/health") as r:
            health = await r.json()
        return text, health


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and all(
                f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.services
async def test_hostile_files_beside_good_logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = random.Random(7)
    # A binary file (NUL bytes, no structure), 1 MiB.
    (logs / "binary.log").write_bytes(bytes(rng.getrandbits(8) for _ in range(1 << 20)))
    # A FIFO nobody writes to: opening it for reading would block.
    os.mkfifo(logs / "fifo.log")
    # 50 MB without a newline.
    with open(logs / "huge.log", "wb") as f:
        block = b"x" * (1 << 20)
        for _ in range(50):
            f.write(block)
    status = free_port()
    async with EsDouble() as es:
        conf = write_config(tmp_path, config(tmp_path, es.url, status))
        daemon = Daemon(conf, tmp_path / "hekapy.log")
        await daemon.start()
        try:
            await wait_for(lambda: (tmp_path / "state" / "logstreamer").exists(), daemon,
                           "the logstreamer's journal directory")
            total = 20_000
            writer = asyncio.create_task(write_good(logs, total))
            last_flip = await flip(logs / "flip.log", 60)
            await writer
            # The good lines, and the last generation of the flipped file (besides
            # whatever was read of the earlier ones).

            def complete() -> bool:
                docs = payloads(es)
                return (sum(1 for p in docs if SEQ.search(p)) >= total
                        and sum(1 for p in docs if "flip gen=59 " in p) >= last_flip)

            await settle_to(es, total, daemon, timeout=120)
            await wait_for(complete, daemon, "the last generation of flip.log", 60)
            text, health = await metrics_and_health(status)
            rss = metric(text, "process_resident_memory_bytes")
        finally:
            code = await daemon.stop()
        log = daemon.output()
        docs = payloads(es)

    assert code == 0, log[-3000:]
    # Every good line once, whatever the hostile files did.
    seqs = [int(m.group(1)) for p in docs if (m := SEQ.search(p))]
    assert sorted(seqs) == list(range(total)), (len(seqs), len(set(seqs)))
    # The flipped file: its last generation whole; what was read of earlier ones is
    # whole lines of theirs, nothing spliced from two generations.
    flips = [(int(m.group(1)), int(m.group(2))) for p in docs if (m := FLIP.search(p))]
    last_gen = max(g for g, _ in flips)
    assert last_gen == 59
    assert sorted(n for g, n in flips if g == last_gen) == list(range(last_flip))
    for p in docs:
        if "flip gen=" in p:
            assert p.count("flip gen=") == 1 and FLIP.search(p), p
    # Nothing of the huge line was shipped, and memory stayed bounded (50 MB read).
    assert not any("xxxxxxxxxx" * 100 in p for p in docs)
    assert rss is not None and rss < 200 * 2**20, rss
    # The bad ones, by name, in /metrics ...
    labels = {"plugin": "logs", "type": "LogstreamerInput"}
    assert metric(text, "hekapy_logstreamer_skipped_file", path=str(logs / "fifo.log"),
                  **labels) == 1
    assert (metric(text, "hekapy_logstreamer_stream_problems_total", stream="binary",
                   problem="binary", **labels) or 0) > 0
    assert (metric(text, "hekapy_logstreamer_stream_problems_total", stream="huge",
                   problem="oversized", **labels) or 0) >= 1
    assert (metric(text, "hekapy_logstreamer_stream_problems_total", stream="flip",
                   problem="truncated", **labels) or 0) >= 1
    assert metric(text, "hekapy_logstreamer_stream_problems_total", stream="good1",
                  **labels) is None
    # ... and in /health, which stays 200 (degraded: the good streams are served).
    assert health["status"] == "degraded", health
    reasons = "\n".join(health["reasons"])
    assert "fifo.log: a FIFO, not a regular file" in reasons, reasons
    assert "stream 'binary': binary data" in reasons, reasons
    assert "stream 'huge': records over max_message_size dropped" in reasons, reasons
    assert "good1" not in reasons and "good2" not in reasons
    # The log says what was skipped.
    assert "fifo.log: a FIFO, not a regular file: not read" in log
