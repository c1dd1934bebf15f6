"""NullSplitter: every chunk an input reads is one record."""

from __future__ import annotations

from hekapy.collector.engine.plugin import register
from hekapy.collector.splitters.holding import HoldingSplitter


@register
class NullSplitter(HoldingSplitter):
    """Every chunk an input reads is one record (a datagram, an AMQP message body).

        [whole]
        type = "NullSplitter"
    """

    defaults = {"min_buffer_size": 65536}

    def split(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        return self._bounded([data])

    def _end_of_skipped(self, data: bytes) -> int:
        return 0
