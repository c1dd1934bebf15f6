"""RegexSplitter: records separated by matches of a regular expression."""

from __future__ import annotations

from types import SimpleNamespace

from hekapy.collector.engine.plugin import Option, OptionError, register
from hekapy.collector.splitters.holding import HoldingSplitter, compile_delimiter


@register
class RegexSplitter(HoldingSplitter):
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
        self._re = compile_delimiter(cfg.delimiter)
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
