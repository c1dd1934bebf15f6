"""The Lua runtime behind Heka's sandbox plugins (docs/compatibility.md, "Lua sandbox").

One `LuaSandbox` is one Lua 5.1 state from lupa's `lua51` module, shaped like Heka's
lua_sandbox:

- Environment: `collectgarbage`, `coroutine`, `dofile`, `load`, `loadfile`, `loadstring`,
  `newproxy`, `print`, `io`, `debug`, `os.getenv/execute/exit/remove/rename/setlocale/
  tmpname` and `package.loadlib` are removed, and so is lupa's `python` bridge; Lua can
  reach no Python attribute (lupa's attribute filter refuses every access).
- Modules: `require` finds Lua modules in `module_directory` (`;`-separated); from the
  system (Debian's lua-lpeg and lua-cjson) `lpeg` and `re`; and hekapy's own versions of
  Heka's built-in modules (docs/sandbox-modules.md), package data in lua/:
  `circular_buffer`, `struct`, `hyperloglog`, `bloom_filter` and `cjson` (the system's,
  wrapped to behave as Heka's). `cuckoo_filter` and `sax` fail with an error naming them
  as not provided. The C modules call the Lua C API, which they find in lupa's extension
  module: it must be loaded with RTLD_GLOBAL, so this module imports lupa itself, before
  anyone else can (and no other Lua runtime should be loaded into the same process).
- Limits: `memory_limit` through lupa's allocator; `instruction_limit` through a count
  hook armed again before every entry-point call (process_message, timer_event, the
  script's top level). Once the hook fired it fires on every instruction, so a script
  that catches the error with pcall cannot run on. `output_limit` is checked by the API
  functions (api.py).
- Errors: any error escaping an entry point is fatal, as in Heka: the sandbox is
  terminated and `SandboxTerminated` says which plugin, script and line. API functions
  raise `ApiError`, which becomes a Lua error at the calling script line.
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig
from collections.abc import Callable
from functools import cache
from typing import Any


def _import_lua51() -> Any:
    """lupa's Lua 5.1 runtime, its symbols global so that lpeg.so and cjson.so (which do
    not link liblua) resolve the Lua C API against it."""
    if "lupa.lua51" in sys.modules:
        return sys.modules["lupa.lua51"]
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_GLOBAL | os.RTLD_NOW)
    try:
        from lupa import lua51
    finally:
        sys.setdlopenflags(flags)
    return lua51


lua51 = _import_lua51()
LuaError = lua51.LuaError
LuaMemoryError = lua51.LuaMemoryError

# Modules the system provides and a Heka sandbox may `require` (lua_sandbox built lpeg,
# re and cjson in).
SYSTEM_C_MODULES = ("lpeg", "cjson")
SYSTEM_LUA_MODULES = ("re",)
_DEBIAN_PACKAGES = {"lpeg": "lua-lpeg", "re": "lua-lpeg", "cjson": "lua-cjson"}

# hekapy's own Lua modules (collector/sandbox/lua/): Heka's built-in ones, and cjson as
# Heka changed it (wrapping the system's).
OWN_MODULES = ("circular_buffer", "cjson", "struct", "bloom_filter", "hyperloglog")
# Heka's built-in modules hekapy has no implementation of.
NOT_PROVIDED = ("cuckoo_filter", "sax")
LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua")


class SandboxError(Exception):
    """A script that cannot be loaded or run."""


class SandboxTerminated(SandboxError):
    """The sandbox hit a limit or a Lua error and stopped for good. `reason` is Heka's
    short form ("process_message() x.lua:12: ..."), str() names plugin and script."""

    def __init__(self, describe: str, reason: str) -> None:
        super().__init__(f"{describe} terminated: {reason}")
        self.reason = reason


class ApiError(Exception):
    """Raised by an API function: becomes `error(message, 2)` at the script's line."""


