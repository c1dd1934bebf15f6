-- bloom_filter: Heka's Bloom filter, written for hekapy; the bits and the hashing live
-- in Python (collector/sandbox/natives.py).

local host, native = ...
local setmetatable, error, format = setmetatable, error, string.format

local handles = setmetatable({}, {__mode = "k"})  -- object -> its Python BloomFilter
local methods = {}
local meta = {__index = methods, __metatable = "bloom_filter"}
local M = {}

local function handle(obj, fname)
  local h = handles[obj]
  if h == nil then
    error(format("bad argument #1 to '%s' (bloom_filter expected)", fname), 3)
  end
  return h
end

function M.new(...)
  local obj = setmetatable({}, meta)
  handles[obj] = native.new(...)
  return obj
end

function methods.add(self, ...) return native.add(handle(self, "add"), ...) end
function methods.query(self, ...) return native.query(handle(self, "query"), ...) end
function methods.count(self, ...) return native.count(handle(self, "count"), ...) end
function methods.clear(self, ...) native.clear(handle(self, "clear"), ...) end
function methods.fromstring(self, ...) native.fromstring(handle(self, "fromstring"), ...) end

host.kind(meta, {
  name = "bloom",
  serialize = function(self, path)
    local h = handles[self]
    local items, probability = native.items(h), native.probability(h)
    return format("if %s == nil then %s = bloom_filter.new(%d, %s) end\n%s:fromstring(%q)",
                  path, path, items, format("%.17g", probability), path, native.tostring(h))
  end,
})

bloom_filter = M
return M
