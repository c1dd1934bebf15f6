"""Field value expressions of alarm rules (`fields: {fs: '!= /var/log && !~ ceph%-%d+$'}`)
and Lua patterns, with the semantics of LMA's value_matching.lua
(https://github.com/openstack/fuel-plugin-lma-collector, deployment_scripts/puppet/
modules/lma_collector/files/plugins/common/value_matching.lua):

- an expression without an operator is an equality: the field's text equals it, or the
  field is a number equal to it read as a number;
- otherwise it is comparisons joined by `&&` and `||` (`&&` binds tighter). If every
  operand is a number (`== 5 || > 10`), the field is read as a number (a field that is
  no number matches nothing) and compared with `==`, `!=`, `<`, `<=`, `>`, `>=`;
  else the operands are text (bare words or "double-quoted") compared with `==`,
  `!=`, `=~` (the field contains a match of the Lua pattern) and `!~` (it does not);
- an operator left out means `==`; an expression that fits neither form is an error.

Lua patterns (https://www.lua.org/manual/5.1/manual.html#5.4.1) are translated to
Python regular expressions; `%b` and `%f`, which have no equivalent, are an error.
"""

from __future__ import annotations

import re
from typing import Any

from hekapy.collector.engine.alarm_status import lua_tostring


class ExpressionError(ValueError):
    pass


# --- Lua patterns -----------------------------------------------------------------------

_CLASSES = {
    "a": "A-Za-z", "c": "\\x00-\\x1f\\x7f", "d": "0-9", "l": "a-z",
    "p": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"), "s": " \\t\\n\\r\\f\\v",
    "u": "A-Z", "w": "A-Za-z0-9", "x": "0-9A-Fa-f", "z": "\\x00",
}


def _class(letter: str, in_set: bool) -> str | None:
    """A %-class as regex text: inside a set the bare ranges, outside a [...]; None
    for a letter that is no class (then `%x` is the character x)."""
    body = _CLASSES.get(letter.lower())
    if body is None:
        return None
    if letter.isupper():
        if in_set:
            raise ExpressionError(f"%{letter} inside a set has no regular-expression "
                                  "equivalent here")
        return f"[^{body}]"
    return body if in_set else f"[{body}]"


