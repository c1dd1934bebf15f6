"""`hekapy run` with a LogstreamerInput, killed with SIGKILL mid-stream and restarted
several times while a writer rotates its log: every line is delivered at least once, and
a line delivered twice carries the same Uuid both times."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.collectors import HEKAPY
from tests.helpers.plugins import write_config
from tests.helpers.wait import wait_for_sync

pytestmark = pytest.mark.services

# Writes `total` lines in bursts, renaming app.log to app.log.1 (older ones shifted, all
# kept) every `every` lines, like logrotate's `create`.
WRITER = r"""
import os, sys, time
logdir, total, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
path = os.path.join(logdir, "app.log")
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
rotations = 0
for i in range(total):
    os.write(fd, b"crash line %d\n" % i)
    if i % 2000 == 1999:
        time.sleep(0.04)  # bursts (~50k lines/s), so there is a stream to kill hekapy in
    if i % every == every - 1:
        rotations += 1
        for k in range(rotations, 0, -1):
            if os.path.exists(f"{path}.{k}"):
                os.rename(f"{path}.{k}", f"{path}.{k + 1}")
        os.rename(path, f"{path}.1")
        os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.close(fd)
"""

CONFIG = """
[hekad]
base_dir = "{state}"
hostname = "node-7"

[app]
type = "LogstreamerInput"
log_directory = "{logdir}"
file_match = 'app\\.log\\.?(?P<Seq>\\d*)$'
priority = ["^Seq"]
differentiator = ["app"]

[out]
type = "FileOutput"
message_matcher = "Type == 'logfile'"
path = "{out}"
encoder = "JsonEncoder"
flush_interval = 50
flush_count = 2000
flush_operator = "OR"
# Given explicitly: FileOutput's defaults are not converted to integers (reported).
perm = "644"
folder_perm = "700"

[JsonEncoder]
"""


def read_docs(path: Path) -> list[dict]:
    """The JSON documents written so far. A kill can leave half a line, which the next
    run's first document is appended to: parse from the last document start."""
    if not path.exists():
        return []
    docs = []
    for line in path.read_bytes().split(b"\n"):
        i = line.rfind(b'{"Uuid"')
        if i < 0:
            continue
        try:
            docs.append(json.loads(line[i:]))
        except ValueError:
            continue  # the torn tail of a killed run
    return docs


def stderr_if_exited(proc: subprocess.Popen | None) -> str:
    """What hekapy said before it exited (for a failure), nothing while it runs."""
    if proc is None or proc.poll() is None:
        return ""
    return str(proc.communicate()[1])


def test_kill_9_and_restart_loses_nothing(tmp_path):
    logdir, out = tmp_path / "logs", tmp_path / "out" / "docs.json"
    logdir.mkdir()
    (logdir / "app.log").touch()
    conf = write_config(tmp_path, CONFIG.format(state=tmp_path / "state", logdir=logdir,
                                                out=out))
    total, every = 300_000, 40_000
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(logdir), str(total),
                               str(every)])
    kills = 0
    proc: subprocess.Popen | None = None
    try:
        def size() -> int:
            return out.stat().st_size if out.exists() else 0

        for _ in range(4):
            if writer.poll() is not None:
                break  # kill only while the writer still writes (and rotates)
            before = size()
            proc = subprocess.Popen([*HEKAPY, "run", "-c", str(conf)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # Mid-stream: once this run has delivered something new, kill it. (File size,
            # not parsed documents: a cheap poll kills it soon after.)
            wait_for_sync(lambda b=before: size() >= b + 500_000 or writer.poll() is not None,
                          "progress", timeout=180, process=proc,
                          details=lambda p=proc: stderr_if_exited(p))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        wait_for_sync(lambda: writer.poll() is not None, "the writer", timeout=180)
        assert writer.returncode == 0
        proc = subprocess.Popen([*HEKAPY, "run", "-c", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        expected = {f"crash line {i}\n" for i in range(total)}

        def complete() -> bool:
            return expected <= {d["Payload"] for d in read_docs(out)}

        wait_for_sync(complete, "every line", timeout=120, process=proc,
                      details=lambda: stderr_if_exited(proc))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        if writer.poll() is None:
            writer.kill()
        if proc is not None and proc.poll() is None:  # a failed wait: never leak it
            proc.kill()
            proc.wait()
    assert kills >= 2
    docs = read_docs(out)
    uuids: dict[str, set[str]] = {}
    for d in docs:
        assert (d["Type"], d["Logger"], d["Hostname"]) == ("logfile", "app", "node-7")
        uuids.setdefault(d["Payload"], set()).add(d["Uuid"])
    assert set(uuids) == expected
    # Resent lines are the same documents: one Uuid per line, all distinct.
    assert all(len(v) == 1 for v in uuids.values())
    assert len({next(iter(v)) for v in uuids.values()}) == total
    # At-least-once costs at most what was in flight at each kill.
    assert len(docs) - total < 4 * 200_000
