"""Decoders, filters and encoders under `hekapy replay` get the pipeline's start and stop
calls, as in the daemon: a SandboxDecoder (in a worker), a SandboxFilter and a
SandboxEncoder (in the coordinator) with `preserve_data` restore their globals at start
and save them at stop, in the replay's own directory; `--resume` goes on from them and a
fresh replay starts from nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.replay import run_replay

pytestmark = pytest.mark.services

# Numbers the records it decodes (its count survives a stop and a start).
COUNTING_DECODER = """
count = 0
function process_message()
    count = count + 1
    write_message("Fields[count]", count)
    return 0
end
"""
# Numbers what it encodes, and writes the decoder's number beside.
NUMBERING_ENCODER = """
encoded = 0
function process_message()
    encoded = encoded + 1
    add_to_payload(string.format("%d %d\\n", encoded, read_message("Fields[count]")))
    inject_payload("txt", "line")
    return 0
end
"""
# Counts what it sees; says so when it stops.
SEEN_FILTER = """
seen = 0
function process_message()
    seen = seen + 1
    return 0
end
function timer_event(ns)
    inject_payload("txt", "seen", string.format("seen %d\\n", seen))
end
"""


def config(tmp: Path) -> str:
    return f"""
[hekad]
base_dir = "{tmp / 'state'}"
share_dir = "{tmp / 'share'}"
hostname = "ctl-1"
[counting]
type = "SandboxDecoder"
filename = "counting.lua"
preserve_data = true
[app_logstreamer]
type = "LogstreamerInput"
log_directory = "/var/log/app"
file_match = '(?P<Service>.+)\\.log\\.?(?P<Seq>\\d*)$'
differentiator = ["app_", "Service"]
priority = ["^Seq"]
decoder = "counting"
[numbering]
type = "SandboxEncoder"
filename = "numbering.lua"
preserve_data = true
[numbered]
type = "FileOutput"
message_matcher = "Logger == 'app_web'"
path = "{tmp / 'numbered.txt'}"
encoder = "numbering"
[seen]
type = "SandboxFilter"
filename = "seen.lua"
message_matcher = "Logger == 'app_web'"
timer_event_on_shutdown = true
preserve_data = true
[PayloadEncoder]
[seen_report]
type = "FileOutput"
message_matcher = "Logger == 'seen'"
path = "{tmp / 'seen.txt'}"
encoder = "PayloadEncoder"
"""


async def replay(conf: Path, *args: str) -> None:
    rc, out = await run_replay(conf, "--workers", "1", *args)
    assert rc == 0, out[-3000:]


async def test_preserve_data_under_replay(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "counting.lua").write_text(COUNTING_DECODER)
    (share / "numbering.lua").write_text(NUMBERING_ENCODER)
    (share / "seen.lua").write_text(SEEN_FILTER)
    conf = tmp_path / "replay.toml"
    conf.write_text(config(tmp_path))
    first, second = tmp_path / "first" / "app", tmp_path / "second" / "app"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    (first / "web.log.1").write_text("a\nb\nc\n")
    (second / "web.log").write_text("d\ne\n")

    await replay(conf, str(first))
    numbered = tmp_path / "numbered.txt"
    assert numbered.read_text().splitlines() == ["1 1", "2 2", "3 3"]
    assert (tmp_path / "seen.txt").read_text() == "seen 3\n"
    replay_dir = tmp_path / "state" / "replay"
    # Each in the replay's own directory, named as the daemon names its runners: the
    # decoder in its worker's, the filter and the encoder in the coordinator's.
    assert '_G["count"] = 3' in (replay_dir / "worker-1" / "sandbox_preservation" /
                                 "app_logstreamer-counting.data").read_text()
    saved = replay_dir / "sandbox_preservation"
    assert '_G["encoded"] = 3' in (saved / "numbered-numbering.data").read_text()
    assert '_G["seen"] = 3' in (saved / "seen.data").read_text()

    # --resume: every one of them goes on from its 3.
    await replay(conf, "--resume", str(second))
    assert numbered.read_text().splitlines()[3:] == ["4 4", "5 5"]
    assert (tmp_path / "seen.txt").read_text() == "seen 3\nseen 5\n"

    # A fresh replay forgets the earlier run's state, positions and preserved data.
    await replay(conf, str(second))
    assert numbered.read_text().splitlines()[5:] == ["1 1", "2 2"]
    assert (tmp_path / "seen.txt").read_text().splitlines()[-1] == "seen 2"
