"""Raw tailing throughput of one LogstreamerInput stream into a null output, next to
`cat file > /dev/null` measured in the same run (the machines are shared and noisy, so
the ratio is the number to compare).

    .venv/bin/python -m hekapy.benchmarks.tail_throughput --mib 256

The file is generated once (realistic OpenStack-like lines, ~150 bytes), read once to
warm the page cache, then: `cat` (best of --repeat), then hekapy from a fresh journal
until every byte is acknowledged (best of --repeat). Reported: MiB/s, lines/s, ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hekapy.collector.inputs.logstreamer  # noqa: F401  (registers LogstreamerInput)
from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import Output, register


@register
class BenchNullOutput(Output):
    """Acknowledges every batch at once and keeps nothing."""

    async def run(self, ctx: OutputContext) -> None:
        while (batch := await ctx.next_batch()) is not None:
            ctx.stats.messages_out += len(batch)
            batch.done()


def make_corpus(path: Path, mib: int) -> int:
    """~`mib` MiB of oslo.log-shaped lines; returns the line count."""
    rnd = random.Random(42)
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARNING", "ERROR"]
    mods = ["nova.compute.manager", "nova.api.openstack.wsgi", "oslo_messaging._drivers"]
    n = 0
    target = mib << 20
    written = 0
    with open(path, "wb", buffering=1 << 20) as f:
        while written < target:
            chunk = []
            for _ in range(10000):
                line = (f"2016-02-{rnd.randint(1, 28):02d} 12:{rnd.randint(0, 59):02d}:"
                        f"{rnd.randint(0, 59):02d}.{rnd.randint(0, 999999):06d} "
                        f"{rnd.randint(1000, 9999)} {rnd.choice(levels)} {rnd.choice(mods)} "
                        f"[req-{rnd.getrandbits(64):016x} admin admin - - -] instance "
                        f"{rnd.getrandbits(32):08x} took {rnd.random():.3f} seconds\n")
                chunk.append(line)
            data = "".join(chunk).encode()
            f.write(data)
            written += len(data)
            n += len(chunk)
    return n


def time_cat(path: Path) -> float:
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["cat", str(path)], stdout=null, check=True)
    return time.perf_counter() - t0


CONFIG = """
[hekad]
base_dir = "{state}"
[bench]
type = "LogstreamerInput"
log_directory = "{logdir}"
file_match = 'bench\\.log'
[null]
type = "BenchNullOutput"
message_matcher = "TRUE"
"""


async def time_hekapy(logdir: Path, state: Path, size: int) -> tuple[float, int]:
    conf = state.parent / f"{state.name}.toml"
    conf.write_text(CONFIG.format(state=state, logdir=logdir))
    p = Pipeline(load_config(conf, strict=True))
    plugin, ctx = p.inputs[0]
    t0 = time.perf_counter()
    await p.start()
    while True:
        acked = plugin._acked.get("bench")
        if acked is not None and acked[2] >= size:
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    await p.stop()
    return elapsed, ctx.stats.messages_in


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256, help="size of the file (MiB)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs each")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = ap.parse_args(argv)
    try:
        import uvloop
        new_loop = uvloop.new_event_loop
        loop_name = "uvloop"
    except ImportError:
        new_loop = asyncio.new_event_loop
        loop_name = "asyncio"
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        logdir = base / "logs"
        logdir.mkdir()
        path = logdir / "bench.log"
        lines = make_corpus(path, args.mib)
        size = path.stat().st_size
        time_cat(path)  # warm the page cache
        cat = min(time_cat(path) for _ in range(args.repeat))
        runs = []
        for i in range(args.repeat):
            loop = new_loop()
            try:
                runs.append(loop.run_until_complete(time_hekapy(logdir, base / f"s{i}", size)))
            finally:
                loop.close()
        hk, msgs = min(runs)
    mib = size / (1 << 20)
    print(f"file: {mib:.0f} MiB, {lines} lines ({size / lines:.0f} B/line); loop: {loop_name}; "
          f"python {sys.version.split()[0]}")
    print(f"cat > /dev/null : {mib / cat:9.1f} MiB/s  ({cat:.3f} s)")
    print(f"hekapy tail     : {mib / hk:9.1f} MiB/s  ({hk:.3f} s, {msgs / hk / 1e6:.2f} M lines/s)")
    print(f"ratio hekapy/cat: {cat / hk:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