@cache
def system_modules() -> tuple[dict[str, str], dict[str, str]]:
    """Where the system keeps lpeg/cjson (C, Lua 5.1 ABI) and re.lua: name → path."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    c_dirs = ([f"/usr/lib/{arch}/lua/5.1"] if arch else []) + sorted(
        glob.glob("/usr/lib/*/lua/5.1")) + ["/usr/local/lib/lua/5.1", "/usr/lib/lua/5.1"]
    lua_dirs = ["/usr/local/share/lua/5.1", "/usr/share/lua/5.1"]

    def find(names: tuple[str, ...], dirs: list[str], ext: str) -> dict[str, str]:
        out = {}
        for name in names:
            for d in dirs:
                path = os.path.join(d, name + ext)
                if os.path.isfile(path):
                    out[name] = path
                    break
        return out

    return find(SYSTEM_C_MODULES, c_dirs, ".so"), find(SYSTEM_LUA_MODULES, lua_dirs, ".lua")


def own_modules() -> dict[str, str]:
    """hekapy's Lua modules: name → path (package data beside this file)."""
    return {name: os.path.join(LUA_DIR, name + ".lua") for name in OWN_MODULES}


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    # Lua must not walk from an API function to Python internals (__globals__ etc.).
    raise AttributeError("Python attributes are not reachable from a sandbox")


# Runs once per state, before the script: restricts the environment and returns the
# private helpers (they keep the removed functions as upvalues the script cannot reach).
_SETUP = r"""
local c_modules, lua_modules, missing, own_modules, not_provided, natives, path, limit = ...
local loadfile, loadlib, sethook = loadfile, package.loadlib, debug.sethook
local rawmeta = debug.getmetatable
local error, pairs, ipairs, assert, type = error, pairs, ipairs, assert, type

-- The system's modules (C ones through the Lua C API of this process). A missing one is
-- an error naming its Debian package at the line calling require.
local system = {}
for name, file in pairs(c_modules) do
  system[name] = function(...)
    return assert(loadlib(file, "luaopen_" .. name))(...)
  end
end
for name, file in pairs(lua_modules) do
  system[name] = function(...) return assert(loadfile(file))(...) end
end
for name, deb in pairs(missing) do
  -- level 3: the line calling require (a wrapper of hekapy's says how deep it is)
  system[name] = function(_, level)
    error("module '" .. name .. "' needs the system's Lua 5.1 build of it (Debian: "
          .. deb .. "), which is not installed", level or 3)
  end
end
for name, load in pairs(system) do package.preload[name] = load end

-- hekapy's own modules (Heka's built-in ones). Each gets `host`: how it registers the
-- kind of object it makes (what add_to_payload writes for one, how preserve_data saves
-- it), the system modules it wraps, and what Python gives it.
local kinds = {}
local host = {}
function host.kind(meta, spec) kinds[meta] = spec end
function host.system(name) return system[name] end
for name, file in pairs(own_modules) do
  package.preload[name] = function()
    local module = assert(loadfile(file))(host, natives[name])
    return module  -- not a tail call: errors count the levels up to the script
  end
end

package.path = path
package.cpath = ""
package.loaders[4] = nil  -- no C modules but the whitelisted ones
package.loaders[3] = nil
-- Heka's built-in modules hekapy does not have: after module_directory was searched
-- (an operator's own Lua version of one is found first), a clear error.
package.loaders[3] = function(name)
  if not_provided[name] then
    return function()
      error("module '" .. name .. "' is built into Heka's sandbox but not provided by "
            .. "hekapy", 3)
    end
  end
end
package.loadlib = nil

for _, name in ipairs({"collectgarbage", "coroutine", "dofile", "load", "loadfile",
                       "loadstring", "newproxy", "print", "io", "debug", "python"}) do
  _G[name] = nil
  package.loaded[name] = nil
end
for _, name in ipairs({"getenv", "execute", "exit", "remove", "rename", "setlocale",
                       "tmpname"}) do
  os[name] = nil
end

local tripped = false
local function hook()
  tripped = true
  sethook(hook, "", 1)  -- from now on every instruction fails: pcall cannot hide it
  error("instruction_limit exceeded", 0)
end
local function run(f, ...)
  if limit > 0 then sethook(hook, "", limit) end
  return f(...)
end
local function stop()  -- called once the hook is off (see LuaSandbox._stop)
  local t = tripped
  tripped = false
  return t
end

-- The spec of an object a hekapy module made (nil for anything else), and the name of
-- its format with its output (add_to_payload, a message field; see LuaSandbox.render).
local function kind_of(v)
  if type(v) ~= "table" then return nil end
  local meta = rawmeta(v)
  return meta and kinds[meta]
end
local function render(v)
  local spec = kind_of(v)
  if spec and spec.output then return spec.name, spec.output(v) end
end

-- API functions written in Python return (ERR, message) to raise a Lua error at the
-- caller's line (a Python exception would reach Lua as a userdata, not a string).
local ERR = {}
local function wrap1(f)
  return function(...)
    local a, b = f(...)
    if a == ERR then error(b, 2) end
    return a
  end
end
local function wrap5(f)
  return function(...)
    local a, b, c, d, e = f(...)
    if a == ERR then error(b, 2) end
    return a, b, c, d, e
  end
end
-- for the functions hekapy's modules call: the error is at the script's line that
-- called the module's method
local function wrap_module(f)
  return function(...)
    local a, b = f(...)
    if a == ERR then error(b, 3) end
    return a
  end
end
return run, stop, ERR, wrap1, wrap5, wrap_module, kind_of, render
"""


