"""Message matcher tests (docs/compatibility.md, "Message matcher").

The MALFORMED / NEGATIVE / POSITIVE vectors are the expressions of Heka's own
message/message_matcher_test.go, run against the same test message (getTestMessage plus
the fields MatcherSpecificationSpec adds), with fixed values where Go used the clock, the
host name, the pid and a random Uuid.
"""

from __future__ import annotations

import pytest

from hekapy.collector.engine.matcher import (
    MATCH_ALL,
    MATCH_NONE,
    MatcherSyntaxError,
    compile_matcher,
    matcher_warnings,
)
from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, STRING, Field, Message
from hekapy.collector.engine.regex import compile_regex

UUID = bytes.fromhex("0fae7c1f2f6a4b49a8c6e1d2b3c4d5e6")
UUID_TEXT = "0fae7c1f-2f6a-4b49-a8c6-e1d2b3c4d5e6"


def heka_test_message() -> Message:
    """Heka's getTestMessage() plus the fields MatcherSpecificationSpec adds, in order."""
    return Message(
        uuid=UUID, timestamp=1_428_773_426_113_040_227, type="TEST", logger="GoSpec",
        severity=6, payload="Test Payload", env_version="0.8", pid=14098,
        hostname="hostname",
        fields=[
            Field("foo", ["bar"], STRING),
            Field("number", [64], INTEGER),
            Field("bytes", [b"data"], BYTES),
            Field("int", [999, 1024], INTEGER),
            Field("double", [99.9], DOUBLE),
            Field("bool", [True], BOOL),
            Field("foo", ["alternate"], STRING),
            Field("Payload", ["name=test;type=web;"], STRING),
            Field("Timestamp", ["Mon Jan 02 15:04:05 -0700 2006"], STRING, "date-time"),
            Field("zero", [0], INTEGER),
            Field("string", ["43"], STRING),
        ])


MSG = heka_test_message()

# Heka's `malformed` list, except "" (Heka rejects it; here an empty matcher is
# MATCH_NONE, see test_empty_spec_matches_nothing).
MALFORMED = [
    "bogus",
    "Type = 'test'",
    "Pid == 'test='",
    "Type == 'test' && (Severity==7 || Payload == 'Test Payload'",
    "Invalid == 'bogus'",
    "Fields[]",
    "Fields[test][]",
    "Fields[test][a]",
    "Fields[test][0][]",
    "Fields[test][0][a]",
    "Fields[test][0][0][]",
    "Fields[test][xxxx",
    "Pid =~ /6/",
    "Pid !~ /6/",
    "Type =~ /test",
    "Type == /test/",
    "Type =~ 'test'",
    "Type =~ /\\ytest/",
    "Type != 'test\"",
    "Pid =~ 6",
    "NIL",
    "Type == NIL",
    "Fields[test] > NIL",
]

# Checklist row 8 and other rejections (some are deliberate departures from Heka, which
# accepts juxtaposed expressions and unknown capitalised words, see collector/engine/matcher.py).
MALFORMED_EXTRA = [
    "Type =~ 'x'",
    "Fields[x] > NIL",
    "Fields[x] < NIL",
    "Fields[x] =~ NIL",
    "Fields[x] != TRUE",
    "Fields[x] > FALSE",
    "Fields[x] == /a/",
    "Fields[x] =~ 'a'",
    "Type =~ /abc",
    "Payload =~ /a\\/",
    "Severity > -1",
    "Severity == +1",
    "Severity == 1e",
    "Severity == 1..2",
    "Severity == 1e999",
    "Severity == TRUE",
    "Severity == NIL",
    "Timestamp =~ /1/",
    "Type == 5",
    "Hostname > 1.5",
    "TRUE FALSE",
    "Type == 'TEST' Severity == 6",
    "TRUE Bogus",
    "TRUE)",
    "(TRUE",
    "()",
    "TRUE &&",
    "|| TRUE",
    "TRUE & FALSE",
    "TRUE | FALSE",
    "Type ! 'x'",
    "Type <> 'x'",
    "type == 'x'",
    "Fields [x] == 1",
    "Fields == 1",
    "Fields[x][1][2][3] == 1",
    "Fields[x][-1] == 1",
    "Fields[x] == 'a",
    "Type == 'a\\'",
    "Type == 'x' && \n TRUE",
    "Type == 'x\ny'",
    "Type =~ /(/",
    "Type == 'x' ; TRUE",
    "TRUE\r",
]

