"""What the `hekapy replay` tests share: log lines of the demo generator (a traceback is
one event of several lines), archives written from them, how many messages the
OpenStack decoder makes of them, and the command run as a process."""

from __future__ import annotations

import asyncio
import gzip
import random
from pathlib import Path

from hekapy.collector.app.demo import generate
from tests.helpers.collectors import HEKAPY

DAY = 1_763_856_000.0  # 2025-11-23T00:00:00Z


def events(service: str, n: int, start: float, seed: int) -> list[list[str]]:
    """`n` log events of `service`, one per second from `start`."""
    rng = random.Random(seed)
    return [generate(service, rng, start + i) for i in range(n)]


def write_lines(path: Path, evs: list[list[str]], compress: bool = False) -> None:
    data = "".join(line + "\n" for ev in evs for line in ev).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)


def write_log(path: Path, service: str, n: int, start: float, seed: int,
              compress: bool = False) -> None:
    write_lines(path, events(service, n, start, seed), compress)


def expected_messages(evs: list[list[str]]) -> int:
    """How many messages the OpenStackLogDecoder makes of these lines (a traceback's
    lines merge into one message; lines before any oslo.log line are undecodable)."""
    from hekapy.collector.engine.message import Message
    from hekapy.collector.engine.plugin import DecodeError
    from hekapy.decoders.openstack_log import OpenStackLogDecoder
    from tests.helpers.plugins import make_plugin
    dec = make_plugin(OpenStackLogDecoder, tz="UTC")
    n = 0
    for ev in evs:
        for line in ev:
            try:
                r = dec.decode(Message(payload=line + "\n"))
            except DecodeError:
                continue
            n += 0 if r is None else 1 if isinstance(r, Message) else len(r)
    return n + len(dec.flush())


async def run_replay(conf: Path, *args: str, timeout: float = 300) -> tuple[int, str]:
    """`hekapy replay -c conf ARGS...` to its end: (exit code, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *HEKAPY, "replay", "-c", str(conf), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None  # communicate() waited for it
    # Whatever the exit code, no thread or process of replay died with a traceback
    # (a coordinator thread failing on a queue closed under it did, at the end).
    assert "Traceback (most recent call last)" not in err.decode(), err.decode()[-3000:]
    return proc.returncode, (out + err).decode()
