"""Per-plugin counters, read by `hekapy check`'s summary, logs and the status server."""

from __future__ import annotations

import logging
import time


class PluginStats:
    __slots__ = ("dead_lettered", "decode_failures", "dropped", "errors", "injected",
                 "messages_in", "messages_out", "restarts", "retried")

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.decode_failures = 0
        self.injected = 0
        self.dropped = 0
        self.errors = 0
        self.restarts = 0
        self.retried = 0  # messages an output sent again after a failure
        self.dead_lettered = 0  # messages a server rejected for good, kept in a file

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class RateLimitedLog:
    """Logs at most `burst` messages per `period` seconds, then one summary line, so a
    flood of bad lines cannot flood the collector's own log."""

    def __init__(self, log: logging.Logger, burst: int = 10, period: float = 60.0) -> None:
        self.log = log
        self.burst = burst
        self.period = period
        self._window_start = 0.0
        self._count = 0
        self._suppressed = 0

    def __call__(self, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.period:
            if self._suppressed:
                self.log.log(level, "%d similar messages suppressed in the last %.0f s",
                             self._suppressed, self.period)
            self._window_start = now
            self._count = 0
            self._suppressed = 0
        self._count += 1
        if self._count <= self.burst:
            self.log.log(level, msg, *args)
        else:
            self._suppressed += 1
