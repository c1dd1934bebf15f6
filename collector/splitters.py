"""Splitters: cut a byte stream into records (spec/heka.md §4.3).

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

from .plugin import Option, OptionError, Splitter, register
from .regex import compile_regex

MAX_RECORD_SIZE = 65536 + 3 + 255


class _HoldingSplitter(Splitter):
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


@register
class TokenSplitter(_HoldingSplitter):
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


def _compile_delimiter(pattern: str, key: str = "delimiter") -> Any:
    try:
        return compile_regex(pattern.encode("utf-8"))
    except ValueError as e:
        raise OptionError(f"regex {pattern!r} does not compile: {e}", key=key) from None


@register
class RegexSplitter(_HoldingSplitter):
    """Records are separated by matches of the `delimiter` regex. With one capture group
    the captured text is kept: appended to the preceding record (`delimiter_eol = true`)
    or prepended to the next one (false). Without a capture group the delimiter is
    discarded. As in Heka, a delimiter that can match a variable length (`;\\s*`) may
    match shorter where a read ends; prefer delimiters that end in a fixed character.

    Keys: delimiter ("\\n"), delimiter_eol (true), keep_truncated,
    deliver_incomplete_final.

        [rabbitmq_splitter]
        type = "RegexSplitter"
        delimiter = '\\n(=[A-Z]+ REPORT====)'
        delimiter_eol = false
    """

    options = {
        "delimiter": Option("str", "\n"),
        "delimiter_eol": Option("bool", True),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        self._re = _compile_delimiter(cfg.delimiter)
        groups = self._re.groups
        if groups > 1:
            raise OptionError(f"regex {cfg.delimiter!r} must not have more than one "
                              "capture group", key="delimiter")
        self._capture = groups == 1
        # With delimiter_eol = false the held tail starts with the captured delimiter;
        # searching resumes after it so it is not matched again.
        self._skip_head = 0

    def reset(self) -> None:
        super().reset()
        self._skip_head = 0

    def _end_of_skipped(self, data: bytes) -> int:
        m = self._re.search(data)
        if m is None:
            return -1
        if self._capture and not self.cfg.delimiter_eol:
            self._skip_head = m.end(1) - m.start(1)
            return m.start(1)
        return m.end()

    def _records(self, buf: bytes) -> tuple[list[bytes], int]:
        records = []
        start = 0  # where the next record begins
        after = self._skip_head  # where the next delimiter search begins
        eol = self.cfg.delimiter_eol
        capture = self._capture
        search = self._re.search
        n = len(buf)
        while after <= n:
            m = search(buf, after)
            if m is None:
                break
            if m.end() == m.start():  # an empty match separates nothing
                after = m.end() + 1
                continue
            if not capture:
                records.append(buf[start:m.start()])
                start = after = m.end()
            elif eol:
                records.append(buf[start:m.end(1)])
                start = after = m.end()
            else:
                records.append(buf[start:m.start()])
                start, after = m.start(1), m.end(1)
        if records:
            self._skip_head = after - start if capture and not eol else 0
        return records, start

    def split(self, data: bytes) -> list[bytes]:
        out = super().split(data)
        if not self._buf:
            self._skip_head = 0
        return out


@register
class PatternGroupingSplitter(_HoldingSplitter):
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
        self._delim = _compile_delimiter(cfg.delimiter)
        self._group = _compile_delimiter(cfg.grouping, key="grouping")
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


@register
class NullSplitter(_HoldingSplitter):
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
