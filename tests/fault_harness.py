"""What the fault-injection suite (tests/faults/test_faults.py) shares: a writer of numbered
oslo.log lines (with logrotate-style rotation), the real daemon as a subprocess that can
be killed and restarted, and the exact accounting every fault ends with:

    lines written = documents stored + dead-lettered + counted drops, no duplicates.

Each test adds a row to ROWS; tests/conftest.py prints the table at the end of the run
(the README's "Fault injection" table is a copy of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hekapy.benchmarks.es_double import EsDouble
from tests.helpers.collectors import HEKAPY
from tests.helpers.wait import wait_for as shared_wait_for

ROWS: list[dict[str, object]] = []
# Every daemon started, so that a failing test does not leave one running (conftest).
DAEMONS: list[Daemon] = []

# Numbered oslo.log lines, ten per second of message time from 2025-11-23T00:00:00Z,
# written 500 at a time (with `pause` seconds between); nova-api.log is renamed to
# nova-api.log.1 (older ones shifted, all kept) every `rotate_every` lines, like
# logrotate's `create`.
WRITER = r"""
import os, sys, time
logdir, total, rotate_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pause, first = float(sys.argv[4]), int(sys.argv[5])
path = os.path.join(logdir, "nova-api.log")
def line(i):
    s = i // 10
    return ("2025-11-23 %02d:%02d:%02d.%03d 4242 INFO nova.api.wsgi [-] fault seq=%d "
            "padding %s\n" % (s // 3600 % 24, s // 60 % 60, s % 60, i % 10 * 100, i,
                             "x" * (i % 97))).encode()
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
rotations = 0
for start in range(0, total, 500):
    os.write(fd, b"".join(line(first + i) for i in range(start, min(start + 500, total))))
    if pause:
        time.sleep(pause)  # a steady rate, so there is a stream to break into
    if rotate_every and (start + 500) % rotate_every == 0 and start + 500 < total:
        rotations += 1
        for k in range(rotations, 0, -1):
            if os.path.exists(f"{path}.{k}"):
                os.rename(f"{path}.{k}", f"{path}.{k + 1}")
        os.rename(path, f"{path}.1")
        os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.close(fd)
print("written", total, flush=True)
"""

SEQ_RE = re.compile(r"fault seq=(\d+) ")


def config(state: Path, logs: Path, es_url: str, *, buffering: bool = True,
           extra: str = "", output_keys: str = "") -> str:
    """The daemon under test: nova-api.log (rotated names too) → OpenStackLogDecoder →
    LMA's ESJsonEncoder → ElasticSearchOutput with a disk buffer and fast retries."""
    return f"""
[hekad]
base_dir = "{state}"
hostname = "fault-1"

[nova_logstreamer]
type = "LogstreamerInput"
log_directory = "{logs}"
file_match = '(?P<Service>nova-api)\\.log\\.?(?P<Seq>\\d*)$'
priority = ["^Seq"]
differentiator = ["nova_", "Service"]
decoder = "openstack_decoder"

[openstack_decoder]
type = "OpenStackLogDecoder"
tz = "UTC"
hold_timeout = "100ms"

[elasticsearch_encoder]
type = "ESJsonEncoder"
index = "%{{Type}}-%{{%Y.%m.%d}}"
es_index_from_timestamp = true
type_name = ""
id = "%{{UUID}}"

[elasticsearch_output]
type = "ElasticSearchOutput"
message_matcher = "Type == 'log'"
encoder = "elasticsearch_encoder"
server = "{es_url}"
flush_count = 1000
flush_interval = 50
retry_delay = "20ms"
retry_max_delay = "500ms"
use_buffering = {"true" if buffering else "false"}
{output_keys}
{extra}
"""


