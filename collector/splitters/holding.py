"""What the record splitters share: the held tail, the size bound, flush and reset.

One instance serves one stream. `split(chunk)` returns the records the chunk completes
and holds back the incomplete tail; `remainder` is the number of bytes held, so an input
checkpoints at `end of chunk - remainder`.

Over-long records: a record longer than `max_record_size` (the runtime sets it from
`[hekad] max_message_size`, Heka's MAX_RECORD_SIZE) is dropped, or delivered truncated
with `keep_truncated = true`, and counted in `dropped` / `truncated`. When the held tail
alone grows past the limit, it is cut at once and the rest of that record, up to its
delimiter, is skipped: skipped bytes count as consumed (they are not in `remainder`), so
a 100 MiB line never costs 100 MiB of memory and never stalls the stream.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hekapy.collector.engine.plugin import OptionError, Splitter
from hekapy.collector.engine.regex import compile_regex

MAX_RECORD_SIZE = 65536 + 3 + 255


class HoldingSplitter(Splitter):
    """Shared tail handling: the held buffer, the size bound, flush and reset."""

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self.max_record_size = MAX_RECORD_SIZE
        self.truncated = 0
        self.dropped = 0
        self._buf = b""
        self._skipping = False  # inside an over-long record, discarding to its end

    @property
    def remainder(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        self._buf = b""
        self._skipping = False

    def flush(self) -> list[bytes]:
        held, self._buf = self._buf, b""
        self._skipping = False
        if held and self.cfg.deliver_incomplete_final:
            return self._bounded([held])
        return []

    def _bounded(self, records: list[bytes]) -> list[bytes]:
        """Apply the size bound to complete records (rarely needed: checked in bulk)."""
        limit = self.max_record_size
        out = []
        for r in records:
            if len(r) <= limit:
                out.append(r)
            elif self.cfg.keep_truncated:
                self.truncated += 1
                out.append(r[:limit])
            else:
                self.dropped += 1
        return out

    def _cut_oversized_tail(self, out: list[bytes]) -> None:
        """The held tail is already longer than any record may be: give it up now."""
        if len(self._buf) > self.max_record_size:
            if self.cfg.keep_truncated:
                self.truncated += 1
                out.append(self._buf[:self.max_record_size])
            else:
                self.dropped += 1
            self._buf = b""
            self._skipping = True

    def split(self, data: bytes) -> list[bytes]:
        if self._skipping:
            end = self._end_of_skipped(data)
            if end < 0:
                return []
            data = data[end:]
            self._skipping = False
        buf = self._buf + data if self._buf else data
        records, consumed = self._records(buf)
        self._buf = buf[consumed:]
        if records and max(map(len, records)) > self.max_record_size:
            records = self._bounded(records)
        self._cut_oversized_tail(records)
        return records

    def _end_of_skipped(self, data: bytes) -> int:
        """Where the skipped over-long record ends in `data` (-1: not in this chunk)."""
        raise NotImplementedError

    def _records(self, buf: bytes) -> tuple[list[bytes], int]:
        """Complete records in `buf` and how many bytes they consumed."""
        raise NotImplementedError


def compile_delimiter(pattern: str, key: str = "delimiter") -> Any:
    try:
        return compile_regex(pattern.encode("utf-8"))
    except ValueError as e:
        raise OptionError(f"regex {pattern!r} does not compile: {e}", key=key) from None
