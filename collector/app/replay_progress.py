"""`hekapy replay`'s progress: the counters, and their display on stderr.

On a terminal the display is one line, redrawn in place four times a second. Anything
else printed meanwhile (a LogOutput's or CounterFilter's lines on stdout, a log line,
a worker's report) first clears that line: `ProgressDisplay.start` puts a stand-in in
front of sys.stdout, sys.stderr and the logging handlers that does so, and the next
redraw flushes stdout before drawing, so the line never lands in the middle of someone
else's. When stderr is not a terminal (a file, a pipe, the journal), a plain line is
printed every `plain_interval` seconds instead. `stop` clears the line for good, before
the summary is printed once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

CLEAR_LINE = "\r\x1b[K"


@dataclass
class Progress:
    files: int = 0
    files_done: int = 0
    lines: int = 0
    bytes: int = 0  # uncompressed
    raw_bytes: int = 0  # on disk
    raw_total: int = 0
    acknowledged: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.bytes / elapsed / 2**20
        eta = ""
        if self.raw_bytes and self.raw_total > self.raw_bytes:
            eta = f", ETA {duration(elapsed * (self.raw_total - self.raw_bytes) / self.raw_bytes)}"
        return (f"{self.files_done}/{self.files} files, {self.lines:,} lines, "
                f"{rate:,.1f} MiB/s, {self.acknowledged:,} acknowledged{eta}")


def duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class ProgressDisplay:
    """The progress line on `stream` (stderr), kept clear of everything else printed."""

    def __init__(self, progress: Progress, stream: TextIO | None = None,
                 tty: bool | None = None, interval: float = 0.25,
                 plain_interval: float = 5.0, prefix: str = "hekapy replay: ") -> None:
        self.progress = progress
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if self.tty else plain_interval
        self.prefix = prefix
        self.drawn = False
        self._task: asyncio.Task | None = None
        self._saved: list[tuple[Any, str, Any]] = []

    # --- other output ------------------------------------------------------------------
    def clear(self) -> None:
        """Remove the progress line (before something else is printed)."""
        if self.drawn:
            self.drawn = False
            self.stream.write(CLEAR_LINE)
            self.stream.flush()

    def print(self, text: str) -> None:
        """A line of our own (a worker's log line, an error), above the progress."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def draw(self) -> None:
        text = self.prefix + self.progress.line()
        if self.tty:
            width = shutil.get_terminal_size((100, 24)).columns
            # stdout first: what was written there since the line was cleared lands
            # before the line, never after it.
            with contextlib.suppress(Exception):
                sys.__stdout__.flush()  # type: ignore[union-attr]
            self.stream.write(CLEAR_LINE + text[: max(1, width - 1)])
            self.stream.flush()
            self.drawn = True
        else:
            self.print(text)

    # --- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        if self.tty:
            self._guard_streams()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.draw()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.clear()
        for owner, attr, value in reversed(self._saved):
            if attr == "stream":
                owner.setStream(value)
            else:
                setattr(owner, attr, value)
        self._saved = []

    def _guard_streams(self) -> None:
        """sys.stdout, sys.stderr and the logging handlers writing to them clear the
        line before they write."""
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            self._saved.append((sys, name, current))
            setattr(sys, name, _Cleared(current, self))
        loggers = [logging.getLogger(), *[logging.getLogger(n) for n in
                                          logging.root.manager.loggerDict]]
        for lg in loggers:
            for h in getattr(lg, "handlers", ()):
                if isinstance(h, logging.StreamHandler) and not isinstance(
                        h.stream, _Cleared) and h.stream in (
                        sys.__stderr__, sys.__stdout__, self.stream):
                    self._saved.append((h, "stream", h.stream))
                    h.setStream(_Cleared(h.stream, self))


class _Cleared:
    """A text stream that clears the progress line before each write."""

    def __init__(self, stream: Any, display: ProgressDisplay) -> None:
        self._stream = stream
        self._display = display

    def write(self, text: str) -> int:
        if text:
            self._display.clear()
        return self._stream.write(text)

    @property
    def buffer(self) -> Any:
        return _ClearedBytes(self._stream.buffer, self._display)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ClearedBytes:
    def __init__(self, stream: Any, display: ProgressDisplay) -> None:
        self._stream = stream
        self._display = display

    def write(self, data: bytes) -> int:
        if data:
            self._display.clear()
        return self._stream.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