@dataclass
class Daemon:
    """`hekapy run -c conf` as a subprocess; its stderr goes to `log` (appended)."""

    conf: Path
    log: Path
    proc: asyncio.subprocess.Process | None = None
    kills: int = 0
    env: dict[str, str] | None = None  # added to the environment (LD_PRELOAD, ...)

    async def start(self) -> None:
        out = open(self.log, "ab")  # the child keeps its own descriptor
        env = {**os.environ, **self.env} if self.env else None
        DAEMONS.append(self)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *HEKAPY, "run", "-c", str(self.conf), stdout=out, stderr=out, env=env)
        finally:
            out.close()

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1

    async def stop(self) -> int:
        """SIGTERM (drain, checkpoint) and the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 60)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


async def write_lines(logs: Path, total: int, rotate_every: int = 0,
                      pause: float = 0.0, first: int = 0) -> asyncio.subprocess.Process:
    """Start the writer (a process of its own, so it writes at full speed): lines
    numbered first, first + 1, ... (appended to what is there)."""
    logs.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(logs), str(total), str(rotate_every), str(pause),
        str(first), stdout=asyncio.subprocess.PIPE)


async def stream_lines(logs: Path, first: int, stop: asyncio.Event, chunk: int = 500,
                       pause: float = 0.05) -> int:
    """Numbered lines from `first` on, `chunk` at a time every `pause` s (a steady
    stream), until `stop` is set; returns the next number (the lines written)."""
    n = first
    while not stop.is_set():
        await finish_writer(await write_lines(logs, chunk, first=n))
        n += chunk
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
    return n


async def finish_writer(writer: asyncio.subprocess.Process) -> None:
    out, _ = await asyncio.wait_for(writer.communicate(), 120)
    assert writer.returncode == 0 and out.startswith(b"written"), out


def dead_lettered_seqs(state: Path) -> list[int]:
    path = state / "dead_letter" / "elasticsearch_output.ndjson"
    if not path.exists():
        return []
    seqs = []
    for line in path.read_bytes().splitlines():
        m = SEQ_RE.search(json.dumps(json.loads(line)))
        assert m, line[:300]
        seqs.append(int(m.group(1)))
    return seqs


def stored_seqs(es: EsDouble) -> list[int]:
    out = []
    for d in es.docs():
        m = SEQ_RE.search(d["_source"].get("Payload", ""))
        assert m, d
        out.append(int(m.group(1)))
    return out


async def settle_to(es: EsDouble, expected_stored: int, daemon: Daemon,
                    timeout: float = 90.0) -> None:
    """Until the double holds `expected_stored` documents (woken by its bulk requests);
    the daemon dying first is a failure with its log."""
    try:
        await es.wait_count(expected_stored, timeout=timeout, proc=_Popenish(daemon))
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- hekapy log ---\n{daemon.output()[-4000:]}") from None


class _Popenish:
    """EsDouble.wait_count's `proc` protocol (poll/returncode) for an asyncio process."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def poll(self) -> int | None:
        p = self.daemon.proc
        return None if p is None else p.returncode

    @property
    def returncode(self) -> int | None:
        return self.poll()


def account(fault: str, written: int, es: EsDouble, state: Path, dropped: int = 0,
            note: str = "") -> dict[str, object]:
    """The exact accounting of the Elasticsearch path (documents in the double, the
    output's dead-letter file)."""
    return account_seqs(fault, written, stored_seqs(es), dead_lettered_seqs(state),
                        dropped, note)


def account_seqs(fault: str, written: int, stored: list[int], dead: list[int],
                 dropped: int = 0, note: str = "") -> dict[str, object]:
    """Every line written is stored once, dead-lettered, or a counted drop; nothing
    twice. Adds the row to ROWS and returns it."""
    duplicates = len(stored) - len(set(stored))
    row = {"fault": fault, "written": written, "stored": len(set(stored)),
           "dead-lettered": len(dead), "dropped": dropped, "duplicates": duplicates,
           "note": note}
    ROWS.append(row)
    assert duplicates == 0, row
    assert not set(stored) & set(dead), row
    missing = set(range(written)) - set(stored) - set(dead)
    assert len(missing) == dropped, (row, sorted(missing)[:20])
    assert len(set(stored)) + len(dead) + dropped == written, row
    return row


def summary_table(rows: list[dict[str, object]]) -> str:
    head = ["fault", "written", "stored", "dead-lettered", "dropped", "duplicates", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(
            f"{r[h]:,}" if isinstance(r[h], int) else str(r[h]) for h in head) + " |")
    return "\n".join(lines)


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True, capture_output=True)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True,
                   capture_output=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


# How often wait_for looks again: for what only a file, a log or a server's answer
# shows, with no event to await.
POLL_INTERVAL = 0.05


async def wait_for(condition: Any, daemon: Daemon, what: str, timeout: float = 60.0,
                   required: bool = True) -> None:
    """Until `condition()` (a function, or a coroutine function) holds. The daemon dying
    first is a failure with its log; so is the timeout, unless not `required` (then the
    caller goes on with what it has)."""
    if daemon.proc is None:
        raise AssertionError(f"waiting for {what}: the daemon was never started")
    await shared_wait_for(condition, what, timeout=timeout, interval=POLL_INTERVAL,
                          process=daemon.proc, required=required,
                          details=lambda: f"--- hekapy log ---\n{daemon.output()[-3000:]}")


def on_disk_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) \
        if path.exists() else 0
