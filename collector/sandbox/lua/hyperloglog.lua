-- hyperloglog: Heka's HyperLogLog (Redis's dense one), written for hekapy; the
-- registers and the hashing live in Python (collector/sandbox/natives.py).

local host, native = ...
local setmetatable, error, format, select, unpack = setmetatable, error, string.format, select,
                                                   unpack

local handles = setmetatable({}, {__mode = "k"})  -- object -> its Python HyperLogLog
local methods = {}
local meta = {__index = methods, __metatable = "hyperloglog"}
local M = {}

local function handle(obj, fname)
  local h = handles[obj]
  if h == nil then
    error(format("bad argument #1 to '%s' (hyperloglog expected)", fname), 3)
  end
  return h
end

function M.new(...)
  local obj = setmetatable({}, meta)
  handles[obj] = native.new(...)
  return obj
end

-- The estimate of the union of one or more hyperloglogs.
function M.count(...)
  local n = select("#", ...)
  if n == 0 then error("bad argument #0 to 'count' (incorrect number of arguments)", 2) end
  local hs = {}
  for i = 1, n do hs[i] = handle((select(i, ...)), "count") end
  return native.count(unpack(hs, 1, n))
end

function methods.add(self, ...) return native.add(handle(self, "add"), ...) end

function methods.count(self, ...)
  if select("#", ...) > 0 then
    error("bad argument #2 to 'count' (incorrect number of arguments)", 2)
  end
  return native.count(handle(self, "count"))
end

function methods.merge(self, other)
  native.merge(handle(self, "merge"), handle(other, "merge"))
  return self
end

function methods.clear(self, ...) native.clear(handle(self, "clear"), ...) end

function methods.fromstring(self, ...) native.fromstring(handle(self, "fromstring"), ...) end

meta.__tostring = function(self) return native.tostring(handles[self]) end

host.kind(meta, {
  name = "hll",
  output = function(self) return native.tostring(handles[self]) end,
  serialize = function(self, path)
    return format("if %s == nil then %s = hyperloglog.new() end\n%s:fromstring(%q)", path,
                  path, path, native.tostring(handles[self]))
  end,
})

hyperloglog = M
return M
