"""A LogstreamerInput pipeline on a directory of the test's own files, into a
CollectOutput named "out", and what it delivered and journaled."""

from __future__ import annotations

from pathlib import Path

from hekapy.collector.engine.config import Config
from hekapy.collector.engine.message import Message
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.inputs.logstreamer.journal import Journal, Position
from tests.helpers.plugins import CollectOutput, config_from

# app.log, app.log.1, app.log.2 …: the live file first in the stream's order is last.
SEQ_MATCH = r"app\.log\.?(?P<Seq>\d*)$"


def logstreamer_config(tmp_path: Path, logdir: Path, body: str = "", mode: str = "ack",
                       hekad: str = "") -> Config:
    """[logs] reads `logdir` (`body` completes the section), [out] is a CollectOutput
    in `mode`; state under tmp_path/state."""
    return config_from(tmp_path, f"""
[hekad]
base_dir = "{tmp_path / 'state'}"
hostname = "node-1"
{hekad}

[logs]
type = "LogstreamerInput"
log_directory = "{logdir}"
{body}

[out]
type = "CollectOutput"
message_matcher = "TRUE"
mode = "{mode}"
""")


async def start_logstreamer(tmp_path: Path, logdir: Path, body: str = "", mode: str = "ack",
                            hekad: str = "") -> Pipeline:
    """The pipeline of `logstreamer_config`, started."""
    p = Pipeline(logstreamer_config(tmp_path, logdir, body, mode, hekad))
    await p.start()
    return p


def out_messages() -> list[Message]:
    return CollectOutput.instances["out"].messages


def payloads() -> list[str]:
    return [m.payload for m in out_messages()]


def journal_of(tmp_path: Path, stream: str) -> Position | None:
    """The position journaled for `stream` under tmp_path/state."""
    return Journal(str(tmp_path / "state" / "logstreamer")).load(stream)


def numbered_lines(prefix: str, a: int, b: int) -> bytes:
    """"prefix a\\n" … "prefix b-1\\n"."""
    return "".join(f"{prefix} {i}\n" for i in range(a, b)).encode()


def check_complete(expected: list[str]) -> None:
    """Every expected line arrived; duplicates only with the same Uuid."""
    by_payload: dict[str, set[bytes]] = {}
    for m in out_messages():
        by_payload.setdefault(m.payload, set()).add(m.uuid)
    missing = [x for x in expected if x not in by_payload]
    assert not missing, f"{len(missing)} lines missing, first {missing[:3]}"
    multi = {k: v for k, v in by_payload.items() if len(v) > 1}
    assert not multi, f"same line with different Uuids: {list(multi)[:3]}"
