-- circular_buffer: Heka's sliding-window time series, written for hekapy (see
-- docs/sandbox-modules.md for the behaviour and the public sources it follows).
--
-- A buffer of `rows` rows of `columns` doubles, each row `seconds_per_row` long. Writing
-- a time newer than the newest row advances the window (the rows it skips become NaN);
-- a time older than the oldest row is outside it (nil). The state of an object lives in
-- a private table keyed by the object, so a script sees an opaque value it cannot
-- iterate or change, as with Heka's userdata.

local host = ...

local floor, huge, sqrt, abs, exp = math.floor, math.huge, math.sqrt, math.abs, math.exp
local format, find, gsub, byte, sub = string.format, string.find, string.gsub, string.byte,
                                      string.sub
local concat, sort = table.concat, table.sort
local type, error, pairs, ipairs, tonumber, setmetatable, select, tostring =
      type, error, pairs, ipairs, tonumber, setmetatable, select, tostring

local NAN = 0 / 0
local INT_MAX = 2147483647

local states = setmetatable({}, {__mode = "k"})  -- object -> its state
local methods = {}
local meta = {__index = methods, __metatable = "circular_buffer"}
local M = {}

-- errors ------------------------------------------------------------------------------
-- `level`: where the error is reported, counted from this function (the defaults suit
-- a call straight from a method, whose caller is the script).
local function arg_error(n, fname, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end

local function number_arg(v, n, fname, level)
  local d = tonumber(v)
  if d == nil then
    arg_error(n, fname, "number expected, got " .. type(v), (level or 3) + 1)
  end
  return d
end

local function state_of(self, fname)
  local s = states[self]
  if s == nil then
    error(format("bad argument #1 to '%s' (circular_buffer expected, got %s)", fname,
                 type(self)), 3)
  end
  return s
end

local function column_of(s, col, n, fname)
  if s.valid[col] then return col end
  local c = number_arg(col, n, fname, 4)
  c = c >= 0 and floor(c) or -floor(-c)  -- truncated, as a C int
  if not s.valid[c] then
    error(format("bad argument #%d to '%s' (column out of range)", n, fname), 3)
  end
  return c
end

-- numbers as lua_sandbox's output writes them: integers plainly, fractions with at
-- most 8 decimals (trailing zeros dropped), large magnitudes with 17 digits.
local function output_number(d)
  if d ~= d then return "nan" end
  if d == huge then return "inf" end
  if d == -huge then return "-inf" end
  if d % 1 == 0 and d >= -INT_MAX and d <= INT_MAX then return format("%d", d) end
  if d > INT_MAX or d < -INT_MAX then return format("%.17g", d) end
  local neg = d < 0
  if neg then d = -d end
  local whole = floor(d)
  local scaled = (d - whole) * 100000000
  local fraction = floor(scaled)
  local rest = scaled - fraction
  if rest > 0.5 or (rest == 0.5 and (fraction == 0 or fraction % 2 == 1)) then
    fraction = fraction + 1
    if fraction >= 100000000 then fraction, whole = 0, whole + 1 end
  end
  local text = format("%d", whole)
  if fraction > 0 then
    text = text .. "." .. (gsub(format("%08d", fraction), "0+$", ""))
  end
  return neg and "-" .. text or text
end
M._output_number = output_number  -- for the tests of hekapy's own output format

-- numbers exactly, for preserved data
local function exact_number(d)
  if d ~= d then return "nan" end
  if d == huge then return "inf" end
  if d == -huge then return "-inf" end
  if d % 1 == 0 and d >= -2^53 and d <= 2^53 then return format("%d", d) end
  return format("%.17g", d)
end

-- rows --------------------------------------------------------------------------------
-- Advance the newest row to time `t` (seconds): the rows in between become NaN, and
-- what leaves the window (annotations, pending deltas) goes.
local function advance(s, t)
  local rows, cols, data = s.rows, s.cols, s.data
  local steps = (t - s.time) / s.spr
  if steps >= rows then
    for i = 1, rows * cols do data[i] = NAN end
    s.row = (s.row + steps) % rows
  else
    local row = s.row
    for _ = 1, steps do
      row = (row + 1) % rows
      local base = row * cols
      for c = 1, cols do data[base + c] = NAN end
    end
    s.row = row
  end
  s.time = t
  local oldest = t - (rows - 1) * s.spr
  if s.deltas then
    for rt in pairs(s.deltas) do
      if rt < oldest then s.deltas[rt] = nil end
    end
  end
  if s.annotations then
    for rt in pairs(s.annotations) do
      if rt < oldest then s.annotations[rt] = nil end
    end
  end
end

-- The index before column 1 of the row holding `ns`, and the row's time (seconds);
-- nil when outside the window. `grow`: a newer time advances the window.
local function locate(s, ns, grow)
  local t = floor(ns / 1e9)
  local spr = s.spr
  if spr ~= 1 then t = t - t % spr end
  local newest = s.time
  if t > newest then
    if not grow then return nil end
    advance(s, t)
    return s.row * s.cols, t
  end
  local back = (newest - t) / spr
  if back >= s.rows then return nil end
  return ((s.row - back) % s.rows) * s.cols, t
end

local function record_delta(s, t, col, old, new)
  if new == old or (new ~= new and old ~= old) then return end  -- unchanged
  local row = s.deltas[t]
  if row == nil then
    row = {}
    for c = 1, s.cols do row[c] = NAN end
    s.deltas[t] = row
  end
  if s.summed[col] then
    local d = row[col]
    if d ~= d then d = 0 end
    if old ~= old then old = 0 end
    row[col] = d + (new - old)
  else
    row[col] = new
  end
end

-- constructor -------------------------------------------------------------------------
local AGGREGATIONS = {sum = true, min = true, max = true, none = true}

local valid_columns = setmetatable({}, {__mode = "v"})  -- shared: {true, ...} per width

local function fresh(rows, cols, spr, delta)
  local data = {}
  for i = 1, rows * cols do data[i] = NAN end
  local valid = valid_columns[cols]
  if valid == nil then
    valid = {}
    for c = 1, cols do valid[c] = true end
    valid_columns[cols] = valid
  end
  local names, units, aggs, summed = {}, {}, {}, {}
  for c = 1, cols do
    names[c], units[c], aggs[c], summed[c] = "Column_" .. c, "count", "sum", true
  end
  return {rows = rows, cols = cols, spr = spr, data = data, valid = valid,
          names = names, units = units, aggs = aggs, summed = summed,
          time = (rows - 1) * spr, row = rows - 1, format = "cbuf",
          deltas = delta and {} or nil, annotations = nil}
end

function M.new(rows, cols, spr, delta, ...)
  if select("#", ...) > 0 then
    error("bad argument #5 to 'new' (incorrect number of arguments)", 2)
  end
  rows = floor(number_arg(rows, 1, "new"))
  cols = floor(number_arg(cols, 2, "new"))
  spr = floor(number_arg(spr, 3, "new"))
  if rows <= 1 then arg_error(1, "new", "rows must be > 1") end
  if cols <= 0 then arg_error(2, "new", "columns must be > 0") end
  if spr <= 0 then arg_error(3, "new", "seconds_per_row must be > 0") end
  if delta ~= nil and type(delta) ~= "boolean" then
    arg_error(4, "new", "boolean expected, got " .. type(delta))
  end
  local obj = setmetatable({}, meta)
  states[obj] = fresh(rows, cols, spr, delta)
  return obj
end

-- data --------------------------------------------------------------------------------
function methods.add(self, ns, col, value)
  local s = states[self] or state_of(self, "add")
  if not s.valid[col] then col = column_of(s, col, 2, "add") end
  if type(ns) ~= "number" then ns = number_arg(ns, 1, "add") end
  if type(value) ~= "number" then value = number_arg(value, 3, "add") end
  local base, t = locate(s, ns, true)
  if base == nil then return nil end
  local i = base + col
  local data = s.data
  local old = data[i]
  local new
  if old ~= old then new = value else new = old + value end
  data[i] = new
  if s.deltas then record_delta(s, t, col, old, new) end
  return new
end

function methods.set(self, ns, col, value)
  local s = states[self] or state_of(self, "set")
  if not s.valid[col] then col = column_of(s, col, 2, "set") end
  if type(ns) ~= "number" then ns = number_arg(ns, 1, "set") end
  if type(value) ~= "number" then value = number_arg(value, 3, "set") end
  local base, t = locate(s, ns, true)
  if base == nil then return nil end
  local i = base + col
  local data = s.data
  local old = data[i]
  local new = value
  local agg = s.aggs[col]
  if old == old and value == value then
    -- min and max keep the current value unless the new one goes beyond it
    if (agg == "min" and value > old) or (agg == "max" and value < old) then new = old end
  end
  data[i] = new
  if s.deltas then record_delta(s, t, col, old, new) end
  return new
end

function methods.get(self, ns, col)
  local s = states[self] or state_of(self, "get")
  if not s.valid[col] then col = column_of(s, col, 2, "get") end
  if type(ns) ~= "number" then ns = number_arg(ns, 1, "get") end
  local base = locate(s, ns, false)
  if base == nil then return nil end
  return s.data[base + col]
end

function methods.get_configuration(self)
  local s = state_of(self, "get_configuration")
  return s.rows, s.cols, s.spr
end

function methods.current_time(self)
  local s = state_of(self, "current_time")
  return s.time * 1e9
end

-- headers -----------------------------------------------------------------------------
function methods.set_header(self, col, name, unit, aggregation)
  local s = state_of(self, "set_header")
  col = column_of(s, col, 1, "set_header")
  if type(name) ~= "string" then
    arg_error(2, "set_header", "string expected, got " .. type(name))
  end
  if unit ~= nil and type(unit) ~= "string" then
    arg_error(3, "set_header", "string expected, got " .. type(unit))
  end
  aggregation = aggregation or "sum"
  if not AGGREGATIONS[aggregation] then
    arg_error(4, "set_header", format("invalid option '%s'", tostring(aggregation)))
  end
  s.names[col] = (gsub(sub(name, 1, 15), "[^%w]", "_"))
  s.units[col] = (gsub(sub(unit or "count", 1, 7), "[^%w/*]", "_"))
  s.aggs[col] = aggregation
  s.summed[col] = aggregation == "sum"
  return col
end

function methods.get_header(self, col)
  local s = state_of(self, "get_header")
  col = column_of(s, col, 1, "get_header")
  return s.names[col], s.units[col], s.aggs[col]
end

-- statistics --------------------------------------------------------------------------
-- The values of a column from `start` to `stop` (ns, inclusive, defaults: the whole
-- window), oldest first; nil when either end is outside the window.
local function column_values(s, fname, col, start, stop, n)
  local oldest = (s.time - (s.rows - 1) * s.spr) * 1e9
  start = start == nil and oldest or number_arg(start, n, fname, 4)
  stop = stop == nil and s.time * 1e9 or number_arg(stop, n + 1, fname, 4)
  if stop < start then
    error(format("bad argument #%d to '%s' (end must be >= start)", n + 1, fname), 3)
  end
  local first = locate(s, start, false)
  local last = locate(s, stop, false)
  if first == nil or last == nil then return nil end
  local out, data, cols, size = {}, s.data, s.cols, s.rows * s.cols
  local i = first
  while true do
    out[#out + 1] = data[i + col]
    if i == last then break end
    i = (i + cols) % size
  end
  return out
end

local function valid_sum(values)
  local sum, count = 0, 0
  for i = 1, #values do
    local v = values[i]
    if v == v then sum, count = sum + v, count + 1 end
  end
  return sum, count
end

local function average(values)
  local sum, count = valid_sum(values)
  if count == 0 then return 0, 0 end
  return sum / count, count
end

local function variance(values)
  local mean, count = average(values)
  if count == 0 then return 0, 0 end
  local squares = 0
  for i = 1, #values do
    local v = values[i]
    if v == v then squares = squares + (v - mean) * (v - mean) end
  end
  return squares / count, count
end

local function extreme(values, smaller)
  local best, count = NAN, 0
  for i = 1, #values do
    local v = values[i]
    if v == v then
      if count == 0 or (smaller and v < best) or (not smaller and v > best) then best = v end
      count = count + 1
    end
  end
  return best, count
end

local COMPUTE = {
  sum = valid_sum,
  avg = average,
  variance = variance,
  sd = function(values)
    local v, count = variance(values)
    return sqrt(v), count
  end,
  min = function(values) return extreme(values, true) end,
  max = function(values) return extreme(values, false) end,
}

function methods.compute(self, fn, col, start, stop)
  local s = state_of(self, "compute")
  local f = COMPUTE[fn]
  if f == nil then arg_error(1, "compute", format("invalid option '%s'", tostring(fn))) end
  col = column_of(s, col, 2, "compute")
  local values = column_values(s, "compute", col, start, stop, 3)
  if values == nil then return nil end
  return f(values)
end

-- The complementary error function, from its continued fraction for large arguments
-- and its Taylor series otherwise (both to double precision).
local function erfc(x)
  if x < 0 then return 2 - erfc(-x) end
  if x < 2.5 then
    local term, sum, x2, n = x, x, x * x, 0
    repeat
      n = n + 1
      term = -term * x2 / n
      local add = term / (2 * n + 1)
      sum = sum + add
    until abs(add) <= 1e-17 * abs(sum)
    return 1 - sum * 1.1283791670955126  -- 2 / sqrt(pi)
  end
  -- Lentz's method for erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...
  local tiny = 1e-300
  local f = x
  local c, d = x, 0
  for k = 1, 200 do
    local a = k / 2
    d = x + a * d
    if d == 0 then d = tiny end
    c = x + a / c
    if c == 0 then c = tiny end
    d = 1 / d
    local delta = c * d
    f = f * delta
    if abs(delta - 1) < 1e-16 then break end
  end
  return exp(-x * x) / f * 0.5641895835477563  -- 1 / sqrt(pi)
end

-- P(Z <= z) for a standard normal Z
local function normal_cdf(z)
  if z ~= z then return z end
  return 0.5 * erfc(-z * 0.7071067811865476)
end
M._normal_cdf = normal_cdf  -- for the tests

-- Mann-Whitney U of two samples with the normal approximation: U of the first sample
-- and the one-sided p-value; NaN values rank lowest, as equals. Ties get their mean
-- rank and correct the variance; nil when every value is tied.
local function mann_whitney(x, y, continuity)
  local n1, n2 = #x, #y
  local all = {}
  for i = 1, n1 do all[i] = {x[i], true} end
  for i = 1, n2 do all[n1 + i] = {y[i], false} end
  sort(all, function(a, b)
    local u, v = a[1], b[1]
    if u ~= u then return v == v end
    return v == v and u < v
  end)
  local n = n1 + n2
  local rank_sum, ties, i = 0, 0, 1
  while i <= n do
    local v = all[i][1]
    local j = i
    while j < n do
      local w = all[j + 1][1]
      if w == v or (w ~= w and v ~= v) then j = j + 1 else break end
    end
    local rank = (i + j) / 2
    for k = i, j do
      if all[k][2] then rank_sum = rank_sum + rank end
    end
    local size = j - i + 1
    if size > 1 then ties = ties + size * size * size - size end
    i = j + 1
  end
  local correction = 1 - ties / (n * n * n - n)
  if correction == 0 then return nil end
  local u1 = rank_sum - n1 * (n1 + 1) / 2
  local u2 = n1 * n2 - u1
  local big = u1 > u2 and u1 or u2
  local sd = sqrt(correction * n1 * n2 * (n + 1) / 12)
  local shift = continuity and 0.5 or 0
  local z = abs((big - shift - n1 * n2 / 2) / sd)
  return u1, normal_cdf(-z)
end
M._mann_whitney = mann_whitney  -- for the tests

function methods.mannwhitneyu(self, col, start_x, end_x, start_y, end_y, continuity)
  local s = state_of(self, "mannwhitneyu")
  col = column_of(s, col, 1, "mannwhitneyu")
  number_arg(start_x, 2, "mannwhitneyu")
  number_arg(end_x, 3, "mannwhitneyu")
  number_arg(start_y, 4, "mannwhitneyu")
  number_arg(end_y, 5, "mannwhitneyu")
  if continuity ~= nil and type(continuity) ~= "boolean" then
    arg_error(6, "mannwhitneyu", "boolean expected, got " .. type(continuity))
  end
  local x = column_values(s, "mannwhitneyu", col, start_x, end_x, 2)
  local y = column_values(s, "mannwhitneyu", col, start_y, end_y, 4)
  if x == nil or y == nil then return nil end
  return mann_whitney(x, y, continuity ~= false)
end

-- annotations -------------------------------------------------------------------------
local SHORT = {info = "i", alert = "a"}

function methods.annotate(self, ns, col, kind, text, delta)
  local s = state_of(self, "annotate")
  ns = number_arg(ns, 1, "annotate")
  col = column_of(s, col, 2, "annotate")
  if not SHORT[kind] then
    arg_error(3, "annotate", format("invalid option '%s'", tostring(kind)))
  end
  if type(text) ~= "string" then
    arg_error(4, "annotate", "string expected, got " .. type(text))
  end
  local _, t = locate(s, ns, false)
  if t == nil then return end  -- outside the window: ignored
  local at = s.annotations
  if at == nil then
    at = {}
    s.annotations = at
  end
  local row = at[t]
  if row == nil then
    row = {}
    at[t] = row
  end
  row[col] = {kind = kind, text = text, pending = delta ~= false}
end

-- output ------------------------------------------------------------------------------
function methods.format(self, fmt)
  local s = state_of(self, "format")
  if fmt ~= "cbuf" and fmt ~= "cbufd" then
    arg_error(1, "format", format("invalid option '%s'", tostring(fmt)))
  end
  s.format = fmt
  return self
end

local JSON_ESCAPES = {['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                      ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}

-- Bytes that are not UTF-8 become spaces (a JSON document must be UTF-8).
local function utf8_only(text)
  if not find(text, "[\128-\255]") then return text end
  local out, i, n = {}, 1, #text
  while i <= n do
    local c = byte(text, i)
    local size = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2
                 or (c >= 0xE0 and c <= 0xEF) and 3 or (c >= 0xF0 and c <= 0xF4) and 4 or 0
    local ok = size > 0 and i + size - 1 <= n
    for k = i + 1, ok and i + size - 1 or 0 do
      local b = byte(text, k)
      if b < 0x80 or b > 0xBF then ok = false end
    end
    if ok then
      out[#out + 1] = sub(text, i, i + size - 1)
      i = i + size
    else
      out[#out + 1] = " "
      i = i + 1
    end
  end
  return concat(out)
end

local function json_string(text)
  text = gsub(utf8_only(text), '[%c"\\]', function(ch)
    return JSON_ESCAPES[ch] or format("\\u%04x", byte(ch))
  end)
  return '"' .. text .. '"'
end

-- The annotations to show, ordered by time then column; `pending_only`: those not yet
-- sent by a cbufd output (cleared).
local function annotation_list(s, pending_only)
  local at = s.annotations
  if at == nil then return nil end
  local times = {}
  for t in pairs(at) do times[#times + 1] = t end
  sort(times)
  local out = {}
  for _, t in ipairs(times) do
    local row = at[t]
    for c = 1, s.cols do
      local a = row[c]
      if a and (a.pending or not pending_only) then
        out[#out + 1] = format('{"x":%s,"col":%d,"shortText":"%s","text":%s}',
                               exact_number(t * 1000), c, SHORT[a.kind],
                               json_string(a.text))
        if pending_only then a.pending = false end
      end
    end
  end
  if #out == 0 then return nil end
  return out
end

local function header(s, annotations)
  local info = {}
  for c = 1, s.cols do
    info[c] = format('{"name":"%s","unit":"%s","aggregation":"%s"}', s.names[c],
                     s.units[c], s.aggs[c])
  end
  local head = format('{"time":%s,"rows":%d,"columns":%d,"seconds_per_row":%d,' ..
                      '"column_info":[%s]', exact_number(s.time - (s.rows - 1) * s.spr),
                      s.rows, s.cols, s.spr, concat(info, ","))
  if annotations then head = head .. ',"annotations":[' .. concat(annotations, ",") .. "]" end
  return head .. "}\n"
end

-- The rows changed since the previous cbufd output (in the delta table's order, as
-- Heka's), then the changes are forgotten; "" when nothing changed.
local function delta_output(s)
  if s.deltas == nil then return "" end
  local annotations = annotation_list(s, true)
  local lines = {}
  local line = {}
  for t, row in pairs(s.deltas) do
    line[1] = exact_number(t)
    for c = 1, s.cols do line[c + 1] = output_number(row[c]) end
    lines[#lines + 1] = concat(line, "\t") .. "\n"
  end
  s.deltas = {}
  if #lines == 0 and annotations == nil then return "" end
  return header(s, annotations) .. concat(lines)
end

-- The cbufd text; or the cbuf header with the cells for the sandbox to write (in
-- Python, as Heka's C module did, so a large buffer costs the script no instructions):
-- the storage array, the oldest row's index in it, rows and columns.
local function output(self)
  local s = states[self]
  if s.format == "cbufd" then return delta_output(s) end
  return header(s, annotation_list(s, false)), s.data, (s.row + 1) % s.rows, s.rows, s.cols
end

-- preserved data ----------------------------------------------------------------------
-- "<time> <newest row> <rows*columns values> [<row time> <column deltas>]...", the
-- values in storage order: the layout of Heka's preserved circular buffers.
local function tostring_state(s)
  local out = {exact_number(s.time), exact_number(s.row)}
  local data = s.data
  for i = 1, s.rows * s.cols do out[#out + 1] = exact_number(data[i]) end
  if s.deltas then
    for t, row in pairs(s.deltas) do
      out[#out + 1] = exact_number(t)
      for c = 1, s.cols do out[#out + 1] = exact_number(row[c]) end
    end
  end
  return concat(out, " ")
end

local function parse_number(word)
  if word == "nan" or word == "-nan" then return NAN end
  if word == "inf" then return huge end
  if word == "-inf" then return -huge end
  return tonumber(word)
end

function methods.fromstring(self, text)
  local s = state_of(self, "fromstring")
  if type(text) ~= "string" then
    arg_error(1, "fromstring", "string expected, got " .. type(text))
  end
  local words = {}
  for w in text:gmatch("%S+") do
    local d = parse_number(w)
    if d == nil then error(format("fromstring() invalid value '%s'", w), 2) end
    words[#words + 1] = d
  end
  local cells = s.rows * s.cols
  local extra = #words - 2 - cells
  if extra < 0 or extra % (s.cols + 1) ~= 0 or (extra > 0 and not s.deltas) then
    error(format("fromstring() found %d values, expected %d", #words, cells + 2), 2)
  end
  local row = words[2]
  if row ~= floor(row) or row < 0 or row >= s.rows then
    error("fromstring() invalid newest row " .. exact_number(row), 2)
  end
  s.time, s.row = words[1], row
  for i = 1, cells do s.data[i] = words[i + 2] end
  if s.deltas then
    s.deltas = {}
    local i = cells + 3
    while i <= #words do
      local r = {}
      for c = 1, s.cols do r[c] = words[i + c] end
      s.deltas[words[i]] = r
      i = i + s.cols + 1
    end
  end
end

-- The Lua lines that rebuild the object at `path` (after the script ran: an object the
-- script made is reused, as Heka does).
local function serialize(self, path)
  local s = states[self]
  local out = {format("if %s == nil then %s = circular_buffer.new(%d, %d, %d%s) end", path,
                      path, s.rows, s.cols, s.spr, s.deltas and ", true" or "")}
  for c = 1, s.cols do
    out[#out + 1] = format("%s:set_header(%d, %q, %q, %q)", path, c, s.names[c], s.units[c],
                           s.aggs[c])
  end
  out[#out + 1] = format("%s:fromstring(%q)", path, tostring_state(s))
  if s.annotations then
    for t, row in pairs(s.annotations) do
      for c = 1, s.cols do
        local a = row[c]
        if a then
          out[#out + 1] = format("%s:annotate(%s, %d, %q, %q, %s)", path,
                                 exact_number(t * 1e9), c, a.kind, a.text,
                                 tostring(a.pending))
        end
      end
    end
  end
  return concat(out, "\n")
end

host.kind(meta, {name = "cbuf", output = output, serialize = serialize})

circular_buffer = M
return M