def lua_pattern(pattern: str) -> re.Pattern[str]:
    """A Lua pattern as a compiled regular expression (for `search`)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    if pattern.startswith("^"):
        out.append("\\A")
        i = 1
    groups = 0
    while i < n:
        c = pattern[i]
        if c == "$" and i == n - 1:
            out.append("\\Z")
            i += 1
            continue
        if c == "(":
            if i + 1 < n and pattern[i + 1] == ")":
                raise ExpressionError("position captures () are not supported")
            groups += 1
            out.append("(")
            i += 1
            continue
        if c == ")":
            out.append(")")
            i += 1
            continue
        # One single-character class, then its quantifier.
        if c == "%":
            if i + 1 >= n:
                raise ExpressionError("pattern ends with '%'")
            nxt = pattern[i + 1]
            if nxt in "bf":
                raise ExpressionError(f"%{nxt} has no regular-expression equivalent")
            if nxt.isdigit():
                if int(nxt) == 0 or int(nxt) > groups:
                    raise ExpressionError(f"invalid capture reference %{nxt}")
                out.append(f"(?:\\{nxt})")
                i += 2
                continue
            item = _class(nxt, False) or re.escape(nxt)
            i += 2
        elif c == "[":
            item, i = _set(pattern, i)
        elif c == ".":
            item = "."
            i += 1
        else:
            item = re.escape(c)
            i += 1
        if i < n and pattern[i] in "*+-?":
            item += {"*": "*", "+": "+", "-": "*?", "?": "?"}[pattern[i]]
            i += 1
        out.append(item)
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as e:
        raise ExpressionError(f"invalid pattern {pattern!r}: {e}") from None


def _set(pattern: str, start: int) -> tuple[str, int]:
    i = start + 1
    negate = i < len(pattern) and pattern[i] == "^"
    if negate:
        i += 1
    parts: list[str] = []
    first = True
    while True:
        if i >= len(pattern):
            raise ExpressionError(f"malformed pattern {pattern!r} (missing ']')")
        c = pattern[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "%":
            if i + 1 >= len(pattern):
                raise ExpressionError(f"malformed pattern {pattern!r}")
            nxt = pattern[i + 1]
            parts.append(_class(nxt, True) or re.escape(nxt))
            i += 2
        elif i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            parts.append(f"{re.escape(c)}-{re.escape(pattern[i + 2])}")
            i += 3
        else:
            parts.append(re.escape(c))
            i += 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]", i


# --- numbers as Lua reads them ------------------------------------------------------------

_LUA_DECIMAL = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*\Z")
_LUA_HEX = re.compile(r"\s*0[xX][0-9a-fA-F]+\s*\Z")


def lua_tonumber(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        return None
    if _LUA_HEX.match(value):
        return float(int(value.strip(), 16))
    if _LUA_DECIMAL.match(value):
        return float(value)
    return None


# --- expressions ---------------------------------------------------------------------------

_OPERATOR = re.compile(r"==|!=|=~|!~|<=|>=|<|>|\|\||&&")
# value_matching.lua's Number: hex digits, optionally a "." or "," and more of them.
_NUMBER = re.compile(r"-?[0-9A-Fa-f]+(?:[.,][0-9A-Fa-f]+)?")
_NUMERIC_OPS = ("==", "!=", "<=", ">=", ">", "<")
_TEXT_OPS = ("==", "!=", "=~", "!~")
_SPACE = " \t\n\r\f\v"

Term = tuple[str, Any]  # (operator, operand)
Tree = list[list[Term]]  # alternatives (||) of conjunctions (&&)


def _terms(text: str, numeric: bool) -> Tree | None:
    """The expression as OR-of-ANDs, or None when it is not of that kind."""
    ops = _NUMERIC_OPS if numeric else _TEXT_OPS
    pos, n = 0, len(text)
    tree: Tree = [[]]

    def skip(p: int) -> int:
        while p < n and text[p] in _SPACE:
            p += 1
        return p

    while True:
        pos = skip(pos)
        op = next((o for o in ops if text.startswith(o, pos)), "==")
        if text.startswith(op, pos):
            pos = skip(pos + len(op))
        operand: Any
        if numeric:
            m = _NUMBER.match(text, pos)
            if not m:
                return None
            operand = lua_tonumber(m.group(0))
            pos = m.end()
        else:
            end = text.find('"', pos + 1) if pos < n and text[pos] == '"' else -1
            if end > pos + 1:  # "quoted" (one character at least)
                operand = text[pos + 1:end]
                pos = end + 1
            else:  # a bare word: up to the next space
                start = pos
                while pos < n and text[pos] not in _SPACE:
                    pos += 1
                if pos == start:
                    return None
                operand = text[start:pos]
            if op in ("=~", "!~"):
                operand = lua_pattern(operand)
        tree[-1].append((op, operand))
        pos = skip(pos)
        if pos == n:
            return tree
        if text.startswith("&&", pos):
            pos += 2
        elif text.startswith("||", pos):
            pos += 2
            tree.append([])
        else:
            return None


class ValueMatcher:
    """One rule field's expression, compiled."""

    __slots__ = ("expression", "numeric", "tree")

    def __init__(self, expression: str) -> None:
        if not isinstance(expression, str):
            expression = lua_tostring(expression)
        self.expression = expression
        self.tree: Tree | None = None
        self.numeric = False
        if _OPERATOR.search(expression):
            self.tree = _terms(expression, True)
            self.numeric = self.tree is not None
            if self.tree is None:
                self.tree = _terms(expression, False)
            if self.tree is None:
                raise ExpressionError(f"invalid expression {expression!r}")
        elif not expression.strip(_SPACE):
            raise ExpressionError("the expression is empty")

    def matches(self, value: Any) -> bool:
        if self.tree is None:
            if isinstance(value, str):
                return value == self.expression
            number = lua_tonumber(self.expression)
            return number is not None and not isinstance(value, bool) and value == number
        if self.numeric:
            value = lua_tonumber(value)
            if value is None:
                return False
        return any(all(_compare(value, op, operand) for op, operand in conjunction)
                   for conjunction in self.tree)


def _compare(value: Any, op: str, operand: Any) -> bool:
    if op == "==":
        return bool(value == operand)
    if op == "!=":
        return bool(value != operand)
    if op in ("=~", "!~"):
        text = lua_tostring(value) if isinstance(value, (int, float)) else value
        if not isinstance(text, str):
            return False
        found = operand.search(text) is not None
        return found if op == "=~" else not found
    # Ordering: numbers with numbers, text with text (Lua raised an error otherwise).
    if operand is None or isinstance(value, bool) or (
            isinstance(value, str) != isinstance(operand, str)):
        return False
    if op == "<":
        return bool(value < operand)
    if op == "<=":
        return bool(value <= operand)
    if op == ">":
        return bool(value > operand)
    return bool(value >= operand)
