"""Heka's message matcher, Go dialect (docs/compatibility.md, "Message matcher"; Heka's
message/message_matcher_parser.y).

`compile_matcher(spec)` parses a `message_matcher` once and returns a predicate
`pred(msg) -> bool`. The router calls it for every message, so the expression is turned
into Python source and compiled with `compile()`: `Type == 'TEST' && Severity == 6`
becomes, in effect, `lambda m: m.type == 'TEST' and m.severity == 6.0`. Each predicate
has `always` (True / False / None) so the router can skip evaluating constant matchers,
`spec` (the text) and `source` (the generated Python, for debugging).

Rules worth knowing (and where this module deliberately differs from Heka's Go code):

* The lexer stops at the first newline (or NUL), as Heka's does; `matcher_warnings()`
  reports the ignored text so the config checker can show it.
* An empty (or blank) spec compiles to `MATCH_NONE`. Heka's parser rejects "" and the
  plugin then fails to start; the config checker warns instead.
* Heka's grammar is `spec := expr | spec expr`, so `A B` parses and only `B` is used,
  and an unknown capitalised word ends the input (`TRUE Bogus` ≡ `TRUE`). Both are
  syntax errors here, as is a malformed NUMBER (Heka logs it and uses 0).
* A string header against a NUMBER, or a numeric header against a STRING, is a syntax
  error: Heka's grammar has no rule for them (the `false` branch in its evaluator is
  unreachable).
* Type mismatches between a field and the literal are false, never an error. Heka
  answers `Fields[bool] == 'x'` / `== 5` / `=~ /x/` with "the bool is false", and
  `Fields[str] == TRUE` with `str == "TRUE"`; here all of these are false.
* A test that raises on a malformed message (Severity set to None, a str in an INTEGER
  field...) counts as false; the rest of the expression is still evaluated.
* Numeric comparisons use float64, like Go: `Timestamp` and INTEGER fields are converted
  with `float()` first, so results agree with Heka even above 2**53.
* `/^lit/`, `/lit$/`, `/^lit$/` and `/lit/` (lit free of metacharacters) run as
  `startswith` / `endswith` / `==` / `in`. RE2's `$` without `(?m)` only matches at the
  very end of the text, so these are exactly equivalent to the regex.

Speed sanity (2-core VM, CPython 3.11, a nova-compute log message, timeit incl. call; not asserted
anywhere): `Type == 'TEST' && Severity == 6` 0.12 µs, `Payload =~ /^Test/` 0.16 µs,
`Fields[foo] == 'bar' && Severity == 6` 0.28 µs, `Fields[missing] == NIL` 0.36 µs,
`Type =~ /[Tt]EST/ && Severity == 6` 1.4 µs (one RE2 call). The router never calls a
matcher whose `always` is True or False.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from typing import Any

from hekapy.collector.engine.message import BOOL, BYTES, DOUBLE, INTEGER, STRING, Message
from hekapy.collector.engine.regex import compile_regex

Predicate = Callable[[Message], bool]

__all__ = [
    "MATCH_ALL",
    "MATCH_NONE",
    "MatcherSyntaxError",
    "Predicate",
    "compile_matcher",
    "matcher_warnings",
]


class MatcherSyntaxError(ValueError):
    """A `message_matcher` that does not parse. `column` is 1-based (characters)."""

    def __init__(self, message: str, spec: str = "", column: int = 0) -> None:
        super().__init__(message)
        self.spec = spec
        self.column = column


def _match_all(msg: Message) -> bool:
    return True


def _match_none(msg: Message) -> bool:
    return False


MATCH_ALL: Predicate = _match_all
MATCH_NONE: Predicate = _match_none
MATCH_ALL.always = True  # type: ignore[attr-defined]
MATCH_ALL.spec = "TRUE"  # type: ignore[attr-defined]
MATCH_ALL.source = "True"  # type: ignore[attr-defined]
MATCH_NONE.always = False  # type: ignore[attr-defined]
MATCH_NONE.spec = "FALSE"  # type: ignore[attr-defined]
MATCH_NONE.source = "False"  # type: ignore[attr-defined]


# --- lexer --------------------------------------------------------------------------------

# Header name -> Python expression on the message `m`.
_STR_HEADERS = {"Uuid": "m.uuid_text", "Type": "m.type", "Logger": "m.logger",
                "Payload": "m.payload", "EnvVersion": "m.env_version",
                "Hostname": "m.hostname"}
# Go compares numeric headers as float64: int32 headers compare exactly as ints, the
# int64 Timestamp is rounded to float first. An unset Pid is 0.
_NUM_HEADERS = {"Timestamp": "float(m.timestamp)", "Severity": "m.severity",
                "Pid": "(m.pid or 0)"}

_NAMES_HINT = ("names are case-sensitive: Uuid Type Logger Payload EnvVersion Hostname "
               "Timestamp Severity Pid Fields[...] TRUE FALSE NIL")
_NUMBER_CHARS = frozenset("0123456789.e+-")
_DIGITS = frozenset("0123456789")

# Token kinds.
_EOF, _STRVAR, _NUMVAR, _FIELD, _TRUE, _FALSE, _NIL = range(7)
_RELOP, _REOP, _AND, _OR, _LPAREN, _RPAREN, _STRING, _NUMBER, _REGEX = range(7, 16)


class _Tok:
    __slots__ = ("col", "kind", "text", "value")

    def __init__(self, kind: int, value: Any, col: int, text: str) -> None:
        self.kind = kind
        self.value = value
        self.col = col
        self.text = text


def _cut(spec: str) -> int:
    """Where Heka's lexer stops: its getrune() returns 0 (end of input) for a newline,
    and a NUL is 0 already."""
    cut = len(spec)
    for ch in ("\n", "\0"):
        i = spec.find(ch)
        if 0 <= i < cut:
            cut = i
    return cut


def _show(text: str) -> str:
    """Quote a spec for an error message; control characters made visible."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class _Lexer:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.end = _cut(spec)
        self.text = spec[:self.end]
        self.pos = 0

    def error(self, col: int, what: str, hint: str = "") -> MatcherSyntaxError:
        msg = f"{what} at column {col} in {_show(self.spec)}"
        if hint:
            msg += f": {hint}"
        if self.end < len(self.spec) and col > self.end:
            ch = "newline" if self.spec[self.end] == "\n" else "NUL character"
            msg += (f" (the matcher ends at the {ch} at column {self.end + 1}; "
                    "Heka ignores the rest)")
        return MatcherSyntaxError(msg, self.spec, col)

    def next(self) -> _Tok:
        text = self.text
        n = len(text)
        i = self.pos
        while i < n and text[i] in " \t":
            i += 1
        col = i + 1
        if i >= n:
            self.pos = i
            return _Tok(_EOF, None, col, "")
        c = text[i]
        if "A" <= c <= "Z":
            return self._word(i)
        if "a" <= c <= "z":
            j = i
            while j < n and ("A" <= text[j] <= "Z" or "a" <= text[j] <= "z"):
                j += 1
            raise self.error(col, f"unknown name {text[i:j]!r}", _NAMES_HINT)
        if c in "+-":
            raise self.error(col, f"unexpected character {c!r}",
                             "numbers can't have a sign")
        if c in _DIGITS or c == ".":
            j = i
            while j < n and text[j] in _NUMBER_CHARS:
                j += 1
            s = text[i:j]
            self.pos = j
            try:
                value = float(s)
            except ValueError:
                raise self.error(col, f"invalid number {s!r}",
                                 "digits, '.', 'e', '+' and '-' only") from None
            if math.isinf(value):
                raise self.error(col, f"number {s!r} out of range")
            return _Tok(_NUMBER, value, col, s)
        nxt = text[i + 1] if i + 1 < n else ""
        if c in "=!":
            if nxt in "=~":
                self.pos = i + 2
                op = c + nxt
                return _Tok(_RELOP if nxt == "=" else _REOP, op, col, op)
            hint = "use '==' or '=~'" if c == "=" else "use '!=' or '!~'"
            raise self.error(col, f"unexpected character {c!r}", hint)
        if c in "<>":
            op = c + "=" if nxt == "=" else c
            self.pos = i + len(op)
            return _Tok(_RELOP, op, col, op)
        if c in "|&":
            if nxt != c:
                raise self.error(col, f"unexpected character {c!r}", f"use '{c}{c}'")
            self.pos = i + 2
            return _Tok(_OR if c == "|" else _AND, c + c, col, c + c)
        if c == "(":
            self.pos = i + 1
            return _Tok(_LPAREN, c, col, c)
        if c == ")":
            self.pos = i + 1
            return _Tok(_RPAREN, c, col, c)
        if c in "'\"/":
            return self._quoted(i)
        raise self.error(col, f"unexpected character {c!r}")

    def _word(self, i: int) -> _Tok:
        text = self.text
        n = len(text)
        j = i
        while j < n and ("A" <= text[j] <= "Z" or "a" <= text[j] <= "z"):
            j += 1
        word = text[i:j]
        col = i + 1
        self.pos = j
        if word in _STR_HEADERS:
            return _Tok(_STRVAR, word, col, word)
        if word in _NUM_HEADERS:
            return _Tok(_NUMVAR, word, col, word)
        if word == "TRUE":
            return _Tok(_TRUE, True, col, word)
        if word == "FALSE":
            return _Tok(_FALSE, False, col, word)
        if word == "NIL":
            return _Tok(_NIL, None, col, word)
        if word != "Fields":
            raise self.error(col, f"unknown name {word!r}", _NAMES_HINT)
        # Fields[name][fi][ai]: name is anything up to the first ']'; indices are digits.
        if j >= n or text[j] != "[":
            raise self.error(j + 1, "missing '['", "write Fields[name] with no space")
        parts: list[str] = []
        while j < n and text[j] == "[":
            if len(parts) == 3:
                raise self.error(j + 1, "too many indices",
                                 "at most Fields[name][field_index][array_index]")
            close = text.find("]", j + 1)
            if close < 0:
                raise self.error(j + 1, "unterminated '[' in Fields[...]")
            part = text[j + 1:close]
            if not part:
                raise self.error(j + 1, "empty name or index in Fields[...]")
            if parts and not all(ch in _DIGITS for ch in part):
                raise self.error(j + 2, f"index {part!r} in Fields[...] is not a number",
                                 "indices are decimal digits")
            parts.append(part)
            j = close + 1
        self.pos = j
        name = parts[0]
        fi = int(parts[1]) if len(parts) > 1 else 0
        ai = int(parts[2]) if len(parts) > 2 else 0
        return _Tok(_FIELD, (name, fi, ai), col, text[i:j])

    def _quoted(self, i: int) -> _Tok:
        # Strings and regexes share one escape rule: a backslash followed by the closing
        # quote yields the quote; any other backslash pair is kept as both characters.
        text = self.text
        n = len(text)
        q = text[i]
        j = i + 1
        buf: list[str] = []
        while True:
            if j >= n:
                what = "regular expression" if q == "/" else "string"
                raise self.error(i + 1, f"unterminated {what} starting")
            ch = text[j]
            if ch == "\\" and j + 1 < n:
                nx = text[j + 1]
                buf.append(q if nx == q else ch + nx)
                j += 2
                continue
            if ch == "\\":  # a lone backslash at the end: unterminated
                j += 1
                continue
            j += 1
            if ch == q:
                break
            buf.append(ch)
        self.pos = j
        value = "".join(buf)
        if q != "/":
            return _Tok(_STRING, value, i + 1, text[i:j])
        try:
            rx = compile_regex(value)
        except ValueError as e:
            raise self.error(i + 1, f"invalid regular expression /{value}/", str(e)) from None
        return _Tok(_REGEX, (value, rx), i + 1, text[i:j])


