"""The alarm definitions LMA's Puppet generated as Lua modules, read without running Lua:
`lma_alarms_<afd>.lua` (`local alarms = {...} return alarms`), `gse_<level>_topology.lua`
(`clusters = {...}` in the module table) and `gse_policies.lua` (`local policies =
{ name = { gse_policy.new({...}), ... } }`), from a sandbox's `module_directory`
(templates: https://github.com/openstack/fuel-plugin-lma-collector,
deployment_scripts/puppet/modules/lma_collector/templates/).

What is read is Lua data: table constructors, strings, numbers, booleans, nil, names
(a global of the module's own environment, which is empty, so nil: LMA's template
wrote `group_by` names unquoted, and Lua read them as nil, hence no grouping; that is
kept), and calls of `gse_policy.new` (whose argument is the policy step). Statements
are `local x = ...`, `x = ...`, `setfenv(...)`, `require(...)`, function definitions
(skipped) and `return x`. Anything else is an error naming the file and line.

The tables are turned into the YAML layout, with the string-to-number coercions LMA's
Lua did (`threshold + 0`), and checked by definitions.Checker.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hekapy.filters.alarming.definitions import (
    AlarmDef,
    Checker,
    ClusterDef,
    DefinitionError,
    PolicyDef,
)
from hekapy.filters.alarming.matching import lua_tonumber


class LuaTable(dict):
    """A Lua table: positional items at 1..n, named ones by name."""

    def items_list(self) -> list[Any]:
        return [self[i] for i in range(1, len(self) + 1) if i in self]

    def named(self) -> dict[str, Any]:
        return {k: v for k, v in self.items() if isinstance(k, str)}


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>--\[(?P<ceq>=*)\[.*?\](?P=ceq)\]|--[^\n]*)
  | (?P<long>\[(?P<leq>=*)\[.*?\](?P=leq)\])
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\.\.\.|\.\.|==|~=|<=|>=|[-+*/%^#<>=(){}\[\];:,.])
""", re.VERBOSE | re.DOTALL)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "\n": "\n"}


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt.isdigit():
            digits = nxt
            while len(digits) < 3 and body[i + 1 + len(digits):i + 2 + len(digits)].isdigit():
                digits = body[i + 1:i + 2 + len(digits)]
            out.append(chr(int(digits)))
            i += 1 + len(digits)
        else:
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