NEGATIVE = [
    "FALSE",
    "Type == 'test'&&(Severity==7||Payload=='Test Payload')",
    "EnvVersion == '0.9'",
    "EnvVersion != '0.8'",
    "EnvVersion > '0.9'",
    "EnvVersion >= '0.9'",
    "EnvVersion < '0.8'",
    "EnvVersion <= '0.7'",
    "Severity == 5",
    "Severity != 6",
    "Severity < 6",
    "Severity <= 5",
    "Severity > 6",
    "Severity >= 7",
    "Fields[foo] == 'ba'",
    "Fields[foo][1] == 'bar'",
    "Fields[foo][0][1] == 'bar'",
    "Fields[bool] == FALSE",
    "Type =~ /Test/",
    "Type !~ /TEST/",
    "Payload =~ /^Payload/",
    "Type == \"te'st\"",
    "Type == 'te\"st'",
    "Fields[int] =~ /999/",
    "Fields[zero] == \"0\"",
    "Fields[string] == 43",
    "Fields[int] == NIL",
    "Fields[int][0][1] == NIL",
    "Fields[missing] != NIL",
    "Type =~ /^te/",
    "Type =~ /st$/",
    "Type !~ /^TE/",
    "Type !~ /ST$/",
    "Logger =~ /./ && Type =~ /^anything/",
]

POSITIVE = [
    "TRUE",
    "(Severity == 7 || Payload == 'Test Payload') && Type == 'TEST'",
    "EnvVersion == \"0.8\"",
    "EnvVersion == '0.8'",
    "EnvVersion != '0.9'",
    "EnvVersion > '0.7'",
    "EnvVersion >= '0.8'",
    "EnvVersion < '0.9'",
    "EnvVersion <= '0.8'",
    "Hostname != ''",
    "Logger == 'GoSpec'",
    "Pid != 0",
    "Severity != 5",
    "Severity < 7",
    "Severity <= 6",
    "Severity == 6",
    "Severity > 5",
    "Severity >= 6",
    "Timestamp > 0",
    "Type != 'test'",
    "Type == 'TEST' && Severity == 6",
    "Type == 'test' && Severity == 7 || Payload == 'Test Payload'",
    "Type == 'TEST'",
    "Type == 'foo' || Type == 'bar' || Type == 'TEST'",
    f"Uuid == '{UUID_TEXT}'",
    "Fields[foo] == 'bar'",
    "Fields[foo][0] == 'bar'",
    "Fields[foo][0][0] == 'bar'",
    "Fields[foo][1] == 'alternate'",
    "Fields[foo][1][0] == 'alternate'",
    "Fields[foo] == 'bar'",
    "Fields[bytes] == 'data'",
    "Fields[int] == 999",
    "Fields[int][0][1] == 1024",
    "Fields[double] == 99.9",
    "Fields[bool] == TRUE",
    "Type =~ /TEST/",
    "Type !~ /bogus/",
    "Type =~ /TEST/ && Payload =~ /Payload/",
    "Fields[foo][1] =~ /alt/",
    "Fields[Payload] =~ /name=\\w+/",
    "Type =~ /(ST)/",
    "Fields[int] != NIL",
    "Fields[int][0][1] != NIL",
    "Fields[int][0][2] == NIL",
    "Fields[missing] == NIL",
    "Type =~ /^TE/",
    "Type =~ /ST$/",
    "Type !~ /^te/",
    "Type !~ /st$/",
]

