"""Driving a filter by hand: its process() and timer_event() with a context that
records what it injects, and the messages the log-derived metric filters read."""

from __future__ import annotations

from hekapy.collector.engine.message import DOUBLE, INTEGER, STRING, Field, Message


class RecordingFilterContext:
    """Enough of a FilterContext for process() and timer_event(): `injected` holds what
    the filter injected, in order."""

    def __init__(self, hostname: str = "node-1") -> None:
        self.hostname = hostname
        self.injected: list[Message] = []

    def inject(self, msg: Message) -> bool:
        self.injected.append(msg)
        return True


def first_values(msg: Message) -> dict:
    """{field name: its first value}."""
    return {f.name: f.values[0] for f in msg.fields}


def api_log(logger: str, method: str, status: int, seconds: float,
                     ts: int) -> Message:
    """A decoded API access log line (method, status, response time) as
    HttpMetricsFilter reads it."""
    return Message(type="log", logger=logger, timestamp=ts, fields=[
        Field("http_method", [method], STRING), Field("http_status", [status], INTEGER),
        Field("http_response_time", [seconds], DOUBLE)])
