"""Per-plugin counters, read by `hekapy check`'s summary, logs and the status server
(collector/app/status/: /metrics, /health, /heka.all-report, `hekapy top`).

Counters are plain attributes, bumped with `+=` on the hot path. Two of them are
properties that also remember *when* they moved, which /health needs and a counter
alone cannot tell: `retried` (an output is retrying since...) and `restarts` (a plugin
restarted ... seconds ago). Both move only on failures, never per message.

Timings for Heka's report (collector/engine/heka_report.py): `process_ns` over
`process_samples` messages is the time a filter's `process`, or an input's decoder,
took per message, measured per batch (two clock reads per batch, not per message);
`timer_ns` over `timer_samples` the time of a filter's timer events.
"""

from __future__ import annotations

import logging
import time

# The counters every plugin has, in the order the status server lists them.
COUNTERS = ("messages_in", "messages_out", "bytes_in", "bytes_out", "decode_failures",
            "dropped", "retried", "dead_lettered", "errors", "restarts", "injected")


class PluginStats:
    __slots__ = ("_restarts", "_retried", "bytes_in", "bytes_out", "dead_lettered",
                 "decode_failures", "dropped", "errors", "gave_up", "injected",
                 "last_restart", "last_retry", "matcher_seconds", "messages_in",
                 "messages_out", "process_ns", "process_samples", "retry_mark",
                 "retrying_since", "timer_ns", "timer_samples")

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0  # filters/outputs: bytes the router handed them
        self.bytes_out = 0  # inputs: bytes of the records they delivered
        self.decode_failures = 0
        self.injected = 0
        self.dropped = 0
        self.errors = 0
        self._restarts = 0
        self._retried = 0  # messages an output sent again after a failure
        self.dead_lettered = 0  # messages a server rejected for good, kept in a file
        self.matcher_seconds = 0.0  # time the router spent evaluating this matcher
        self.gave_up = False  # the plugin failed for good and is not restarted
        self.process_ns = 0  # filters: process(); inputs: their decoder's decode()
        self.process_samples = 0  # messages those calls were timed over
        self.timer_ns = 0  # filters: timer_event()
        self.timer_samples = 0
        # monotonic times: first retry with no progress since (None: not retrying),
        # the latest retry, the latest restart (0.0: never).
        self.retrying_since: float | None = None
        self.retry_mark = 0  # messages_out + dead_lettered when retrying_since was set
        self.last_retry = 0.0
        self.last_restart = 0.0

    @property
    def retried(self) -> int:
        return self._retried

    @retried.setter
    def retried(self, value: int) -> None:
        if value > self._retried:
            now = time.monotonic()
            progress = self.messages_out + self.dead_lettered
            if self.retrying_since is None or progress > self.retry_mark:
                self.retrying_since = now  # a new retry episode
                self.retry_mark = progress
            self.last_retry = now
        self._retried = value

    @property
    def restarts(self) -> int:
        return self._restarts

    @restarts.setter
    def restarts(self, value: int) -> None:
        if value > self._restarts:
            self.last_restart = time.monotonic()
        self._restarts = value

    def retrying_for(self, now: float, stale_after: float) -> float | None:
        """Seconds this output has been retrying without storing or dead-lettering a
        single message; None when it is not (progress since, or no retry for
        `stale_after` seconds)."""
        since = self.retrying_since
        if since is None:
            return None
        if (self.messages_out + self.dead_lettered > self.retry_mark
                or now - self.last_retry > stale_after):
            self.retrying_since = None
            return None
        return now - since

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in COUNTERS}


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