# More true/false expressions on the same message: lexical rules, indexing, field types.
MORE_TRUE = [
    # whitespace, tabs, no spaces at all
    "Type=='TEST'&&Severity==6",
    "\tType\t==\t'TEST'\t",
    "((((Type == 'TEST'))))",
    # numbers: leading dot, exponent, trailing dot
    "Severity == 6.",
    "Severity == 6e0",
    "Severity == 0.6e+1",
    "Severity > .5",
    "Fields[double] < 1e2",
    "Fields[double] >= 99.9",
    "Fields[int] > 998.5",
    "Fields[zero] == 0",
    "Fields[number] == 64",
    # string escapes: \' inside '...', \" inside "..."; other pairs kept literally
    "Fields[foo] != 'b\\'ar'",
    "Type != \"TE\\\"ST\"",
    # bytewise / lexicographic string order
    "Type > 'TES'",
    "Type < 'TESTa'",
    "Type >= 'TEST'",
    "Type <= 'TEST'",
    "Logger < 'Gp'",
    "Fields[bytes] > 'dat'",
    "Fields[bytes] < 'datb'",
    "Fields[bytes] =~ /^da/",
    "Fields[bytes] =~ /a.a/",
    "Fields[bytes] !~ /x/",
    # indexing
    "Fields[foo][1][0] == 'alternate'",
    "Fields[foo][2] == NIL",
    "Fields[foo][1][1] == NIL",
    "Fields[int][0][1] > 1000",
    "Fields[int][0][0] < 1000",
    "Fields[Timestamp] =~ /2006$/",
    "Fields[Payload] =~ /^name=test;/",
    "Fields[bool] != NIL",
    "Fields[string] == '43'",
    "Fields[string] =~ /^4/",
    # the Uuid text form
    "Uuid =~ /^0fae7c1f-/",
    "Uuid > '0'",
    # precedence: && binds tighter than ||, both left-associative
    "TRUE || TRUE && FALSE",
    "FALSE && FALSE || TRUE",
    "Type == 'x' && Severity == 6 || Type == 'TEST'",
    "Type == 'TEST' || Type == 'x' && Severity == 0",
    "Severity == 6 && (Type == 'x' || Type == 'TEST')",
]

MORE_FALSE = [
    "Type == 'x' && (Severity == 6 || Type == 'TEST')",
    "(TRUE || TRUE) && FALSE",
    "Fields[foo][3] != NIL",
    "Fields[foo][0][1] != NIL",
    "Fields[missing] != 'x'",
    "Fields[missing] < 1",
    "Fields[missing] =~ /./",
    "Fields[missing] !~ /./",
    "Fields[missing] == FALSE",
    "Fields[missing][0][1] != NIL",
    # type mismatches are false whatever the operator
    "Fields[int] == '999'",
    "Fields[int] != '999'",
    "Fields[int] !~ /x/",
    "Fields[foo] == 5",
    "Fields[foo] != 5",
    "Fields[string] > 1",
    "Fields[foo] == TRUE",
    "Fields[bool] == 'true'",
    "Fields[bool] == 1",
    "Fields[bool] != 'x'",
    "Fields[bool] =~ /true/",
    "Fields[bool] !~ /x/",
    "Fields[double] == TRUE",
    "Fields[bytes] == 5",
    "Fields[bytes] == TRUE",
    # Heka's getStringValue returns "" for an absent header: EnvVersion etc. are strings
    "Hostname == ''",
    "Payload =~ /^$/",
]


def match(spec: str, msg: Message = MSG) -> bool:
    result = compile_matcher(spec)(msg)
    assert isinstance(result, bool)
    return result


@pytest.mark.parametrize("spec", MALFORMED + MALFORMED_EXTRA)
def test_malformed(spec: str) -> None:
    with pytest.raises(MatcherSyntaxError):
        compile_matcher(spec)


