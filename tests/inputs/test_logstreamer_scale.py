"""LogstreamerInput at scale: a tree of 10,000 files (one stream each) and a 100 MiB
line (bounded memory; the line is dropped, counted, and the stream goes on)."""

from __future__ import annotations

import asyncio
import os
import time

import psutil

import hekapy.collector.inputs.logstreamer  # noqa: F401  (registers LogstreamerInput)
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.inputs.logstreamer.discovery import Discovery
from tests.helpers.logstreamer import journal_of, logstreamer_config, out_messages
from tests.helpers.plugins import CollectOutput
from tests.helpers.wait import wait_for

TREE_MATCH = r"(?P<Dir>d\d+)/(?P<File>f\d+)\.log"


async def test_ten_thousand_files_in_a_tree(tmp_path):
    logdir = tmp_path / "logs"
    for d in range(100):
        sub = logdir / f"d{d:02d}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:02d}.log").write_bytes(f"d{d:02d}/f{f:02d} hello\n".encode())
    # Discovery alone: walk, match, group, order.
    disc = Discovery(str(logdir), TREE_MATCH, differentiator=["Dir", "-", "File"])
    t0 = time.monotonic()
    res = disc.scan()
    scan_seconds = time.monotonic() - t0
    assert res.files == 10_000 and len(res.streams) == 10_000 and not res.errors
    assert scan_seconds < 10, f"scan took {scan_seconds:.2f} s"
    # The whole input: one stream per file, every line delivered once, every stream
    # journaled at stop.
    t0 = time.monotonic()
    p = await start_tree(tmp_path, logdir)
    await wait_for(lambda: len(out_messages()) == 10_000, "10,000 messages", timeout=120)
    all_seconds = time.monotonic() - t0
    await p.stop()
    loggers = {m.logger for m in out_messages()}
    assert len(loggers) == 10_000 and "d42-f07" in loggers
    assert {m.payload for m in out_messages() if m.logger == "d42-f07"} == {"d42/f07 hello\n"}
    assert len(os.listdir(tmp_path / "state" / "logstreamer")) == 10_000
    assert journal_of(tmp_path, "d42-f07").seek == len("d42/f07 hello\n")
    assert all_seconds < 120
    print(f"10k files: scan {scan_seconds:.3f} s, all delivered in {all_seconds:.2f} s")


async def start_tree(tmp_path, logdir) -> Pipeline:
    p = Pipeline(logstreamer_config(tmp_path, logdir, f"""file_match = '{TREE_MATCH}'
differentiator = ["Dir", "-", "File"]"""))
    await p.start()
    return p


async def test_hundred_mib_line_bounded_memory(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    path = logdir / "app.log"
    block = b"x" * (1 << 20)
    with open(path, "wb") as f:
        f.write(b"before\n")
        for _ in range(100):
            f.write(block)
        f.write(b"\nafter\n")
    del block
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    samples = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak, samples
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            samples += 1
            await asyncio.sleep(0)  # at every turn of the loop: between the reader's chunks

    sampler = asyncio.create_task(sample())
    p = Pipeline(logstreamer_config(tmp_path, logdir, 'file_match = "app.log"'))
    plugin, ctx = p.inputs[0]
    await p.start()
    await wait_for(lambda: len(out_messages()) == 2, "the lines around the big one")
    await wait_for(lambda: (journal_of(tmp_path, "logs") or None) is not None
                   and journal_of(tmp_path, "logs").seek == path.stat().st_size,
                   "the journal past the big line")
    done.set()
    await sampler
    await p.stop()
    # The over-long record was dropped (not truncated: keep_truncated is false) and the
    # stream went on.
    assert [m.payload for m in CollectOutput.instances["out"].messages] == ["before\n",
                                                                             "after\n"]
    assert plugin.counters["oversized"] == 1 and ctx.stats.dropped == 1
    assert samples > 10, samples  # RSS was sampled while the line was read
    growth = (peak - base) / (1 << 20)
    assert growth < 40, f"RSS grew by {growth:.1f} MiB reading a 100 MiB line"
    print(f"100 MiB line: RSS growth {growth:.1f} MiB")
