"""`hekapy replay`'s progress display: on a terminal one line redrawn in place and
cleared before anything else prints (the configuration's LogOutput, log lines), never
left behind the summary; plain lines without control characters elsewhere."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from hekapy.collector.app.replay_progress import CLEAR_LINE, Progress, ProgressDisplay
from tests.helpers.collectors import HEKAPY
from tests.helpers.replay import DAY, write_log

PROGRESS = re.compile(r"hekapy replay: \d+/\d+ files, ")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def render(text: str) -> tuple[list[str], str]:
    """What a terminal shows of `text`: the finished lines, and the line the cursor is
    on. Handles what the display writes: CR, ESC[K (clear to the end of the line)."""
    lines: list[str] = []
    line: list[str] = []
    col = 0
    i = 0
    while i < len(text):
        c = text[i]
        if text.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = c
            else:
                line.append(c)
            col += 1
        i += 1
    return lines, "".join(line)


def test_the_line_is_redrawn_in_place_and_cleared_before_other_output():
    term = FakeTerminal()
    display = ProgressDisplay(Progress(files=3, lines=10), term)
    display.draw()
    assert term.getvalue() == CLEAR_LINE + "hekapy replay: 0/3 files, 10 lines, " \
        + term.getvalue().split("10 lines, ", 1)[1]
    display.progress.files_done = 1
    display.draw()
    display.print("a worker's log line")
    display.draw()
    display.stop()
    done, current = render(term.getvalue())
    assert done == ["a worker's log line"]
    assert current == ""  # stop() left no progress line behind


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    display = ProgressDisplay(Progress(files=2), out, tty=False)
    display.draw()
    display.draw()
    display.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(PROGRESS.match(ln) for ln in lines)
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def counter_config(tmp_path: Path) -> str:
    """Logs into a file, and the quickstart's CounterFilter printing through LogOutput
    on stdout (it ticks on message time under replay: one line per 5 s of logs)."""
    return f"""
[hekad]
base_dir = "{tmp_path / 'state'}"
hostname = "ctl-1"
[oslo_decoder]
type = "OpenStackLogDecoder"
tz = "UTC"
[nova_logstreamer]
type = "LogstreamerInput"
log_directory = "/var/log/nova"
file_match = '(?P<Service>.+)\\.log\\.?(?P<Seq>\\d*)$'
differentiator = ["nova", "_", "Service"]
priority = ["^Seq"]
decoder = "oslo_decoder"
[decoded_logs]
type = "FileOutput"
message_matcher = "Type == 'log'"
path = "{tmp_path / 'out.json'}"
encoder = "JsonEncoder"
[JsonEncoder]
[PayloadEncoder]
[counter]
type = "CounterFilter"
message_matcher = "Type == 'log'"
ticker_interval = 5
[summary]
type = "LogOutput"
message_matcher = "Type == 'heka.counter-output'"
encoder = "PayloadEncoder"
"""


def run_in_terminal(args: list[str], timeout: float = 180) -> tuple[int, str]:
    """`args` with stdout and stderr on one pseudo-terminal, as an operator runs it."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError("replay did not finish: " + b"".join(chunks).decode()[-2000:])
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed, all is read
                break
            if not data:
                break
            chunks.append(data)
        return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.services
def test_on_a_terminal_nothing_interleaves_and_the_summary_comes_once(tmp_path):
    nova = tmp_path / "archive" / "nova"
    for i in range(3):
        write_log(nova / f"nova-api.log.{i + 1}", "nova-api", 3000, DAY + 3000 * (2 - i), i)
    conf = tmp_path / "replay.toml"
    conf.write_text(counter_config(tmp_path))
    rc, shown = run_in_terminal([*HEKAPY, "replay", "-c", str(conf), "--workers", "2",
                                 str(tmp_path / "archive")])
    assert rc == 0, shown[-3000:]
    # No thread of the coordinator died at the end (one did on a queue closed under it,
    # and its traceback, written a character at a time, cut into the counter's lines).
    assert "Traceback" not in shown and "Exception in thread" not in shown, shown[-3000:]
    # The progress line was drawn in place (so this run did test what it claims) ...
    assert re.search(re.escape(CLEAR_LINE) + PROGRESS.pattern, shown)
    lines, current = render(shown.replace("\r\n", "\n"))
    # ... but never stayed: the counter's lines are whole, each on its own line.
    assert not [ln for ln in lines if PROGRESS.search(ln)], lines
    got = [ln for ln in lines if "Got " in ln]
    assert len(got) >= 1000 and all(re.fullmatch(r"Got \d+ messages\. [\d.]+ msg/sec", ln)
                                    for ln in got), got[:5]
    summary = [ln for ln in lines if ln.startswith("hekapy replay: done in ")]
    assert len(summary) == 1
    assert lines.index(summary[0]) > lines.index(got[-1])
    assert current == ""  # no stale progress line after the summary