@pytest.mark.parametrize("spec", NEGATIVE + MORE_FALSE)
def test_negative(spec: str) -> None:
    assert match(spec) is False


@pytest.mark.parametrize("spec", POSITIVE + MORE_TRUE)
def test_positive(spec: str) -> None:
    assert match(spec) is True


def test_syntax_error_is_a_value_error_naming_token_and_column() -> None:
    with pytest.raises(ValueError) as info:
        compile_matcher("Type == NIL")
    e = info.value
    assert isinstance(e, MatcherSyntaxError)
    assert "unexpected token 'NIL' at column 9 in \"Type == NIL\"" in str(e)
    assert e.column == 9
    assert e.spec == "Type == NIL"


@pytest.mark.parametrize(("spec", "column", "fragment"), [
    ("Pid =~ /6/", 5, "numeric header Pid"),
    ("Severity > -1", 12, "sign"),
    ("Type =~ /abc", 9, "unterminated regular expression"),
    ("Type == 'abc", 9, "unterminated string"),
    ("Type =~ /\\ytest/", 9, "invalid escape"),
    ("Type == 'a' Severity == 6", 13, "'Severity'"),
    ("Fields[x] > NIL", 13, "NIL only works with == and !="),
    ("Bogus == 'x'", 1, "unknown name 'Bogus'"),
    ("Type == 'x' &&\nTRUE", 15, "newline"),
])
def test_syntax_error_messages(spec: str, column: int, fragment: str) -> None:
    with pytest.raises(MatcherSyntaxError) as info:
        compile_matcher(spec)
    assert info.value.column == column
    assert fragment in str(info.value)


# --- constant matchers ---------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["", " ", "\t \t", "\n", "\nTRUE", None])
def test_empty_spec_matches_nothing(spec: str | None) -> None:
    pred = compile_matcher(spec)
    assert pred is MATCH_NONE
    assert pred.always is False
    assert pred(MSG) is False


@pytest.mark.parametrize(("spec", "always"), [
    ("TRUE", True),
    ("(TRUE)", True),
    ("TRUE || Type == 'x'", True),
    ("Type == 'x' || TRUE", True),
    ("TRUE && TRUE", True),
    ("FALSE", False),
    ("FALSE && Type == 'x'", False),
    ("Type == 'x' && FALSE", False),
    ("FALSE || FALSE", False),
])
def test_constant_matchers_are_detectable(spec: str, always: bool) -> None:
    pred = compile_matcher(spec)
    assert pred is (MATCH_ALL if always else MATCH_NONE)
    assert pred.always is always
    assert pred(Message()) is always


@pytest.mark.parametrize("spec", ["Type == 'TEST' && TRUE", "FALSE || Type == 'TEST'"])
def test_partly_constant_matchers_still_evaluate(spec: str) -> None:
    pred = compile_matcher(spec)
    assert pred.always is None
    assert pred.spec == spec
    assert pred(MSG) is True
    assert pred(Message(type="other")) is False


# --- the newline quirk --------------------------------------------------------------------

def test_text_after_newline_is_ignored_and_reported() -> None:
    spec = "Type == 'TEST'\n&& Severity == 1"
    assert match(spec) is True  # Heka stops reading at the newline
    warnings = matcher_warnings(spec)
    assert len(warnings) == 1
    assert "newline" in warnings[0] and "Severity == 1" in warnings[0]


def test_nul_ends_the_matcher_too() -> None:
    spec = "Type == 'TEST'\0 && FALSE"
    assert match(spec) is True
    assert len(matcher_warnings(spec)) == 1


@pytest.mark.parametrize("spec", ["Type == 'TEST'", "Type == 'TEST'\n", "Type == 'TEST'\n  \n",
                                  "", "TRUE\t"])
def test_no_warning_without_ignored_text(spec: str) -> None:
    assert matcher_warnings(spec) == []