# --- parser -------------------------------------------------------------------------------
# AST: ("const", bool) | ("and", l, r) | ("or", l, r)
#      | ("str", header, op, kind, value) | ("num", header, op, value)
#      | ("field", (name, fi, ai), op, kind, value)
# kind is "string", "number", "regex", "bool" or "nil".

_KIND_OF = {_STRING: "string", _NUMBER: "number", _REGEX: "regex", _TRUE: "bool",
            _FALSE: "bool", _NIL: "nil"}
_DESC = {_STRING: "a string ('...' or \"...\")", _NUMBER: "a number",
         _REGEX: "a regular expression /.../"}


class _Parser:
    def __init__(self, spec: str) -> None:
        self.lex = _Lexer(spec)
        self.tok = self.lex.next()

    def advance(self) -> _Tok:
        t = self.tok
        self.tok = self.lex.next()
        return t

    def fail(self, expected: str) -> MatcherSyntaxError:
        t = self.tok
        what = "end of input" if t.kind == _EOF else f"token {t.text!r}"
        return self.lex.error(t.col, f"unexpected {what}", f"expected {expected}")

    def parse(self) -> tuple:
        node = self.parse_or()
        if self.tok.kind != _EOF:
            if self.tok.kind == _RPAREN:
                raise self.fail("'&&', '||' or end of input (unbalanced ')')")
            raise self.fail("'&&', '||' or end of input")
        return node

    def parse_or(self) -> tuple:
        node = self.parse_and()
        while self.tok.kind == _OR:
            self.advance()
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self) -> tuple:
        node = self.parse_primary()
        while self.tok.kind == _AND:
            self.advance()
            node = ("and", node, self.parse_primary())
        return node

    def parse_primary(self) -> tuple:
        t = self.tok
        k = t.kind
        if k == _LPAREN:
            self.advance()
            node = self.parse_or()
            if self.tok.kind != _RPAREN:
                raise self.fail("')' or an operator ('&&', '||')")
            self.advance()
            return node
        if k in (_TRUE, _FALSE):
            self.advance()
            return ("const", t.value)
        if k == _STRVAR:
            self.advance()
            op = self.operator(t.text)
            if op.kind == _RELOP:
                return ("str", t.value, op.value, "string", self.literal(op, (_STRING,)))
            return ("str", t.value, op.value, "regex", self.literal(op, (_REGEX,)))
        if k == _NUMVAR:
            self.advance()
            if self.tok.kind == _REOP:
                raise self.fail(f"a comparison operator (regular expressions can't be used "
                                f"on the numeric header {t.text})")
            op = self.operator(t.text)
            return ("num", t.value, op.value, self.literal(op, (_NUMBER,)))
        if k == _FIELD:
            self.advance()
            op = self.operator("Fields[...]")
            v = self.tok
            if op.kind == _REOP:
                return ("field", t.value, op.value, "regex", self.literal(op, (_REGEX,)))
            if v.kind == _NIL:
                if op.value not in ("==", "!="):
                    raise self.fail("a string or a number (NIL only works with == and !=)")
            elif v.kind in (_TRUE, _FALSE):
                if op.value != "==":
                    raise self.fail("a string or a number (TRUE/FALSE only work with ==)")
            elif v.kind not in (_STRING, _NUMBER):
                raise self.fail(f"a string, a number, TRUE, FALSE or NIL after "
                                f"'{op.value}'")
            self.advance()
            return ("field", t.value, op.value, _KIND_OF[v.kind], v.value)
        if k == _NIL:
            raise self.fail("a test (NIL only works as Fields[name] == NIL or != NIL)")
        raise self.fail("a test, TRUE, FALSE or '('")

    def operator(self, subject: str) -> _Tok:
        if self.tok.kind not in (_RELOP, _REOP):
            raise self.fail(f"an operator after {subject} (==, !=, <, <=, >, >=, =~, !~)")
        return self.advance()

    def literal(self, op: _Tok, kinds: tuple[int, ...]) -> Any:
        if self.tok.kind not in kinds:
            expected = f"{_DESC[kinds[0]]} after '{op.value}'"
            if self.tok.kind == _NIL:
                expected += " (NIL only works with Fields[...])"
            raise self.fail(expected)
        return self.advance().value


