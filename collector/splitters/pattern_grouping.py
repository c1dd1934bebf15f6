"""PatternGroupingSplitter: lines that match a pattern kept together in one record."""

from __future__ import annotations

from types import SimpleNamespace

from hekapy.collector.engine.plugin import Option, OptionError, register
from hekapy.collector.splitters.holding import HoldingSplitter, compile_delimiter


@register
class PatternGroupingSplitter(HoldingSplitter):
    """Lines (ended by `delimiter`) that match `grouping` are kept together in one
    record, up to `max_lines`; a line that does not match `grouping` is a record of its
    own. Heka's splitter for multi-line entries whose lines share a pattern.

    Unlike Heka, a group is not cut where a read happens to end: it is held until a
    line outside the group arrives (or the input flushes it, e.g. the Logstreamer's
    partial_line_timeout), so a traceback spanning two reads stays one record.

    Keys: delimiter ("\\n"), grouping (required), max_lines (99), keep_truncated,
    deliver_incomplete_final.

        [traceback_grouping]
        type = "PatternGroupingSplitter"
        grouping = '^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d+ \\d+ (ERROR|TRACE|CRITICAL)'
        max_lines = 200
    """

    options = {
        "delimiter": Option("str", "\n"),
        "grouping": Option("str", required=True),
        "max_lines": Option("int", 99),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self._delim = compile_delimiter(cfg.delimiter)
        self._group = compile_delimiter(cfg.grouping, key="grouping")
        if cfg.max_lines < 1:
            raise OptionError("must be at least 1", key="max_lines")

    def _end_of_skipped(self, data: bytes) -> int:
        m = self._delim.search(data)
        return -1 if m is None else m.end()

    def _lines(self, buf: bytes) -> list[tuple[int, int]]:
        """(start, end) of every complete line, delimiter included."""
        out = []
        start = 0
        for m in self._delim.finditer(buf):
            if m.end() == start:
                continue
            out.append((start, m.end()))
            start = m.end()
        return out

    def _records(self, buf: bytes) -> tuple[list[bytes], int]:
        lines = self._lines(buf)
        grouped = self._group.search
        max_lines = self.cfg.max_lines
        records = []
        consumed = 0
        i = 0
        n = len(lines)
        while i < n:
            s, e = lines[i]
            if not grouped(buf[s:e]):
                records.append(buf[s:e])
                consumed = e
                i += 1
                continue
            j = i + 1
            while j < n and j - i < max_lines and grouped(buf[lines[j][0]:lines[j][1]]):
                j += 1
            if j == n and j - i < max_lines:
                break  # the group may go on in the next read: hold it
            records.append(buf[s:lines[j - 1][1]])
            consumed = lines[j - 1][1]
            i = j
        return records, consumed

    def flush(self) -> list[bytes]:
        # A held group is made of complete lines: it is a record, not an incomplete one.
        held = self._buf
        if not held:
            return super().flush()
        lines = self._lines(held)
        complete = held[:lines[-1][1]] if lines else b""
        self._buf = held[len(complete):]
        out = self._bounded([complete]) if complete else []
        return out + super().flush()
