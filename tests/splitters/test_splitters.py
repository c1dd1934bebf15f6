"""Splitters: Heka's record boundaries, chunk-independence, bounded held data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.collector.engine.plugin import OptionError
from hekapy.collector.splitters.null import NullSplitter
from hekapy.collector.splitters.pattern_grouping import PatternGroupingSplitter
from hekapy.collector.splitters.regex import RegexSplitter
from hekapy.collector.splitters.token import TokenSplitter
from tests.helpers.plugins import make_plugin


def split_all(sp, data: bytes, cut: list[int]) -> list[bytes]:
    out, prev = [], 0
    for c in [*cut, len(data)]:
        out += sp.split(data[prev:c])
        prev = c
    return out


def every_two_cuts(sp_factory, data: bytes):
    """Records must not depend on where reads happen to end."""
    whole = sp_factory().split(data)
    for i in range(len(data) + 1):
        for j in range(i, len(data) + 1, 3):
            sp = sp_factory()
            assert split_all(sp, data, [i, j]) == whole, (i, j)
    return whole


def test_token_keeps_delimiter_and_holds_tail():
    sp = make_plugin(TokenSplitter)
    assert sp.split(b"one\ntwo\nthr") == [b"one\n", b"two\n"]
    assert sp.remainder == 3
    assert sp.split(b"ee\n") == [b"three\n"]
    assert sp.remainder == 0


def test_token_chunk_boundaries():
    data = b"a\nbb\n\nccc\r\nd\n"
    assert every_two_cuts(lambda: make_plugin(TokenSplitter), data) == [
        b"a\n", b"bb\n", b"\n", b"ccc\r\n", b"d\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\n", b"\r", b"\r\n", b"\x0b", b"\x0c", b"\x1c",
                                 b"\x85", "\u2028".encode()]), max_size=30).map(b"".join),
       st.integers(0, 30))
def test_token_splits_at_newlines_only(data, cut):
    # The fast path (bytes.splitlines) must give what a split at "\n" gives, whatever
    # other line breaks the data holds.
    cut = min(cut, len(data))
    lines = data.split(b"\n")
    expected = [line + b"\n" for line in lines[:-1]]
    assert split_all(make_plugin(TokenSplitter), data, [cut]) == expected


def test_token_count_and_custom_delimiter():
    sp = make_plugin(TokenSplitter, count=2)
    assert sp.split(b"1\n2\n3\n4\n5\n") == [b"1\n2\n", b"3\n4\n"]
    assert sp.remainder == 2
    sp = make_plugin(TokenSplitter, delimiter="|")
    assert sp.split(b"a|b|c") == [b"a|", b"b|"]
    for bad in ("", "ab"):
        with pytest.raises(OptionError) as e:
            make_plugin(TokenSplitter, delimiter=bad)
        assert e.value.key == "delimiter"


def test_flush_respects_deliver_incomplete_final():
    sp = make_plugin(TokenSplitter)
    sp.split(b"x\ntail")
    assert sp.flush() == [] and sp.remainder == 0
    sp = make_plugin(TokenSplitter, deliver_incomplete_final=True)
    sp.split(b"x\ntail")
    assert sp.flush() == [b"tail"]


@pytest.mark.parametrize("keep", [False, True])
def test_huge_line_is_cut_and_memory_bounded(keep):
    sp = make_plugin(TokenSplitter, keep_truncated=keep)
    sp.max_record_size = 100
    out = sp.split(b"ok\n" + b"x" * 60)
    assert out == [b"ok\n"]
    for _ in range(1000):  # 1000 more chunks of the same endless line
        out += sp.split(b"x" * 60)
        assert sp.remainder <= 100
    out += sp.split(b"xx\nnext\n")
    expected = [b"ok\n", *([b"x" * 100] if keep else []), b"next\n"]
    assert out == expected
    assert (sp.truncated, sp.dropped) == ((1, 0) if keep else (0, 1))


def test_complete_oversized_record_in_one_chunk():
    sp = make_plugin(TokenSplitter)
    sp.max_record_size = 5
    assert sp.split(b"abcdefgh\nab\n") == [b"ab\n"]
    assert sp.dropped == 1


def test_regex_no_capture_discards_delimiter():
    mk = lambda: make_plugin(RegexSplitter, delimiter=r"\r?\n")  # noqa: E731
    assert every_two_cuts(mk, b"a\r\nb\nc\n") == [b"a", b"b", b"c"]


def test_regex_capture_eol_true_appends():
    mk = lambda: make_plugin(RegexSplitter, delimiter=r"(;)\n")  # noqa: E731
    assert every_two_cuts(mk, b"a;\nb;\nc;\n") == [b"a;", b"b;", b"c;"]


def test_regex_capture_eol_false_prepends_to_next():
    mk = lambda: make_plugin(  # noqa: E731
        RegexSplitter, delimiter=r"\n(=[A-Z]+ REPORT====)", delimiter_eol=False)
    data = (b"=INFO REPORT==== 1\nline a\n=ERROR REPORT==== 2\nline b\nline c\n"
            b"=INFO REPORT==== 3\n")
    assert every_two_cuts(mk, data) == [
        b"=INFO REPORT==== 1\nline a", b"=ERROR REPORT==== 2\nline b\nline c"]


def test_regex_two_groups_rejected():
    with pytest.raises(OptionError) as e:
        make_plugin(RegexSplitter, delimiter=r"(a)(b)")
    assert e.value.key == "delimiter"
    with pytest.raises(OptionError):
        make_plugin(RegexSplitter, delimiter=r"(unclosed")


TRACE = (b"2024-01-02 10:00:00.001 12 INFO nova.api starting\n"
         b"2024-01-02 10:00:00.002 12 ERROR nova.api Traceback (most recent call last):\n"
         b"2024-01-02 10:00:00.002 12 ERROR nova.api   File \"x.py\", line 1\n"
         b"2024-01-02 10:00:00.002 12 ERROR nova.api ValueError: boom\n"
         b"2024-01-02 10:00:00.003 12 INFO nova.api done\n")


def test_pattern_grouping_keeps_traceback_together_across_reads():
    mk = lambda: make_plugin(PatternGroupingSplitter, grouping=r" ERROR ")  # noqa: E731
    lines = TRACE.splitlines(keepends=True)
    assert every_two_cuts(mk, TRACE) == [lines[0], b"".join(lines[1:4]), lines[4]]


def test_pattern_grouping_max_lines_and_flush():
    sp = make_plugin(PatternGroupingSplitter, grouping=r"^ ", max_lines=2)
    assert sp.split(b" a\n b\n c\nx\n") == [b" a\n b\n", b" c\n", b"x\n"]
    assert sp.split(b" d\n e") == []
    # At the end of the stream a held group of complete lines is a record.
    assert sp.flush() == [b" d\n"]


def test_null_splitter_one_record_per_chunk():
    sp = make_plugin(NullSplitter)
    assert sp.split(b"abc") == [b"abc"] and sp.split(b"") == [] and sp.remainder == 0
    assert sp.cfg.min_buffer_size == 65536