# --- lexical details ----------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "payload", "expected"), [
    # \' in '...' is a quote; any other backslash pair stays as both characters
    ("Payload == 'it\\'s'", "it's", True),
    ("Payload == \"say \\\"hi\\\"\"", 'say "hi"', True),
    ("Payload == 'a\\nb'", "a\\nb", True),
    ("Payload == 'a\\nb'", "a\nb", False),
    ("Payload == 'a\\\\b'", "a\\\\b", True),
    ("Payload == \"it\\'s\"", "it\\'s", True),
    ("Payload == 'it\"s'", 'it"s', True),
    # in a regex only \/ is unescaped; everything else goes to RE2
    ("Payload =~ /^a\\/b$/", "a/b", True),
    ("Payload =~ /a\\/b/", "xa/by", True),
    ("Payload =~ /\\d+\\.\\d+/", "v1.25", True),
    ("Payload =~ /\\d+\\.\\d+/", "v1x25", False),
    ("Payload =~ /a\\\\/", "a\\", True),
    ("Payload =~ /\\x41/", "A", True),
    ("Payload =~ /(?i)abc/", "xABCx", True),
    ("Payload =~ /\\pL/", "é", True),
    ("Payload =~ /^.$/", "é", True),  # UTF-8 aware: one character, not two bytes
    ("Payload > 'z'", "é", True),  # bytewise: 0xC3 > 'z'
    ("Payload < '\U0001F600'", "\uffff", True),
    ("Payload =~ /a$/", "a\n", False),  # RE2: $ is the end of the text
    ("Payload =~ /a\\n$/", "a\n", True),
])
def test_lexical_rules(spec: str, payload: str, expected: bool) -> None:
    assert match(spec, Message(payload=payload)) is expected


@pytest.mark.parametrize(("spec", "expected"), [
    ("Fields[with space] == 'a'", True),
    ("Fields[dotted.name] == 'b'", True),
    ("Fields[brack[et] == 'c'", True),
    ("Fields[quo'te] == 'd'", True),
    ("Fields[with space][0][0] == 'a'", True),
    ("Fields[with  space] == NIL", True),
])
def test_field_names_with_odd_characters(spec: str, expected: bool) -> None:
    msg = Message(fields=[Field("with space", ["a"]), Field("dotted.name", ["b"]),
                          Field("brack[et", ["c"]), Field("quo'te", ["d"])])
    assert match(spec, msg) is expected


# --- indexing ------------------------------------------------------------------------------

INDEXED = Message(fields=[
    Field("a", ["a00", "a01"]),
    Field("b", [1]),
    Field("a", ["a10", "a11", "a12"]),
    Field("a", [7, 8], INTEGER),
])


@pytest.mark.parametrize(("spec", "expected"), [
    ("Fields[a] == 'a00'", True),
    ("Fields[a][0] == 'a00'", True),
    ("Fields[a][0][0] == 'a00'", True),
    ("Fields[a][0][1] == 'a01'", True),
    ("Fields[a][1] == 'a10'", True),
    ("Fields[a][1][0] == 'a10'", True),
    ("Fields[a][1][2] == 'a12'", True),
    ("Fields[a][2] == 7", True),
    ("Fields[a][2][1] == 8", True),
    ("Fields[a][2][1] == '8'", False),
    ("Fields[a][1][0] == 'a00'", False),
    ("Fields[a][1][3] == NIL", True),
    ("Fields[a][1][3] != NIL", False),
    ("Fields[a][1][2] != NIL", True),
    ("Fields[a][3] == NIL", True),
    ("Fields[a][3] != NIL", False),
    ("Fields[a][3] != 'x'", False),
    ("Fields[a][00001][002] == 'a12'", True),
    ("Fields[a][99999999999999999999] == NIL", True),
    ("Fields[A] == NIL", True),  # names are case-sensitive
])
def test_field_indexing(spec: str, expected: bool) -> None:
    assert match(spec, INDEXED) is expected


