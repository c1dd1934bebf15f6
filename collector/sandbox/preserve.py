"""`preserve_data`: a sandbox's global data saved on stop and restored on start
(docs/compatibility.md, "Lua sandbox").

The data file is Lua source in lua_sandbox's layout, so files Heka wrote can be read and
the other way round:

    if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= 0 then return end
    _G["count"] = 42
    _G["seen"] = {}
    _G["seen"]["nova"] = 3
    _G["alias"] = _G["seen"]

The first line carries the script's `_PRESERVATION_VERSION` (0 when unset) at save time:
a script that changed its version starts fresh. Saved: strings, numbers (exactly:
integers as such, others with 17 significant digits; NaN and infinities as 0/0, 1/0),
booleans, and tables of those, shared and cyclic references kept; the objects of
hekapy's modules as lua_sandbox wrote them, e.g. a circular buffer:

    if _G["cb"] == nil then _G["cb"] = circular_buffer.new(3, 3, 1) end
    _G["cb"]:set_header(1, "Column_1", "count", "sum")
    _G["cb"]:fromstring("2 2 nan nan nan nan nan nan nan nan nan")

Skipped, as in lua_sandbox: functions, userdata, other tables with a metatable, and the
modules (everything in package.loaded, _G included). Limits are lifted while saving and
restoring.
"""

from __future__ import annotations

import os
import tempfile

from hekapy.collector.sandbox.host import LuaSandbox, SandboxError, first_line

_SERIALIZER = r"""
local kind_of = ...
local G, loaded = _G, package.loaded
local pairs, type, tostring, getmetatable = pairs, type, tostring, getmetatable
local format, concat, floor = string.format, table.concat, math.floor

local function number(n)
  if n ~= n then return "0/0" end
  if n == 1/0 then return "1/0" end
  if n == -1/0 then return "-1/0" end
  if n == floor(n) and n >= -2^53 and n <= 2^53 then return format("%d", n) end
  return format("%.17g", n)
end

local function key(k)
  local t = type(k)
  if t == "string" then return format("%q", k) end
  if t == "number" then return number(k) end
  if t == "boolean" then return tostring(k) end
end

return function()
  local version = G._PRESERVATION_VERSION
  version = type(version) == "number" and floor(version) or 0
  local skip, seen = {[G] = true}, {}
  for _, v in pairs(loaded) do skip[v] = true end
  local out = {format("if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= %s then " ..
                      "return end", number(version))}
  local function walk(path, t)
    for k, v in pairs(t) do
      local ks = key(k)
      if ks and not (t == G and k == "_PRESERVATION_VERSION") then
        local p = path .. "[" .. ks .. "]"
        local vt = type(v)
        local spec = vt == "table" and kind_of(v)
        if spec and not seen[v] then
          -- an object of hekapy's modules: the lines that rebuild it
          seen[v] = p
          if spec.serialize then out[#out + 1] = spec.serialize(v, p) end
        elseif vt == "table" then
          if seen[v] then
            out[#out + 1] = p .. " = " .. seen[v]
          elseif not skip[v] and getmetatable(v) == nil then
            seen[v] = p
            out[#out + 1] = p .. " = {}"
            walk(p, v)
          end
        elseif vt == "string" then
          out[#out + 1] = p .. " = " .. format("%q", v)
        elseif vt == "number" then
          out[#out + 1] = p .. " = " .. number(v)
        elseif vt == "boolean" then
          out[#out + 1] = p .. " = " .. tostring(v)
        end
      end
    end
  end
  walk("_G", G)
  out[#out + 1] = ""
  return concat(out, "\n")
end
"""


def preservation_path(base_dir: str, name: str) -> str:
    """Heka's `<base_dir>/sandbox_preservation/<name>.data`."""
    return os.path.join(base_dir, "sandbox_preservation", name + ".data")


def serializer(box: LuaSandbox) -> object:
    """The Lua function that renders the globals; made before the script runs, so it
    keeps the real pairs/string.format whatever the script does to its globals."""
    return box.compile(_SERIALIZER.encode(), "=preserve")(box.kind_of)


def save(box: LuaSandbox, render: object, path: str) -> int:
    """Write the globals to `path` (atomically: a crash leaves the old file). Returns
    the bytes written. SandboxError when the state cannot be rendered."""
    with box.unlimited():
        try:
            data = render()  # type: ignore[operator]
        except Exception as e:
            raise SandboxError(f"{box.describe}: preserving data failed: {first_line(e)}"
                               ) from None
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return len(data)


def restore(box: LuaSandbox, path: str) -> bool:
    """Run the data file (after the script, so saved values win over the script's
    initial ones). False when there is no file. SandboxError on a broken file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return False
    chunk = box.compile(data, "=" + path)
    with box.unlimited():
        try:
            chunk()
        except Exception as e:
            raise SandboxError(f"{box.describe}: restoring {path} failed: {first_line(e)}"
                               ) from None
    return True
