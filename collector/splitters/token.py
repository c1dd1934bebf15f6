"""TokenSplitter: records end after `count` one-byte delimiters."""

from __future__ import annotations

from types import SimpleNamespace

from hekapy.collector.engine.plugin import Option, OptionError, register
from hekapy.collector.splitters.holding import HoldingSplitter


@register
class TokenSplitter(HoldingSplitter):
    """A record ends after `count` occurrences of the one-byte `delimiter`, which stays
    at the end of the record (so a log line's Payload ends in "\\n", as in Heka).

    Keys: delimiter ("\\n"), count (1), keep_truncated, deliver_incomplete_final.

        [split_on_newline]
        type = "TokenSplitter"
        delimiter = "\\n"
    """

    options = {
        "delimiter": Option("str", "\n"),
        "count": Option("int", 1),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        delim = cfg.delimiter.encode("utf-8")
        if len(delim) != 1:
            raise OptionError(f"must be a single byte, got {cfg.delimiter!r}",
                              key="delimiter")
        if cfg.count < 1:
            raise OptionError("must be at least 1", key="count")
        self._delim = delim

    def _end_of_skipped(self, data: bytes) -> int:
        i = data.find(self._delim)
        return -1 if i < 0 else i + 1

    def _records(self, buf: bytes) -> tuple[list[bytes], int]:
        d = self._delim
        last = buf.rfind(d)
        if last < 0:
            return [], 0
        count = self.cfg.count
        if count == 1 and d == b"\n" and b"\r" not in buf:
            # Lines in one C call, newlines kept (split() and putting each newline back
            # cost twice as much); bytes.splitlines also breaks at "\r", hence the check.
            records = buf.splitlines(keepends=True)
            if records[-1][-1:] != d:
                records.pop()  # the incomplete last line
            return records, last + 1
        parts = buf[:last + 1].split(d)
        parts.pop()  # the empty string after the final delimiter
        if count == 1:
            return [p + d for p in parts], last + 1
        groups = len(parts) // count
        if not groups:
            return [], 0
        records = [d.join(parts[i * count:(i + 1) * count]) + d for i in range(groups)]
        return records, sum(map(len, records))