# --- field types ---------------------------------------------------------------------------

TYPED = Message(fields=[
    Field("int", [5], INTEGER),
    Field("str", ["5"], STRING),
    Field("dbl", [5.0], DOUBLE),
    Field("bytes", ["héllo".encode()], BYTES),
    Field("rawbytes", [b"\xff\xfeab"], BYTES),
    Field("flag", [False], BOOL),
    Field("odd", ["x"], 9),  # unknown value_type
])


@pytest.mark.parametrize(("spec", "expected"), [
    ("Fields[int] == \"5\"", False),
    ("Fields[int] == 5", True),
    ("Fields[int] == 5.0", True),
    ("Fields[int] =~ /1/", False),
    ("Fields[int] =~ /5/", False),
    ("Fields[int] !~ /5/", False),
    ("Fields[str] == 5", False),
    ("Fields[str] != 5", False),
    ("Fields[str] == '5'", True),
    ("Fields[str] =~ /5/", True),
    ("Fields[dbl] == 5", True),
    ("Fields[dbl] <= 5", True),
    ("Fields[dbl] == '5'", False),
    ("Fields[bytes] == 'héllo'", True),
    ("Fields[bytes] > 'hello'", True),  # b'h\xc3' > b'he'
    ("Fields[bytes] =~ /^h.llo$/", True),
    ("Fields[bytes] =~ /é/", True),
    ("Fields[bytes] =~ /^hé/", True),
    ("Fields[bytes] =~ /llo$/", True),
    ("Fields[rawbytes] =~ /ab$/", True),
    ("Fields[rawbytes] =~ /a/", True),
    ("Fields[rawbytes] > 'a'", True),
    ("Fields[rawbytes] != NIL", True),
    ("Fields[flag] == FALSE", True),
    ("Fields[flag] == TRUE", False),
    ("Fields[flag] != NIL", True),
    ("Fields[flag] == NIL", False),
    ("Fields[flag] == 0", False),
    ("Fields[flag] == 'false'", False),
    ("Fields[str] == TRUE", False),
    ("Fields[int] == FALSE", False),
    ("Fields[odd] == 'x'", False),
    ("Fields[odd] != NIL", False),  # as Heka: an unknown type matches nothing
    ("Fields[odd] == NIL", False),
])
def test_field_value_types(spec: str, expected: bool) -> None:
    assert match(spec, TYPED) is expected


def test_bytes_in_a_string_field_and_str_in_a_bytes_field() -> None:
    msg = Message(fields=[Field("s", [b"abc"], STRING), Field("b", ["abc"], BYTES)])
    for spec in ("Fields[s] == 'abc'", "Fields[b] == 'abc'", "Fields[s] =~ /b/",
                 "Fields[b] =~ /^ab/", "Fields[s] >= 'abc'"):
        assert match(spec, msg) is True, spec


# --- headers ------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "expected"), [
    ("Pid == 0", True),
    ("Pid != 0", False),
    ("Pid < 1", True),
    ("Severity == 7", True),
    ("Uuid == ''", True),
    ("Type == ''", True),
    ("Type != ''", False),
    ("Timestamp == 0", True),
])
def test_unset_headers(spec: str, expected: bool) -> None:
    msg = Message(uuid=b"", timestamp=0)  # pid None, severity default 7
    assert match(spec, msg) is expected


def test_timestamp_compares_as_float64_like_go() -> None:
    # float64(2**53 + 1) == 2**53 in Go; Python's exact int/float compare would say no.
    msg = Message(timestamp=2**53 + 1)
    assert match("Timestamp == 9007199254740993", msg) is True
    assert match("Timestamp == 9007199254740992", msg) is True
    assert match("Timestamp > 9007199254740992", msg) is False
    msg.fields.append(Field("big", [2**53 + 1], INTEGER))
    assert match("Fields[big] == 9007199254740992", msg) is True


