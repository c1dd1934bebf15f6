"""InfluxdbOutput throughput into a real InfluxDB 1.x (Debian's influxd, started here),
next to a bare aiohttp replay of the same pre-encoded bodies measured in the same run.

    .venv/bin/python -m hekapy.benchmarks.influxdb_throughput --points 200000

(from the repository root: it starts influxd with the tests' own helper, tests/services.py)

Points look like LMA's HAProxy and HTTP metrics (a few tags, one or six values).
Reported: points/s for the replay (InfluxDB's own limit here) and for hekapy (encode
+ write, several requests in flight), and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from hekapy.collector.engine.config import load_config
from hekapy.collector.engine.contexts import InputContext
from hekapy.collector.engine.message import DOUBLE, STRING, Field, Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import Input, register
from hekapy.outputs.influxdb.line_protocol import message_points


def points(n: int, seed: int = 5, start_ns: int | None = None) -> list[Message]:
    """`n` metric messages, one point each, 1 ms apart from `start_ns` (an hour ago)."""
    rng = random.Random(seed)
    base = time.time_ns() - 3600 * 10**9 if start_ns is None else start_ns
    out = []
    for i in range(n):
        fields = [Field("hostname", [f"node-{i % 3}"], STRING)]
        if i % 4:
            fields += [Field("name", ["haproxy_backend_bytes_in"], STRING),
                       Field("value", [float(rng.randrange(10**9))], DOUBLE),
                       Field("backend", [f"be-{i % 20}"], STRING),
                       Field("tag_fields", ["hostname", "backend"], STRING)]
        else:
            values = {"min": 0.01, "max": rng.random() * 3, "sum": 10.0, "count": 30.0,
                      "upper_90": 1.2, "rate": 3.0}
            fields += [Field("name", ["openstack_nova_http_response_times"], STRING),
                       Field("value_fields", list(values), STRING),
                       *[Field(k, [v], DOUBLE) for k, v in values.items()],
                       Field("http_method", ["GET"], STRING),
                       Field("http_status", ["2xx"], STRING),
                       Field("tag_fields", ["hostname", "http_method", "http_status"],
                             STRING)]
        out.append(Message(type="metric", timestamp=base + i * 10**6, fields=fields))
    return out


@register
class BenchMetricInput(Input):
    messages: list[Message] = []
    done: asyncio.Event | None = None

    async def run(self, ctx: InputContext) -> None:
        msgs = BenchMetricInput.messages
        for i in range(0, len(msgs), 1000):
            await ctx.deliver(msgs[i:i + 1000], i + 1000, 100_000)
        assert BenchMetricInput.done is not None
        BenchMetricInput.done.set()  # all routed: through_output's stop drains the rest
        await ctx.stopping.wait()


async def replay(url: str, bodies: list[bytes], in_flight: int, database: str = "bench"
                 ) -> float:
    sem = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession() as s:
        async def send(body: bytes) -> None:
            async with sem, s.post(f"{url}/write?db={database}&precision=ms",
                                   data=body) as r:
                assert r.status == 204, await r.text()
        t0 = time.perf_counter()
        await asyncio.gather(*(send(b) for b in bodies))
        return time.perf_counter() - t0


async def through_output(url: str, msgs: list[Message], tmp: Path, batch: int,
                         in_flight: int, database: str = "bench") -> float:
    BenchMetricInput.messages = msgs
    BenchMetricInput.done = asyncio.Event()
    conf = tmp / "bench.toml"
    conf.write_text(f"""
[hekad]
base_dir = "{tmp / 'state'}"
[src]
type = "BenchMetricInput"
[influxdb]
type = "InfluxdbOutput"
message_matcher = "Type == 'metric'"
url = "{url}"
database = "{database}"
flush_count = {batch}
flush_interval = 100
max_in_flight = {in_flight}
use_buffering = false
""")
    p = Pipeline(load_config(conf, strict=True))
    t0 = time.perf_counter()
    await p.start()
    await BenchMetricInput.done.wait()
    # Every point is routed: stop as a backfill ends, draining. The output flushes its
    # last, partial flush at once and returns when InfluxDB has stored it; waiting for
    # the acknowledgements instead would time flush_interval too (the last flush waits
    # it out for points that never come), 100 ms of idle in a run of a few hundred.
    await p.stop()
    return time.perf_counter() - t0


async def count_points(db: Any, database: str) -> int:
    """Points stored in `database` (each measurement's largest field count, summed)."""
    rows = await db.query("SELECT count(*) FROM /.*/", database)
    return int(sum(max((v for k, v in r.items() if k.startswith("count_") and v is not None),
                       default=0) for r in rows))


async def measure(db: Any, n_points: int, tmp: Path, batch: int, in_flight: int,
                  run: int = 0) -> tuple[float, float]:
    """One replay of the pre-encoded bodies and one InfluxdbOutput run, each into a
    database of its own, each checked to hold every point: (replay s, output s). Used
    by this script's `main` and the harness's `influxdb` scenario."""
    msgs = points(n_points)
    lines = [ln for m in msgs for ln in message_points(m)]
    if len(lines) != n_points:
        raise AssertionError(f"{len(lines)} points from {n_points} messages")
    bodies = ["\n".join(lines[i:i + batch]).encode() + b"\n"
              for i in range(0, len(lines), batch)]
    replay_db, output_db = f"replay{run}", f"output{run}"
    for name in (replay_db, output_db):
        await db.query(f"DROP DATABASE {name}")
        await db.query(f"CREATE DATABASE {name}")
    replay_s = await replay(db.url, bodies, in_flight, replay_db)
    output_s = await through_output(db.url, points(n_points), tmp, batch, in_flight,
                                    output_db)
    for name in (replay_db, output_db):
        stored = await count_points(db, name)
        if stored != n_points:
            raise AssertionError(f"InfluxDB database {name} holds {stored} points, "
                                 f"{n_points} written")
    return replay_s, output_s


async def main_async(args: argparse.Namespace) -> None:
    from tests.services import influxdb  # the same start-up the tests use
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with influxdb(tmp / "influx") as db:
            best_replay = best_output = 1e9
            for run in range(args.repeat):
                r, o = await measure(db, args.points, tmp, args.batch, args.in_flight, run)
                best_replay, best_output = min(best_replay, r), min(best_output, o)
    n = args.points
    print(f"{n} points, {args.batch} per request, {args.in_flight} in flight, best of "
          f"{args.repeat}")
    print(f"replay of pre-encoded bodies: {n / best_replay:>9,.0f} points/s")
    print(f"InfluxdbOutput (encode+write): {n / best_output:>9,.0f} points/s "
          f"({best_replay / best_output:.0%} of the replay)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--in-flight", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
