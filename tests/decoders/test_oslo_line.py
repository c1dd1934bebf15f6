"""The typed oslo.log reader (decoders/oslo_line.pyx) against its reference, the
regular expressions of openstack_log.py (match_line, match_context, match_http): the
same results
on the corpus, on the lines a log file can hold besides (invalid UTF-8, control
characters, a 300 kB line, a line with no oslo.log header), on every near miss of the
grammar and on generated text; FALLBACK only where a non-ASCII character stands where
a digit is wanted."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hekapy.benchmarks.corpus import OSLO_FILES, Corpus
from hekapy.collector import compiled
from hekapy.decoders.openstack_log import match_context, match_http, match_line
from tests.tools.hot_path_digest import ODD_LINES

MODULE = "hekapy.decoders.oslo_line"
U1 = "aa59d208-1384-49cd-8656-c0cbe2234703"
U2 = "0c251bec-1d1b-fadd-e076-82d7d40ab83e"
H1 = "a2b4d98ebd9dd1d460fd71e9a7293711"
H2 = "0c251bec1d1bfadde07682d7d40ab83e"


@pytest.fixture(scope="module")
def typed():
    """The typed module, whatever HEKAPY_PURE says (it has no Python twin that
    HEKAPY_PURE could select: the point here is to compare the two)."""
    module = importlib.import_module(MODULE)
    assert compiled.is_compiled(module)
    return module


def same_line(typed, line: str) -> None:
    got = typed.line(line)
    if got is typed.FALLBACK:
        # Only for a non-ASCII character where the prefix wants a digit.
        assert not line[:60].isascii(), line[:80]
        return
    assert got == match_line(line), line[:120]


def same_context(typed, text: str) -> None:
    assert typed.context(text) == match_context(text), text[:120]


def same_http(typed, text: str) -> None:
    got = typed.http(text)
    if got is typed.FALLBACK:
        assert not text.isascii(), text[:120]
        return
    assert got == match_http(text), text[:120]


def test_corpus_and_odd_lines(typed):
    corpus = Corpus(seed=7)
    lines = [corpus.oslo_event(path) for path in OSLO_FILES for _ in range(500)]
    lines += [raw.decode("utf-8", "replace") for raw in ODD_LINES]
    matched = http = 0
    for text in "".join(lines).splitlines(keepends=True):
        same_line(typed, text)
        parts = match_line(text)
        if parts is not None:
            matched += 1
            same_context(typed, parts[6])
            same_http(typed, parts[6])
            http += match_http(parts[6]) is not None
    assert matched > 1500 and http > 300


PREFIXES = [
    "2026-11-30 07:00:00.123 4417 INFO nova.api [-] x\n",
    "2026-11-30T07:00:00,5 1 ERROR m x",
    "2026-11-30 07:00:00Z 1 DEBUG m",
    "2026-11-30 07:00:00+01:00 1 AUDIT m text",
    "2026-11-30 07:00:00.1-0130 1 TRACE m.x-y_z rest",
    "2026-11-30 07:00:00-01 1 CRITICAL m  two spaces",
    "2026-11-30 07:00:00 1 WARNING m\nnext line\n",
    "2026-11-30 07:00:00 12345678901234567890123 INFO m big pid",
    "2026-11-30 07:00:00 1 INFO m:colon",
    "2026-11-30 07:00:00 1 INFO é accent module",
    "2026-11-30 07:00:00 1 INFO mé accent inside",
    "2026-11-30 07:00:00 1 INFO",
    "2026-11-30 07:00:00 1 INFO ",
    "2026-11-30 07:00:00 1 INFOX m",
    "2026-11-30 07:00:00 1 info m",
    "2026-11-30 07:00:00 1  INFO m",
    "2026-11-30 07:00:00 x INFO m",
    "2026-11-30 07:00:00. 1 INFO m",
    "2026-11-30 07:00:00.x 1 INFO m",
    "2026-11-30 07:00:00+1 1 INFO m",
    "2026-11-30 07:00:00+01: 1 INFO m",
    "2026-11-30 07:00:00+01:0 1 INFO m",
    "2026-11-30 07:00:00+0100X 1 INFO m",
    "2026-11-30 07:00:00Z0 1 INFO m",
    "2026-11-30x07:00:00 1 INFO m",
    "2026-11-3 07:00:00 1 INFO m",
    "2026-11-30 07:00:0",
    "",
    "\x00\x01",
    "\u0662\u0660\u0662\u0666-11-30 07:00:00 1 INFO m arabic-indic year",
    "2026-11-30 07:00:00.\u0661\u0662 1 INFO m fraction",
    "2026-11-30 07:00:00 \u0661 INFO m pid",
    "2026-11-30 07:00:00+\u0660\u0661:00 1 INFO m offset",
    "no header at all",
]


@pytest.mark.parametrize("line", PREFIXES)
def test_line_near_misses(typed, line):
    same_line(typed, line)


def test_the_non_ascii_digits_fall_back(typed):
    assert typed.line("2026-11-30 07:00:00 \u0661 INFO m pid") is typed.FALLBACK
    assert match_line("2026-11-30 07:00:00 \u0661 INFO m pid")[3] == 1


CONTEXTS = [
    f"[req-{U1} {H1} {H2} - - -] x", f"[req-{U1}]", f"[req-{U1} ]", f"[req-{U1}x",
    f"[None req-{U1} {H1} {H2} - -]", f"[- req-{U1} {U2} {U2}]", f"[req-{U2} req-{U1} - -]",
    f"[req-{U2} req-{U1} {H1} {H2}]", f"[req-{U2} req-{U1}]", f"[req-{U2} req-bad]",
    f"[req-{U2} req-{U1}x]", f"[req-{U1} {H1}]", f"[req-{U1} {H1} {H2}x]",
    f"[req-{U1} {H1.upper()} {H2}]", f"[req-{U1.upper()}]", f"[None  req-{U1}]",
    f"[Non req-{U1}]", f"[req-{U1} {H1} {U2} ]", f"[req-{U1} {U2[:35]} {H2}]",
    f"[req-{U1} {H1[:31]}g {H2}]", f"[req-{U1} {H1}{H2}]", "[-]", "[]", "[", "", "x",
    f"[req-{U1[:35]}]", f"[req-{U1}é]", f"[None req-{U1} {H1} {H2}]",
]


@pytest.mark.parametrize("text", CONTEXTS)
def test_context_near_misses(typed, text):
    same_context(typed, text)


HTTP = [
    '1.2.3.4 "GET /v2.1/servers HTTP/1.1" status: 200 len: 1893 time: 0.1234567',
    '"POST /x?y=1 HTTP/1.0" 201 12 3', '"GET / HTTP/1.1"  404  0  0.5 tail',
    '"GET /a HTTP/1.1" status: 2000 len: 1 time: 1', '"GET /a HTTP/1.1" 200 len: x time: 1',
    '"GET /a HTTP/1.1" 200 1 time: .5', '"GET /a HTTP/1.1" 200 1 1.', '"GET /a HTTP/1.1" 200 1 1.x',
    '"get /a HTTP/1.1" 200 1 1', '"GET  /a HTTP/1.1" 200 1 1', '"GET /a\u00a0b HTTP/1.1" 200 1 1',
    '"GET /a HTTP/11" 200 1 1', '"GET /a HTTP/1.1 200 1 1', '"GET /a HTTP/1.1"200 1 1',
    'x "y" "GET /a HTTP/1.1" 200 1 1', '"GET /a HTTP/1.1" x "GET /b HTTP/1.0" 302 0 0.01',
    '"GET /a HTTP/1.\u0661" 200 1 1', '"GET /a HTTP/1.1" 200 1\u0661 1',
    '"GET /a HTTP/1.1" 200 1 1.\u0661', '"GET /é HTTP/1.1" 200 1 1', 'HTTP/1.1" 200 1 1',
    '" HTTP/1.1" 200 1 1', '"GET /a HTTP/1.1" 200 99999999999999999999999 1e5', "",
]


@pytest.mark.parametrize("text", HTTP)
def test_http_near_misses(typed, text):
    same_http(typed, text)


ALPHABET = st.sampled_from([*"0123456789-: T.,Z+ INFOERRCTAUDBGWmod_.[]qe-abcdef\n\x00é\u0661",
                            "req-", U1, H1, "None ", "- ", "INFO ", "2026-11-30 07:00:00"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(ALPHABET, max_size=24).map("".join))
def test_generated_text(typed, text):
    same_line(typed, text)
    same_line(typed, "2026-11-30 07:00:00" + text)
    same_context(typed, text)
    same_context(typed, "[" + text)
    same_http(typed, text)
    same_http(typed, '"GET /a HTTP/1.1" ' + text)


HTTP_ALPHABET = st.sampled_from([*'"GET /a HTTP/1.1 status: len: time: 0123456789.\u0661é\t',
                                 "HTTP/", " 200 ", "1.1\" "])


@settings(max_examples=3000, deadline=None)
@given(st.lists(HTTP_ALPHABET, max_size=24).map("".join))
def test_generated_http(typed, text):
    same_http(typed, text)
    same_http(typed, '"GET /a HTTP/1.1" ' + text)