def _fold(node: tuple) -> tuple:
    """Constant-fold TRUE/FALSE so the router can skip always-true/false matchers.
    Tests have no side effects, so dropping one never changes a result."""
    kind = node[0]
    if kind not in ("and", "or"):
        return node
    left, right = _fold(node[1]), _fold(node[2])
    absorbing = kind == "or"  # TRUE absorbs ||, FALSE absorbs &&
    for a, b in ((left, right), (right, left)):
        if a[0] == "const":
            return a if a[1] is absorbing else b
    return (kind, left, right)


# --- regex analysis -----------------------------------------------------------------------

_META = frozenset("\\.+*?()|[]{}^$")
# RE2 escapes for control characters that are single literal characters.
_CTRL_ESCAPES = {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}
_PUNCT = frozenset(string.punctuation)


def _literal(pattern: str) -> str | None:
    """The text `pattern` matches if it is a plain literal (no metacharacters; escaped
    punctuation and \\t-style escapes allowed), else None. Conservative: anything
    unusual returns None and keeps the real regex."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            d = pattern[i + 1]
            if d in _CTRL_ESCAPES:
                out.append(_CTRL_ESCAPES[d])
            elif d in _PUNCT:
                out.append(d)
            else:
                return None
            i += 2
        elif c in _META:
            return None
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _classify(pattern: str) -> tuple[str, str]:
    """("in"|"prefix"|"suffix"|"exact", literal) when a string test is exactly
    equivalent to the RE2 search (unanchored; `^`/`$` = start/end of text), else
    ("regex", pattern). Escapes are read left to right, so `abc\\$` is literal and
    `abc\\\\$` is "abc\\" anchored at the end."""
    lit = _literal(pattern)
    if lit is not None:
        return "in", lit
    if pattern.startswith("^"):
        lit = _literal(pattern[1:])
        if lit is not None:
            return "prefix", lit
        if pattern.endswith("$"):
            lit = _literal(pattern[1:-1])
            if lit is not None:
                return "exact", lit
    if pattern.endswith("$"):
        lit = _literal(pattern[:-1])
        if lit is not None:
            return "suffix", lit
    return "regex", pattern


def _optimised(how: str, lit: str | bytes, x: str) -> str:
    if how == "in":
        return f"({lit!r} in {x})"
    if how == "prefix":
        return f"{x}.startswith({lit!r})"
    if how == "suffix":
        return f"{x}.endswith({lit!r})"
    return f"({x} == {lit!r})"


try:  # google-re2's internals: one C++ call instead of a Python generator per search
    import re2 as _re2lib

    _UNANCHORED: Any = _re2lib._Anchor.UNANCHORED
except (ImportError, AttributeError):  # pragma: no cover - other google-re2 versions
    _UNANCHORED = None


def _utf8(s: str) -> bytes:
    try:
        return s.encode()
    except UnicodeEncodeError:
        pass
    try:  # lone surrogates from a surrogateescape decode: give RE2 the original bytes
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace")


def _searcher(rx: Any, text: bool) -> Callable[[Any], bool]:
    """A bool-returning unanchored search for str (`text`) or bytes values."""
    raw = getattr(getattr(rx, "_regexp", None), "Match", None)
    if raw is None or _UNANCHORED is None:  # pragma: no cover - other google-re2 versions
        search = rx.search
        return lambda v: search(v) is not None
    anchor = _UNANCHORED
    if text:
        def search_str(s: str) -> bool:
            b = _utf8(s)
            return raw(anchor, b, 0, len(b))[0][0] >= 0
        return search_str

    def search_bytes(b: bytes) -> bool:
        return raw(anchor, b, 0, len(b))[0][0] >= 0
    return search_bytes


# --- code generation ----------------------------------------------------------------------

_STRINGISH = f"t == {STRING} or t == {BYTES}"
_NUMERIC = f"t == {INTEGER} or t == {DOUBLE}"
_KNOWN_TYPES = (STRING, BYTES, INTEGER, DOUBLE, BOOL)


class _Gen:
    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.defs: list[str] = []
        self.leaves: list[str] = []  # source of every leaf test, for the safe evaluator

    def bind(self, prefix: str, obj: Any) -> str:
        name = f"_{prefix}{len(self.ns)}"
        self.ns[name] = obj
        return name

    def regex_test(self, pattern: str, rx: Any, x: str, text: bool) -> str:
        """Expression testing whether the regex finds a match in `x` (str or bytes)."""
        how, lit = _classify(pattern)
        if how != "regex":
            return _optimised(how, lit if text else lit.encode(), x)
        if not text:
            rx = compile_regex(pattern.encode())
        return f"{self.bind('rx', _searcher(rx, text))}({x})"

    def expr(self, node: tuple) -> str:
        kind = node[0]
        if kind == "const":
            return repr(node[1])
        if kind in ("and", "or"):
            return f"({self.expr(node[1])} {kind} {self.expr(node[2])})"
        if kind == "str":
            _, header, op, vkind, value = node
            x = _STR_HEADERS[header]
            if vkind == "string":
                src = f"({x} {op} {value!r})"
            else:
                test = self.regex_test(value[0], value[1], x, text=True)
                src = test if op == "=~" else f"(not {test})"
        elif kind == "num":
            _, header, op, value = node
            src = f"({_NUM_HEADERS[header]} {op} {value!r})"
        else:
            src = self.field(node) + "(m)"
        self.leaves.append(src)
        return src

    def field(self, node: tuple) -> str:
        _, (name, fi, ai), op, vkind, value = node
        fn = self.bind("field", None)
        # A missing field / field index / array index: only `== NIL` is true.
        missing = vkind == "nil" and op == "=="
        if vkind == "nil":
            body = ["return False"] if op == "==" else [f"return t in {_KNOWN_TYPES!r}"]
        elif vkind == "bool":
            body = [f"return t == {BOOL} and v == {value!r}"]
        elif vkind == "number":
            body = [f"if {_NUMERIC}:", f"    return float(v) {op} {value!r}", "return False"]
        else:
            if vkind == "string":
                s_test, b_test = f"v {op} {value!r}", f"v {op} {value.encode()!r}"
            else:
                pattern, rx = value
                s_test = self.regex_test(pattern, rx, "v", text=True)
                b_test = self.regex_test(pattern, rx, "v", text=False)
                if op == "!~":
                    s_test, b_test = f"not {s_test}", f"not {b_test}"
            body = [f"if {_STRINGISH}:",
                    "    if isinstance(v, str):",
                    f"        return {s_test}",
                    "    if isinstance(v, (bytes, bytearray, memoryview)):",
                    "        v = bytes(v)",
                    f"        return {b_test}",
                    "return False"]
        lines = [f"def {fn}(m):"]
        if fi:
            lines.append(f"    n = {fi}")
        lines += ["    for f in m.fields:",
                  f"        if f.name == {name!r}:"]
        if fi:  # [fi] selects the fi-th field with that name
            lines += ["            if n:", "                n -= 1", "                continue"]
        lines += ["            vals = f.values",
                  f"            if len(vals) <= {ai}:",
                  f"                return {missing}",
                  "            t = f.value_type",
                  f"            v = vals[{ai}]"]
        lines += ["            " + b for b in body]
        lines.append(f"    return {missing}")
        self.defs.append("\n".join(lines))
        return fn


# What a malformed message value can raise. Anything else (NameError...) is a bug here
# and must not be silently turned into "no match".
_VALUE_ERRORS = (TypeError, ValueError, AttributeError, LookupError)


def _safe_tree(node: tuple, leaf: Callable[[], Predicate]) -> Predicate:
    """The same expression evaluated leaf by leaf, a failing leaf being false. Only used
    when the fast predicate raised (a malformed message, e.g. Severity set to None)."""
    kind = node[0]
    if kind == "const":
        value = node[1]
        return lambda m: value
    if kind == "and":
        left, right = _safe_tree(node[1], leaf), _safe_tree(node[2], leaf)
        return lambda m: left(m) and right(m)
    if kind == "or":
        left, right = _safe_tree(node[1], leaf), _safe_tree(node[2], leaf)
        return lambda m: left(m) or right(m)
    test = leaf()

    def guarded(m: Message) -> bool:
        try:
            return bool(test(m))
        except _VALUE_ERRORS:
            return False
    return guarded


def compile_matcher(spec: str | None) -> Predicate:
    """Compile a Heka `message_matcher` into `pred(msg) -> bool`.

    Raises MatcherSyntaxError (a ValueError) naming the column and token at fault.
    Empty / blank specs give MATCH_NONE, specs that fold to TRUE give MATCH_ALL.
    The predicate has `always` (True, False or None), `spec` and `source`.
    """
    if spec is None or not spec.strip() or not spec[:_cut(spec)].strip(" \t"):
        return MATCH_NONE
    tree = _fold(_Parser(spec).parse())
    if tree[0] == "const":
        return MATCH_ALL if tree[1] else MATCH_NONE
    gen = _Gen()
    expr = gen.expr(tree)
    leaves = iter(gen.leaves)
    source = "\n\n".join([*gen.defs,
                          "def _matcher(m):\n"
                          "    try:\n"
                          f"        return {expr}\n"
                          "    except _VALUE_ERRORS:\n"
                          "        return _safe(m)\n"])
    ns = gen.ns
    ns["_VALUE_ERRORS"] = _VALUE_ERRORS
    code = compile(source, f"<message_matcher {spec[:60]!r}>", "exec")
    exec(code, ns)  # defines the field helpers and _matcher in ns

    def next_leaf() -> Predicate:
        return eval(compile(f"lambda m: {next(leaves)}", "<matcher leaf>", "eval"), ns)

    ns["_safe"] = _safe_tree(tree, next_leaf)
    pred = ns["_matcher"]
    pred.always = None
    pred.spec = spec
    pred.source = source
    return pred


def matcher_warnings(spec: str | None) -> list[str]:
    """Things about `spec` worth telling the operator that are not syntax errors: text
    after a newline (or NUL), which Heka's lexer silently ignores."""
    if not spec:
        return []
    cut = _cut(spec)
    rest = spec[cut + 1:]
    if cut >= len(spec) or not rest.strip():
        return []
    ch = "newline" if spec[cut] == "\n" else "NUL character"
    shown = rest.strip()
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return [f"the matcher ends at the {ch} at column {cut + 1}; the rest is ignored "
            f"(as Heka does): {_show(shown)}"]