def test_malformed_message_values_are_false_not_errors() -> None:
    msg = Message(type=None, severity=None,  # type: ignore[arg-type]
                  fields=[Field("n", ["x"], INTEGER), Field("s", [5], STRING),
                          Field("f", None, STRING)])  # type: ignore[arg-type]
    msg.timestamp = None  # type: ignore[assignment]
    for spec in ("Severity < 5", "Timestamp > 0", "Type < 'x'", "Type =~ /x/",
                 "Fields[n] > 1", "Fields[s] == '5'", "Fields[s] =~ /5/", "Fields[f] == 'x'"):
        assert match(spec, msg) is False, spec
    # a failing test is false, but the rest of the expression still counts
    assert match("Severity < 5 || Logger == ''", msg) is True
    assert match("Fields[n] > 1 || Fields[n] != NIL", msg) is True


def test_surrogate_escaped_payload_does_not_raise() -> None:
    payload = b"caf\xe9 ok".decode("utf-8", "surrogateescape")
    msg = Message(payload=payload)
    assert match("Payload =~ /ok$/", msg) is True
    assert match("Payload =~ /o[k]/", msg) is True
    assert match("Payload =~ /^caf/", msg) is True
    assert match("Payload =~ /x[y]/", msg) is False


# --- regex optimisation -------------------------------------------------------------------

TRICKY = ["", "Test Payload", "Test Payload\n", "test payload", "Payload", "\nTest",
          "xTest", "load", "load\n", "a.b", "axb", "a/b", "a\\b", "a$", "^a", "a\nb", "a\n",
          "\n", "é", "éa", "aé", "a\tb", "{a}", "a{2}", "aa"]

PATTERNS = ["^Test", "load$", "^Test Payload$", "Payload", "^", "$", "^$", "", "a\\.b",
            "^a\\.b$", "a.b", "^a/b", "a/b$", "a\\\\", "a\\\\$", "a\\$", "\\^a", "^a\\nb$", "a\\n$",
            "\\n", "^é", "é$", "a\\tb", "\\{a\\}", "a{2}", "^a$", "(?i)^test", "^a|b",
            "^load$", "Test$", "^(Test)", "^\\x41", "^a+", "^aa$", "a\\n"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_optimised_regexes_agree_with_re2(pattern: str) -> None:
    rx = compile_regex(pattern)
    brx = compile_regex(pattern.encode())
    escaped = pattern.replace("/", "\\/")
    yes = compile_matcher(f"Payload =~ /{escaped}/")
    no = compile_matcher(f"Payload !~ /{escaped}/")
    field = compile_matcher(f"Fields[b] =~ /{escaped}/")
    for text in TRICKY:
        expected = rx.search(text) is not None
        msg = Message(payload=text, fields=[Field("b", [text.encode()], BYTES)])
        assert yes(msg) is expected, (pattern, text)
        assert no(msg) is (not expected), (pattern, text)
        assert field(msg) is (brx.search(text.encode()) is not None), (pattern, text)


@pytest.mark.parametrize(("pattern", "code"), [
    ("^Test", ".startswith('Test')"),
    ("load$", ".endswith('load')"),
    ("^Test Payload$", "== 'Test Payload'"),
    ("Pay", "'Pay' in"),
    ("a\\.b$", ".endswith('a.b')"),
    ("a\\\\$", ".endswith('a\\\\')"),
])
def test_literal_regexes_become_string_tests(pattern: str, code: str) -> None:
    pred = compile_matcher(f"Payload =~ /{pattern}/")
    assert code in pred.source
    assert "_rx" not in pred.source


@pytest.mark.parametrize("pattern", ["^a.b", "a+$", "^(?i)x", "a\\$+", "^a|b", "[a]"])
def test_non_literal_regexes_stay_regexes(pattern: str) -> None:
    assert "_rx" in compile_matcher(f"Payload =~ /{pattern}/").source
