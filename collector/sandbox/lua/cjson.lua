-- cjson as Heka's sandbox had it, over the system's lua-cjson 2.1 (see
-- docs/sandbox-modules.md): `require "cjson"` also sets the global `cjson`; JSON null
-- decodes to nil unless cjson.decode_null(true) asks for cjson.null; cjson.encode fails
-- (a Lua error, so pcall catches it) when the text would exceed the sandbox's
-- output_limit; cjson.new and cjson.encode_keep_buffer are not there. Invalid JSON
-- raises a Lua error, as lua-cjson does.

local host, limits = ...
local tostring = tostring
-- 5: a missing lua-cjson is reported at the script's require (this chunk, preload,
-- require, the script)
local raw = host.system("cjson")("cjson", 5)

local error, type, next, pcall, find, gsub = error, type, next, pcall, string.find,
                                             string.gsub
local output_limit = limits and limits.output_limit or 0
local raw_encode, raw_decode, null = raw.encode, raw.decode, raw.null

local M = {}
for _, name in ipairs({"encode_sparse_array", "encode_max_depth", "decode_max_depth",
                       "encode_number_precision", "encode_invalid_numbers",
                       "decode_invalid_numbers", "null", "_NAME", "_VERSION"}) do
  M[name] = raw[name]
end

local keep_null = false
function M.decode_null(on)
  if on ~= nil then
    if type(on) ~= "boolean" then
      error("bad argument #1 to 'decode_null' (boolean expected, got " .. type(on) .. ")", 2)
    end
    keep_null = on
  end
  return keep_null
end

local function drop_nulls(t)
  for k, v in next, t do
    if v == null then
      t[k] = nil
    elseif type(v) == "table" then
      drop_nulls(v)
    end
  end
end

-- lua-cjson's own message, without a position (the C module raised it so in Heka)
local function raise(err)
  error((gsub(tostring(err), "^[^\n]-cjson%.lua:%d+: ", "")), 0)
end

function M.decode(text)
  local ok, value = pcall(raw_decode, text)
  if not ok then raise(value) end
  -- only a text with a null in it can need the walk
  if not keep_null and type(text) == "string" and find(text, "null", 1, true) then
    if value == null then return nil end
    if type(value) == "table" then drop_nulls(value) end
  end
  return value
end

function M.encode(value)
  local ok, text = pcall(raw_encode, value)
  if not ok then raise(text) end
  if output_limit > 0 and #text > output_limit then
    error("strbuf output_limit exceeded", 2)
  end
  return text
end

cjson = M
return M