class LuaDataError(ValueError):
    pass


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens: list[tuple[str, str, int]] = []
        pos, line = 0, 1
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise LuaDataError(f"{source}, line {line}: unexpected {text[pos]!r}")
            kind = m.lastgroup or ""
            if kind not in ("space", "comment"):
                if kind == "long":
                    kind = "string"
                self.tokens.append((kind, m.group(0), line))
            line += m.group(0).count("\n")
            pos = m.end()
        self.i = 0
        self.env: dict[str, Any] = {}  # the module's globals (setfenv's table)
        self.locals: dict[str, Any] = {}
        self.returned: Any = None

    # tokens -------------------------------------------------------------------------------
    def peek(self, offset: int = 0) -> tuple[str, str, int]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("eof", "", self.last_line)

    @property
    def last_line(self) -> int:
        return self.tokens[-1][2] if self.tokens else 1

    def take(self, text: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if text is not None and tok[1] != text:
            self.fail(f"expected {text!r}", tok)
        self.i += 1
        return tok

    def fail(self, message: str, tok: tuple[str, str, int] | None = None) -> None:
        tok = tok or self.peek()
        found = "the end" if tok[0] == "eof" else repr(tok[1])
        raise LuaDataError(f"{self.source}, line {tok[2]}: {message}, found {found} "
                           "(only Lua data tables are read natively)")

    # statements ---------------------------------------------------------------------------
    def module(self) -> None:
        while self.peek()[0] != "eof":
            kind, text, _ = self.peek()
            if text == ";":
                self.take()
            elif text == "local" and self.peek(1)[1] == "function":
                self.take()
                self.skip_function()
            elif text == "local":
                self.take()
                name = self.take()[1]
                self.take("=")
                self.locals[name] = self.expression()
            elif text == "function":
                self.skip_function()
            elif text == "return":
                self.take()
                self.returned = self.expression()
            elif kind == "name" and self.peek(1)[1] == "=":
                self.take()
                self.take()
                self.env[text] = self.expression()
            elif kind == "name" and (self.peek(1)[1] == "(" or self.peek(1)[0] == "string"):
                self.expression()  # setfenv(1, M), require 'x'
            else:
                self.fail("expected a statement")

    def skip_function(self) -> None:
        self.take("function")
        depth = 1
        while depth:
            kind, text, _ = self.take()
            if kind == "eof":
                self.fail("unfinished function")
            if kind == "name" and text in ("function", "if", "do"):
                depth += 1  # `for`/`while` bodies open with `do`
            elif kind == "name" and text == "end":
                depth -= 1

    # expressions ---------------------------------------------------------------------------
    def expression(self) -> Any:
        kind, text, _ = self.peek()
        if text == "{":
            return self.table()
        if kind == "string":
            self.take()
            return _unescape(text[1:-1]) if text[0] in "'\"" else re.sub(
                r"^\[=*\[\n?|\]=*\]$", "", text)
        if kind == "number" or (text == "-" and self.peek(1)[0] == "number"):
            sign = -1 if text == "-" else 1
            if text == "-":
                self.take()
            value = lua_tonumber(self.take()[1])
            return sign * value if value is not None else None
        if text in ("true", "false"):
            self.take()
            return text == "true"
        if text == "nil":
            self.take()
            return None
        if kind == "name":
            return self.name_expression()
        self.fail("expected a value")
        return None

    def name_expression(self) -> Any:
        path = [self.take()[1]]
        while self.peek()[1] == "." and self.peek(1)[0] == "name":
            self.take()
            path.append(self.take()[1])
        nxt = self.peek()
        if nxt[1] == "(" or nxt[0] == "string" or nxt[1] == "{":
            args = self.call_arguments()
            dotted = ".".join(path)
            if dotted == "gse_policy.new" and len(args) == 1:
                return args[0]
            if dotted in ("require", "setfenv"):
                return None
            self.fail(f"call of {dotted} is not data", nxt)
        if len(path) == 1:
            # A local of this file, else a global of the module's (empty) environment.
            return self.locals.get(path[0], self.env.get(path[0]))
        return None

    def call_arguments(self) -> list[Any]:
        if self.peek()[1] != "(":
            return [self.expression()]
        self.take("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.expression())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return args

    def table(self) -> LuaTable:
        self.take("{")
        t = LuaTable()
        n = 0
        while self.peek()[1] != "}":
            kind, text, _ = self.peek()
            if text == "[":
                self.take()
                key = self.expression()
                self.take("]")
                self.take("=")
                value = self.expression()
                if key is not None and value is not None:
                    t[key] = value
            elif kind == "name" and self.peek(1)[1] == "=":
                self.take()
                self.take("=")
                value = self.expression()
                if value is not None:
                    t[text] = value
            else:
                n += 1
                value = self.expression()
                if value is not None:
                    t[n] = value
            if self.peek()[1] in (",", ";"):
                self.take()
            elif self.peek()[1] != "}":
                self.fail("expected ',' or '}'")
        self.take("}")
        return t


def find_module(name: str, module_directory: str) -> Path:
    """Where Heka's `require(name)` finds a Lua module: `<dir>/<name>.lua` in the first
    of the `;`-separated directories that has it."""
    relative = name.replace(".", "/") + ".lua"
    dirs = [d for d in module_directory.split(";") if d]
    for d in dirs:
        p = Path(d) / relative
        if p.is_file():
            return p
    raise FileNotFoundError(f"Lua module {name!r} not found ({relative} in "
                            f"{', '.join(dirs) or 'no module_directory'})")


def module_dirs(value: str, share_dir: str) -> str:
    """A sandbox's module_directory, relative entries under share_dir (Heka's rule; unset:
    <share_dir>/lua_modules)."""
    dirs = [d for d in value.split(";") if d] or ["lua_modules"]
    return ";".join(d if Path(d).is_absolute() else str(Path(share_dir) / d) for d in dirs)


def read_module(path: str | os.PathLike) -> _Parser:
    p = _Parser(Path(path).read_text(encoding="utf-8"), str(path))
    p.module()
    return p


# --- to the YAML layout ----------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """Lua tables as lists (1..n) or dicts."""
    if isinstance(value, LuaTable):
        named = value.named()
        if named:
            return {k: _plain(v) for k, v in named.items()}
        return [_plain(v) for v in value.items_list()]
    return value


def _coerced(value: Any) -> Any:
    """A number written as a Lua string, as `x + 0` read it (anything else as it is,
    for the checker to name)."""
    if isinstance(value, str):
        number = lua_tonumber(value)
        return value if number is None else number
    return value


def read_alarms(path: str | os.PathLike) -> tuple[AlarmDef, ...]:
    """An `lma_alarms_*.lua` module: its alarms, in order."""
    parser = read_module(path)
    alarms = _plain(parser.returned)
    checker = Checker(str(path))
    if not isinstance(alarms, list):
        raise DefinitionError(str(path), ["the module returns no list of alarms"])
    out = []
    for i, a in enumerate(alarms):
        if isinstance(a, dict):
            for r in (a.get("trigger") or {}).get("rules") or []:
                if isinstance(r, dict):
                    for key in ("threshold", "window", "periods"):
                        if key in r:
                            r[key] = _coerced(r[key])
                    r.setdefault("fields", {})
                    if r.get("fields") == []:
                        r["fields"] = {}
        alarm = checker.alarm(a, f"alarms[{i}]")
        if alarm is not None:
            out.append(alarm)
    checker.done()
    return tuple(out)


def read_policies(path: str | os.PathLike) -> dict[str, tuple[PolicyDef, ...]]:
    """`gse_policies.lua`: its `policies` table."""
    parser = read_module(path)
    policies = _plain(parser.locals.get("policies", parser.env.get("policies")))
    if not isinstance(policies, dict):
        raise DefinitionError(str(path), ["the module has no `policies` table"])
    checker = Checker(str(path))
    out = {}
    for name, steps in policies.items():
        for step in steps if isinstance(steps, list) else []:
            for r in ((step or {}).get("trigger") or {}).get("rules") or []:
                if isinstance(r, dict) and "threshold" in r:
                    r["threshold"] = _coerced(r["threshold"])
        out[name] = checker.policy(steps, f"policies.{name}")
    checker.done()
    return out


def read_topology(path: str | os.PathLike, policies: dict[str, tuple[PolicyDef, ...]]
                  ) -> dict[str, ClusterDef]:
    """`gse_<level>_topology.lua`: its `clusters`, with their policies."""
    parser = read_module(path)
    clusters = _plain(parser.env.get("clusters", parser.locals.get("clusters")))
    if not isinstance(clusters, dict):
        raise DefinitionError(str(path), ["the module has no `clusters` table"])
    checker = Checker(str(path))
    out = {}
    for name, c in clusters.items():
        if isinstance(c, dict):
            if c.get("group_by") == "":
                c.pop("group_by")
            for key in ("members", "hints"):
                if c.get(key) == {}:
                    c[key] = []
        cluster = checker.gse_cluster(name, c, f"clusters.{name}", policies)
        if cluster is not None:
            out[name] = cluster
    checker.done()
    return out
