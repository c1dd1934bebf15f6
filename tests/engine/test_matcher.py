"""Message matcher tests (docs/compatibility.md, "Message matcher").

Every vector here was written for hekapy against the documented grammar and semantics,
https://hekad.readthedocs.io/en/v0.10.0/message_matcher.html: the comparison operators
`== != < <= > >=` and the regex operators `=~ !~`, `&&` binding tighter than `||`,
parentheses, TRUE / FALSE, the headers (Uuid, Type, Logger, Payload, EnvVersion,
Hostname, Timestamp, Severity, Pid), `Fields[name]`, `Fields[name][i]` and
`Fields[name][i][j]`, `NIL` (a field's absence, with `==` / `!=` only), quoted strings,
`/regex/` (RE2) and numbers. They run against `log_message()`, a nova-compute log line
as a decoder would give it, with a repeated field name, fields of every value type and
a field named like a header.
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

UUID = bytes.fromhex("5b1f0c9e8d7a4e31b2c4a6e8f0d2b4c6")
UUID_TEXT = "5b1f0c9e-8d7a-4e31-b2c4-a6e8f0d2b4c6"


def log_message() -> Message:
    """A decoded nova-compute line: Severity 4 (warning), two `programname` fields (the
    second with two values), every field value type, and a field named `Type`."""
    return Message(
        uuid=UUID, timestamp=1_700_000_123_456_789_012, type="log",
        logger="openstack.nova", severity=4, payload="Instance 3f2c spawned in 12.5 seconds",
        env_version="2.1", pid=3311, hostname="cmp-07",
        fields=[
            Field("programname", ["nova-compute"], STRING),
            Field("http_status", [202], INTEGER),
            Field("blob", [b"k=v"], BYTES),
            Field("ports", [8774, 8775], INTEGER),
            Field("load", [0.75], DOUBLE),
            Field("active", [True], BOOL),
            Field("programname", ["nova-api", "nova-conductor"], STRING),
            Field("Type", ["field named Type"], STRING),
            Field("created_at", ["2023-11-14T22:15:23Z"], STRING, "date-time"),
            Field("retries", [0], INTEGER),
            Field("code", ["202"], STRING),
        ])


MSG = log_message()

# Expressions the documented grammar does not produce. (An empty matcher is not among
# them: here it is MATCH_NONE, see test_empty_spec_matches_nothing.)
MALFORMED = [
    "nova",                                    # a bare word is no expression
    "Logger = 'openstack.nova'",               # `=` is no operator
    "Logger === 'openstack.nova'",
    "Pid == '3311'",                           # numeric header against a string
    "Severity != 'warning'",
    "(Type == 'log' || Severity < 4",          # unbalanced parentheses
    "Type == 'log')",
    "Host == 'cmp-07'",                        # not a header
    "fields[code] == '202'",                   # names are case-sensitive
    "Fields[] == 'x'",                         # the name, then indices of digits only
    "Fields[code][] == '202'",
    "Fields[code][first] == '202'",
    "Fields[code][0][] == '202'",
    "Fields[code][0][last] == '202'",
    "Fields[code][0][0][0] == '202'",
    "Fields[code == '202'",
    "Fields[code][0 == '202'",
    "Fields[code]",                            # a variable alone is no test
    "Pid =~ /33/",                             # regexes only against strings
    "Severity !~ /4/",
    "Timestamp =~ /^17/",
    "Logger =~ /^openstack",                   # unterminated regex
    "Logger == /nova/",                        # a regex only with =~ and !~
    "Logger =~ 'nova'",                        # =~ and !~ only with a regex
    "Payload =~ /spawned(?=\\s)/",             # RE2 has no lookahead
    "Payload =~ /\\q/",                        # nor this escape
    "Hostname == 'cmp-07\"",                   # quotes must pair
    "Logger =~ 4",
    "NIL",                                     # NIL only against a field
    "Logger != NIL",
    "Fields[code] < NIL",                      # and only with == and !=
    "Fields[code] =~ NIL",
    "Type == TRUE",                            # TRUE / FALSE only alone or against fields
]

# Rejections beyond the grammar's reach (some are deliberate departures from Heka, which
# accepts juxtaposed expressions and unknown capitalised words, see
# collector/engine/matcher.py).
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
    "Type == 'log' Severity == 4",
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

# False on log_message().
NEGATIVE = [
    "FALSE",
    "Type == 'log' && (Severity == 3 || Payload == 'nothing')",
    # string headers compare bytewise, case included
    "Type == 'LOG'",
    "Logger == 'openstack'",
    "Hostname == 'cmp-7'",
    "EnvVersion == '2.0'",
    "EnvVersion != '2.1'",
    "EnvVersion > '2.1'",
    "EnvVersion >= '2.2'",
    "EnvVersion < '2.1'",
    "EnvVersion <= '2.0'",
    # numeric headers
    "Severity == 3",
    "Severity != 4",
    "Severity < 4",
    "Severity <= 3",
    "Severity > 4",
    "Severity >= 5",
    "Pid == 3312",
    "Pid > 3311",
    "Timestamp < 1700000000000000000",
    # fields: the first of a name, then by index
    "Fields[programname] == 'nova-api'",
    "Fields[programname][1] == 'nova-compute'",
    "Fields[programname][1][1] == 'nova-api'",
    "Fields[active] == FALSE",
    "Fields[Type] == 'log'",                   # the field, not the header
    # regexes are case-sensitive, unanchored unless anchored
    "Logger =~ /Nova/",
    "Logger !~ /nova/",
    "Payload =~ /^spawned/",
    "Logger =~ /^nova/",
    "Logger =~ /openstack$/",
    "Logger !~ /^open/",
    "Logger !~ /nova$/",
    # quotes of the other kind are ordinary characters
    "Logger == \"openstack'nova\"",
    "Logger == 'openstack\"nova'",
    # type mismatches
    "Fields[http_status] =~ /202/",
    "Fields[retries] == \"0\"",
    "Fields[code] == 202",
    # NIL
    "Fields[ports] == NIL",
    "Fields[ports][0][1] == NIL",
    "Fields[absent] != NIL",
    "Fields[programname][1][1] == NIL",
    # && short-circuits on the false side
    "Hostname =~ /./ && Logger =~ /^neutron/",
]

# True on log_message().
POSITIVE = [
    "TRUE",
    "(Severity == 3 || Logger == 'openstack.nova') && Type == 'log'",
    "Type == 'log'",
    "Type != 'LOG'",
    "Type == 'log' && Severity == 4",
    "Type == 'audit' || Type == 'metric' || Type == 'log'",
    "Logger == 'openstack.nova'",
    "Hostname == 'cmp-07'",
    "Hostname != ''",
    "Payload == 'Instance 3f2c spawned in 12.5 seconds'",
    f"Uuid == '{UUID_TEXT}'",
    "EnvVersion == \"2.1\"",
    "EnvVersion == '2.1'",
    "EnvVersion != '2.0'",
    "EnvVersion > '2.0'",
    "EnvVersion >= '2.1'",
    "EnvVersion < '2.2'",
    "EnvVersion <= '2.1'",
    "Severity == 4",
    "Severity != 3",
    "Severity < 5",
    "Severity <= 4",
    "Severity > 3",
    "Severity >= 4",
    "Pid == 3311",
    "Pid != 0",
    "Timestamp > 0",
    "Timestamp >= 1700000123456789012",
    "Timestamp < 1.8e18",
    # && before ||: (FALSE && TRUE) || TRUE, and TRUE || (FALSE && FALSE)
    "Type == 'metric' && Severity == 4 || Logger == 'openstack.nova'",
    "Logger == 'openstack.nova' || Type == 'metric' && Severity == 9",
    # fields: Fields[n] is Fields[n][0][0]
    "Fields[programname] == 'nova-compute'",
    "Fields[programname][0] == 'nova-compute'",
    "Fields[programname][0][0] == 'nova-compute'",
    "Fields[programname][1] == 'nova-api'",
    "Fields[programname][1][0] == 'nova-api'",
    "Fields[programname][1][1] == 'nova-conductor'",
    "Fields[Type] == 'field named Type'",
    "Fields[code] == '202'",
    "Fields[http_status] == 202",
    "Fields[blob] == 'k=v'",
    "Fields[ports] == 8774",
    "Fields[ports][0][1] == 8775",
    "Fields[load] == 0.75",
    "Fields[active] == TRUE",
    # regexes
    "Type =~ /log/",
    "Type !~ /metric/",
    "Type =~ /log/ && Payload =~ /spawned/",
    "Fields[programname][1] =~ /-api$/",
    "Fields[created_at] =~ /^\\d{4}-\\d{2}-\\d{2}T/",
    "Logger =~ /(nova)/",
    "Logger =~ /^openstack/",
    "Logger =~ /nova$/",
    "Logger !~ /^nova/",
    "Logger !~ /openstack$/",
    "Payload =~ /\\d+\\.\\d+ seconds$/",
    # NIL
    "Fields[ports] != NIL",
    "Fields[ports][0][1] != NIL",
    "Fields[ports][0][2] == NIL",
    "Fields[absent] == NIL",
    "Fields[programname][2] == NIL",
]

# More true/false expressions on the same message: lexical rules, indexing, field types.
MORE_TRUE = [
    # whitespace, tabs, no spaces at all
    "Type=='log'&&Severity==4",
    "\tType\t==\t'log'\t",
    "((((Type == 'log'))))",
    # numbers: leading dot, exponent, trailing dot
    "Severity == 4.",
    "Severity == 4e0",
    "Severity == 0.4e+1",
    "Severity > .5",
    "Fields[load] < 1e0",
    "Fields[load] >= 0.75",
    "Fields[http_status] > 201.5",
    "Fields[retries] == 0",
    # string escapes: \' inside '...', \" inside "..."; other pairs kept literally
    "Logger != 'open\\'stack.nova'",
    "Type != \"l\\\"og\"",
    # bytewise / lexicographic string order
    "Type > 'lo'",
    "Type < 'loga'",
    "Type >= 'log'",
    "Type <= 'log'",
    "Logger < 'openstack.novb'",
    "Fields[blob] > 'k='",
    "Fields[blob] < 'k=w'",
    "Fields[blob] =~ /^k=/",
    "Fields[blob] =~ /k.v/",
    "Fields[blob] !~ /x/",
    # indexing
    "Fields[programname][1][0] == 'nova-api'",
    "Fields[programname][0][1] == NIL",
    "Fields[ports][0][1] > 8774",
    "Fields[ports][0][0] < 8775",
    "Fields[created_at] =~ /Z$/",
    "Fields[Type] =~ /^field named/",
    "Fields[active] != NIL",
    "Fields[code] =~ /^2/",
    # the Uuid text form
    "Uuid =~ /^5b1f0c9e-/",
    "Uuid > '5'",
    # precedence: && binds tighter than ||, both left-associative
    "TRUE || TRUE && FALSE",
    "FALSE && FALSE || TRUE",
    "Type == 'x' && Severity == 4 || Type == 'log'",
    "Type == 'log' || Type == 'x' && Severity == 0",
    "Severity == 4 && (Type == 'x' || Type == 'log')",
]

MORE_FALSE = [
    "Type == 'x' && (Severity == 4 || Type == 'log')",
    "(TRUE || TRUE) && FALSE",
    "Fields[programname][3] != NIL",
    "Fields[programname][0][1] != NIL",
    "Fields[absent] != 'x'",
    "Fields[absent] < 1",
    "Fields[absent] =~ /./",
    "Fields[absent] !~ /./",
    "Fields[absent] == FALSE",
    "Fields[absent][0][1] != NIL",
    # type mismatches are false whatever the operator
    "Fields[http_status] == '202'",
    "Fields[http_status] != '202'",
    "Fields[http_status] !~ /x/",
    "Fields[programname] == 5",
    "Fields[programname] != 5",
    "Fields[code] > 1",
    "Fields[programname] == TRUE",
    "Fields[active] == 'true'",
    "Fields[active] == 1",
    "Fields[active] != 'x'",
    "Fields[active] =~ /true/",
    "Fields[active] !~ /x/",
    "Fields[load] == TRUE",
    "Fields[blob] == 5",
    "Fields[blob] == TRUE",
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


@pytest.mark.parametrize("spec", ["Type == 'log' && TRUE", "FALSE || Type == 'log'"])
def test_partly_constant_matchers_still_evaluate(spec: str) -> None:
    pred = compile_matcher(spec)
    assert pred.always is None
    assert pred.spec == spec
    assert pred(MSG) is True
    assert pred(Message(type="other")) is False


# --- the newline quirk --------------------------------------------------------------------

def test_text_after_newline_is_ignored_and_reported() -> None:
    spec = "Type == 'log'\n&& Severity == 1"
    assert match(spec) is True  # Heka stops reading at the newline
    warnings = matcher_warnings(spec)
    assert len(warnings) == 1
    assert "newline" in warnings[0] and "Severity == 1" in warnings[0]


def test_nul_ends_the_matcher_too() -> None:
    spec = "Type == 'log'\0 && FALSE"
    assert match(spec) is True
    assert len(matcher_warnings(spec)) == 1


@pytest.mark.parametrize("spec", ["Type == 'log'", "Type == 'log'\n", "Type == 'log'\n  \n",
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

TRICKY = ["", "Instance spawned", "Instance spawned\n", "instance spawned", "spawned",
          "\nInstance", "xInstance", "ned", "ned\n", "a.b", "axb", "a/b", "a\\b", "a$", "^a",
          "a\nb", "a\n", "\n", "é", "éa", "aé", "a\tb", "{a}", "a{2}", "aa"]

PATTERNS = ["^Inst", "ned$", "^Instance spawned$", "spawned", "^", "$", "^$", "", "a\\.b",
            "^a\\.b$", "a.b", "^a/b", "a/b$", "a\\\\", "a\\\\$", "a\\$", "\\^a", "^a\\nb$", "a\\n$",
            "\\n", "^é", "é$", "a\\tb", "\\{a\\}", "a{2}", "^a$", "(?i)^instance", "^a|b",
            "^ned$", "Instance$", "^(Inst)", "^\\x41", "^a+", "^aa$", "a\\n"]


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
    ("^Inst", ".startswith('Inst')"),
    ("ned$", ".endswith('ned')"),
    ("^Instance spawned$", "== 'Instance spawned'"),
    ("spa", "'spa' in"),
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
