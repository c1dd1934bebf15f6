-- struct: binary packing with Roberto Ierusalimschy's `struct` library interface
-- (http://www.inf.puc-rio.br/~roberto/struct/), which Heka's sandbox built in; written
-- for hekapy in plain Lua 5.1.
--
-- struct.pack(fmt, ...), struct.unpack(fmt, s [, i]) (the values, then the position
-- after them) and struct.size(fmt). Format options: ">" big endian, "<" little endian,
-- "=" native (little), "![n]" alignment n (default 8), "x" a zero byte, "b"/"B" char,
-- "h"/"H" short, "l"/"L" long (8 bytes), "T" size_t (8), "i"/"I[n]" an n-byte integer
-- (default 4), "f" float, "d" double, "s" zero-terminated string, "c[n]" n chars ("c0":
-- the length is the previous value unpacked, or the whole string when packing); spaces
-- are ignored. Upper case integers are unsigned.

local floor, frexp, ldexp, huge = math.floor, math.frexp, math.ldexp, math.huge
local byte, char, sub, find, format = string.byte, string.char, string.sub, string.find,
                                      string.format
local concat, error, type, tonumber, select = table.concat, error, type, tonumber, select
local unpack, tostring = unpack, tostring

local M = {}

local SIZES = {b = 1, B = 1, h = 2, H = 2, l = 8, L = 8, T = 8, f = 4, d = 8}
local NATIVE_ALIGN = 8

-- One option at `pos` of `fmt`: its letter, its size (nil for "s"), the position after.
local function option(fmt, pos, fname)
  local c = sub(fmt, pos, pos)
  local digits = (find(fmt, "^%d+", pos + 1))
  local n, after = nil, pos + 1
  if digits then
    local _, e = find(fmt, "^%d+", pos + 1)
    n = tonumber(sub(fmt, pos + 1, e))
    after = e + 1
  end
  if c == "i" or c == "I" then
    n = n or 4
    if n < 1 or n > 8 then
      error(format("integral size %d is larger than limit of 8", n), 3)
    end
    return c, n, after
  elseif c == "c" then
    return c, n or 1, after
  elseif c == "!" then
    return c, n or NATIVE_ALIGN, after
  elseif SIZES[c] then
    return c, SIZES[c], pos + 1
  elseif c == "x" then
    return c, 1, pos + 1
  elseif c == "s" or c == ">" or c == "<" or c == "=" or c == " " then
    return c, 0, pos + 1
  end
  error(format("bad argument #1 to '%s' (invalid format option '%s')", fname, c), 3)
end

local function padding(len, size, align)
  if size <= 1 or align <= 1 then return 0 end
  if size > align then size = align end
  return (size - len % size) % size
end

-- integers --------------------------------------------------------------------------
local function int_bytes(v, n, little)
  v = v >= 0 and floor(v) or -floor(-v)  -- truncated, as C's conversion
  local out = {}
  local negative = v < 0
  if negative then v = -v - 1 end  -- two's complement: the bytes of -v - 1, inverted
  for i = 1, n do
    local b = v % 256
    out[i] = negative and 255 - b or b
    v = (v - b) / 256
  end
  if not little then
    for i = 1, floor(n / 2) do out[i], out[n + 1 - i] = out[n + 1 - i], out[i] end
  end
  return char(unpack(out))
end

local function bytes_int(s, pos, n, little, signed)
  local first = byte(s, little and pos + n - 1 or pos)  -- the most significant byte
  local negative = signed and first >= 128
  local v = 0
  for i = 1, n do
    local b = byte(s, little and pos + n - i or pos + i - 1)
    if negative then b = 255 - b end  -- two's complement: -(inverted + 1), kept exact
    v = v * 256 + b
  end
  if negative then return -v - 1 end
  return v
end

-- floating point (IEEE 754) ----------------------------------------------------------
local function float_bytes(x, mant_bits, exp_bits, little)
  local bias = 2 ^ (exp_bits - 1) - 1
  local max_exp = 2 ^ exp_bits - 1
  local sign = 0
  if x < 0 or (x == 0 and 1 / x < 0) then sign, x = 1, -x end
  local e, m
  if x ~= x then
    e, m = max_exp, 2 ^ (mant_bits - 1)
  elseif x == huge then
    e, m = max_exp, 0
  elseif x == 0 then
    e, m = 0, 0
  else
    local f, ex = frexp(x)  -- x = f * 2^ex, 0.5 <= f < 1
    e = ex + bias - 1
    if e <= 0 then  -- subnormal
      m = floor(ldexp(x, bias - 1 + mant_bits) + 0.5)
      e = 0
    else
      m = floor((f * 2 - 1) * 2 ^ mant_bits + 0.5)
      if m >= 2 ^ mant_bits then m, e = 0, e + 1 end
      if e >= max_exp then e, m = max_exp, 0 end
    end
  end
  local total = (exp_bits + mant_bits + 1) / 8
  -- sign, exponent and mantissa as one unsigned integer, written byte by byte
  local high = sign * 2 ^ (exp_bits) + e
  local out = {}
  local v = m
  for i = 1, total do
    local b
    if i * 8 <= mant_bits then
      b = v % 256
      v = (v - b) / 256
    else
      -- mix the top mantissa bits with the exponent and sign
      local used = mant_bits - (i - 1) * 8
      if used > 0 then
        b = v + (high % 2 ^ (8 - used)) * 2 ^ used
        high = floor(high / 2 ^ (8 - used))
        v = 0
      else
        b = high % 256
        high = floor(high / 256)
      end
    end
    out[i] = b
  end
  if not little then
    for i = 1, floor(total / 2) do out[i], out[total + 1 - i] = out[total + 1 - i], out[i] end
  end
  return char(unpack(out))
end

local function bytes_float(s, pos, mant_bits, exp_bits, little)
  local total = (exp_bits + mant_bits + 1) / 8
  local m, high, scale = 0, 0, 1
  for i = 1, total do  -- least significant byte first
    local b = byte(s, little and pos + i - 1 or pos + total - i)
    local used = mant_bits - (i - 1) * 8
    if used >= 8 then
      m = m + b * 2 ^ ((i - 1) * 8)
    elseif used > 0 then
      local low = b % 2 ^ used
      m = m + low * 2 ^ ((i - 1) * 8)
      high = (b - low) / 2 ^ used
      scale = 2 ^ (8 - used)
    else
      high = high + b * scale
      scale = scale * 256
    end
  end
  local e = high % 2 ^ exp_bits
  local sign = high >= 2 ^ exp_bits and -1 or 1
  local bias = 2 ^ (exp_bits - 1) - 1
  if e == 2 ^ exp_bits - 1 then
    if m == 0 then return sign * huge end
    return 0 / 0
  end
  if e == 0 then return sign * ldexp(m, 1 - bias - mant_bits) end
  return sign * ldexp(m + 2 ^ mant_bits, e - bias - mant_bits)
end

-- the library ------------------------------------------------------------------------
local function check_format(fmt, fname)
  if type(fmt) ~= "string" then
    error(format("bad argument #1 to '%s' (string expected, got %s)", fname, type(fmt)), 3)
  end
end

function M.pack(fmt, ...)
  check_format(fmt, "pack")
  local little, align = true, 1
  local out, len, arg = {}, 0, 1
  local args = {...}
  local pos = 1
  local function next_arg(what)
    arg = arg + 1
    local v = args[arg - 1]
    if v == nil then
      error(format("bad argument #%d to 'pack' (%s expected, got no value)", arg, what), 3)
    end
    return v
  end
  while pos <= #fmt do
    local c, size, after = option(fmt, pos, "pack")
    pos = after
    local pad = padding(len, size, align)
    if pad > 0 and c ~= "c" and c ~= "s" then
      out[#out + 1] = ("\0"):rep(pad)
      len = len + pad
    end
    if c == ">" then little = false
    elseif c == "<" or c == "=" then little = true
    elseif c == "!" then align = size
    elseif c == "x" then out[#out + 1] = "\0"; len = len + 1
    elseif c == "f" or c == "d" then
      local v = tonumber(next_arg("number"))
      if v == nil then error(format("bad argument #%d to 'pack' (number expected)", arg), 2) end
      local s = c == "f" and float_bytes(v, 23, 8, little) or float_bytes(v, 52, 11, little)
      out[#out + 1] = s
      len = len + #s
    elseif c == "s" or c == "c" then
      local s = next_arg("string")
      if type(s) ~= "string" then s = tostring(s) end
      if c == "s" then
        if find(s, "\0", 1, true) then
          error(format("bad argument #%d to 'pack' (string contains zeros)", arg), 2)
        end
        s = s .. "\0"
      elseif size > 0 then
        if #s < size then
          error(format("bad argument #%d to 'pack' (string too short)", arg), 2)
        end
        s = sub(s, 1, size)
      end
      out[#out + 1] = s
      len = len + #s
    elseif c ~= " " then
      local v = tonumber(next_arg("number"))
      if v == nil then error(format("bad argument #%d to 'pack' (number expected)", arg), 2) end
      out[#out + 1] = int_bytes(v, size, little)
      len = len + size
    end
  end
  return concat(out)
end

function M.unpack(fmt, data, init, ...)
  check_format(fmt, "unpack")
  if type(data) ~= "string" then
    error(format("bad argument #2 to 'unpack' (string expected, got %s)", type(data)), 2)
  end
  local pos = tonumber(init) or 1
  local little, align = true, 1
  local values = {}
  local fpos = 1
  local function need(n)
    if pos + n - 1 > #data then error("bad argument #2 to 'unpack' (data string too short)", 3) end
  end
  while fpos <= #fmt do
    local c, size, after = option(fmt, fpos, "unpack")
    fpos = after
    if c ~= "c" and c ~= "s" then pos = pos + padding(pos - 1, size, align) end
    if c == ">" then little = false
    elseif c == "<" or c == "=" then little = true
    elseif c == "!" then align = size
    elseif c == "x" then pos = pos + 1
    elseif c == "f" or c == "d" then
      need(size)
      values[#values + 1] = c == "f" and bytes_float(data, pos, 23, 8, little)
                            or bytes_float(data, pos, 52, 11, little)
      pos = pos + size
    elseif c == "s" then
      local e = find(data, "\0", pos, true)
      if not e then error("bad argument #2 to 'unpack' (unfinished string in data)", 2) end
      values[#values + 1] = sub(data, pos, e - 1)
      pos = e + 1
    elseif c == "c" then
      if size == 0 then
        size = values[#values]
        if type(size) ~= "number" then
          error("bad argument #1 to 'unpack' (format 'c0' needs a previous size)", 2)
        end
        values[#values] = nil
      end
      need(size)
      values[#values + 1] = sub(data, pos, pos + size - 1)
      pos = pos + size
    elseif c ~= " " then
      need(size)
      local signed = c == "b" or c == "h" or c == "l" or c == "i"
      values[#values + 1] = bytes_int(data, pos, size, little, signed)
      pos = pos + size
    end
  end
  values[#values + 1] = pos
  return unpack(values, 1, #values)
end

function M.size(fmt)
  check_format(fmt, "size")
  local len, align, pos = 0, 1, 1
  while pos <= #fmt do
    local c, size, after = option(fmt, pos, "size")
    pos = after
    if c == "s" or (c == "c" and size == 0) then
      error("bad argument #1 to 'size' (options 's' and 'c0' have no fixed size)", 2)
    end
    if c == "!" then
      align = size
    elseif c ~= ">" and c ~= "<" and c ~= "=" and c ~= " " then
      if c ~= "c" then len = len + padding(len, size, align) end
      len = len + size
    end
  end
  return len
end

struct = M
return M