def first_line(err: BaseException) -> str:
    """A Lua error without lupa's stack traceback."""
    text = str(err)
    cut = text.find("\nstack traceback:")
    return (text if cut < 0 else text[:cut]).strip()


class LuaSandbox:
    """One restricted Lua state running one script."""

    def __init__(self, type_name: str, name: str, path: str, *, memory_limit: int,
                 instruction_limit: int, module_dirs: list[str],
                 output_limit: int = 0) -> None:
        self.type_name = type_name
        self.name = name
        self.path = path
        self.describe = f"{type_name} '{name}' ({path})"
        self.memory_limit = max(0, memory_limit)
        self.terminated: str | None = None
        # Heka's report: the most memory the state held after a call (lupa's allocator
        # counts what is in use, not its peak within a call).
        self.max_memory_used = 0
        self.lua = lua51.LuaRuntime(
            encoding=None, unpack_returned_tuples=True, register_eval=False,
            register_builtins=False, attribute_filter=_deny_attributes,
            max_memory=self.memory_limit)
        self.table_type = type(self.lua.table())
        g = self.lua.globals()
        self.globals = g
        # Kept from Python only: the script loses them in _SETUP.
        self._loadstring = g.loadstring
        self._sethook = g.debug.sethook
        c_modules, lua_modules = system_modules()
        missing = {name: _DEBIAN_PACKAGES[name] for name in _DEBIAN_PACKAGES
                   if name not in c_modules and name not in lua_modules}
        package_path = ";".join(os.path.join(d, "?.lua") for d in module_dirs)
        setup = self._compile(_SETUP.encode(), b"=sandbox-setup")
        self._natives = self.lua.table()
        (self._run, self._tripped, self._err, wrap1, wrap5, wrap_module, self.kind_of,
         self._render) = setup(
            self._table(c_modules), self._table(lua_modules), self._table(missing),
            self._table(own_modules()), self._table(dict.fromkeys(NOT_PROVIDED, "")),
            self._natives, package_path.encode(), max(0, instruction_limit))
        self._wraps = {1: wrap1, 5: wrap5, 0: wrap_module}
        from hekapy.collector.sandbox import natives  # natives imports this module
        natives.install(self, output_limit)

    def _table(self, d: dict[str, str]) -> Any:
        return self.lua.table_from({k.encode(): v.encode() for k, v in d.items()})

    def _compile(self, source: bytes, chunkname: bytes) -> Any:
        r = self._loadstring(source, chunkname)
        if isinstance(r, tuple):
            raise SandboxError(f"{self.describe}: {r[1].decode('utf-8', 'replace')}")
        return r

    def compile(self, source: bytes, chunkname: str) -> Any:
        """A Lua function of `source` (SandboxError with the message on a syntax error)."""
        return self._compile(source, chunkname.encode())

    def lua_function(self, fn: Callable[..., Any], nret: int = 1) -> Any:
        """`fn` as a Lua function returning 1 or 5 values; ApiError from it is a Lua
        error at the caller. nret 0: a function for a module's method (one value; the
        error is at the line calling the method)."""
        err = self._err

        def guarded(*args: Any) -> Any:
            try:
                return fn(*args)
            except ApiError as e:
                return (err, str(e).encode("utf-8", "replace"))

        return self._wraps[nret](guarded)

    def register(self, name: str, fn: Callable[..., Any], nret: int = 1) -> None:
        """Make `fn` the global `name` (see lua_function)."""
        self.globals[name.encode()] = self.lua_function(fn, nret)

    def provide(self, module: str, functions: dict[str, Any]) -> None:
        """What hekapy's Lua module `module` receives from Python when it is required."""
        self._natives[module.encode()] = self.lua.table_from(
            {k.encode(): v for k, v in functions.items()})

    def render(self, value: Any) -> tuple[Any, ...] | None:
        """What an object a hekapy module made outputs, None for any other value: its
        format's name and its text, then, when the module leaves the cells to Python
        (a cbuf payload), the Lua array of them, the oldest row's index, rows and
        columns (api.object_output writes them)."""
        r = self._render(value)
        return r if type(r) is tuple else None

    def function(self, name: str) -> Any:
        """The script's global function `name`, or None."""
        f = self.globals[name.encode()]
        return f if lua51.lua_type(f) == "function" else None

    def load(self) -> None:
        """Read and run the script's top level (with the limits). SandboxError on any
        problem, naming the plugin, the script and the line."""
        try:
            with open(self.path, "rb") as f:
                source = f.read()
        except OSError as e:
            raise SandboxError(f"{self.describe}: cannot read the script: "
                               f"{e.strerror or e}") from None
        chunk = self.compile(source, "@" + os.path.basename(self.path))
        try:
            self.call(chunk, "init")
        except SandboxTerminated as e:
            raise SandboxError(f"{self.describe}: {e.reason}") from None

    def call(self, fn: Any, what: str, *args: Any) -> Any:
        """Run a Lua function under the instruction limit. A Lua error, a limit or a
        Python error inside an API function terminates the sandbox."""
        if self.terminated is not None:
            raise SandboxTerminated(self.describe, self.terminated)
        try:
            r = self._run(fn, *args)
            used = self.lua.get_memory_used()
            if used > self.max_memory_used:
                self.max_memory_used = used
            return r
        except LuaMemoryError:
            self._stop()
            reason = "memory_limit exceeded"
        except LuaError as e:
            reason = "instruction_limit exceeded" if self._stop() else first_line(e)
        except Exception as e:  # an API function failed in Python: still the script's end
            self._stop()
            reason = f"{type(e).__name__}: {e}"
        raise self.terminate(f"{what}() {reason}")

    def memory_used(self) -> int:
        """Bytes the Lua state holds now (lupa's allocator counts them)."""
        return self.lua.get_memory_used() or 0

    def _stop(self) -> bool:
        """Disarm the instruction hook; True when it had fired. sethook is a C function:
        calling it runs no Lua instruction, so a hook that fires on every instruction
        cannot get in the way."""
        self._sethook()
        return bool(self._tripped())

    def terminate(self, reason: str) -> SandboxTerminated:
        """Stop for good; returns the exception to raise."""
        if self.terminated is None:
            self.terminated = reason
            self._stop()
        return SandboxTerminated(self.describe, self.terminated)

    def unlimited(self) -> _Unlimited:
        """A context without memory and instruction limits (preservation, as Heka)."""
        return _Unlimited(self)


class _Unlimited:
    def __init__(self, box: LuaSandbox) -> None:
        self.box = box

    def __enter__(self) -> None:
        self.box._stop()
        if self.box.memory_limit:
            self.box.lua.set_max_memory(0)

    def __exit__(self, *exc: object) -> None:
        if self.box.memory_limit:
            self.box.lua.set_max_memory(self.box.memory_limit)
