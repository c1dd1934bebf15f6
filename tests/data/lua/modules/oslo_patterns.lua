-- LPEG grammars for oslo.log lines, written for hekapy's sandbox tests in the style of
-- the LMA collector's patterns.lua module (a module loaded with require from
-- module_directory). Each grammar follows the rule OpenStackLogDecoder documents
-- (decoders/openstack_log.py), so that the two decoders can be compared line by line.
local l = require "lpeg"
l.locale(l)

local floor, tonumber, lower, sub = math.floor, tonumber, string.lower, string.sub
local find, gmatch, gsub, upper = string.find, string.gmatch, string.gsub, string.upper
local ipairs = ipairs

local M = {}
setfenv(1, M) -- nothing leaks into the caller's globals

local digit, xdigit, alnum = l.digit, l.xdigit, l.alnum

local function rep(p, n)
    local out = p
    for _ = 2, n do out = out * p end
    return out
end

-- Days since 1970-01-01 of a civil date (proleptic Gregorian calendar).
local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = floor(y / 400)
    local yoe = y - era * 400
    local mp = (m + 9) % 12
    local doy = floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

local function offset_seconds(sign, hh, mm)
    local s = tonumber(hh) * 3600 + tonumber(mm or "0") * 60
    if sign == "-" then return -s end
    return s
end

local function to_ns(t)
    local secs = days_from_civil(t.year, t.month, t.day) * 86400
                 + t.hour * 3600 + t.min * 60 + t.sec - (t.offset or 0)
    local frac = 0
    if t.frac then frac = tonumber(sub(t.frac .. "000000000", 1, 9)) end
    return secs * 1e9 + frac
end

local function num(n, name) return l.Cg(rep(digit, n) / tonumber, name) end

-- "2015-11-30 08:38:59.306", "...T...,306", "...+01:00", "...Z" → nanoseconds (UTC;
-- without an offset the wall-clock time is taken as UTC).
local offset = l.Cg(l.P"Z" * l.Cc(0), "offset")
    + l.Cg((l.C(l.S"+-") * l.C(rep(digit, 2)) * (l.P":"^-1 * l.C(rep(digit, 2)))^-1)
           / offset_seconds, "offset")
Timestamp = l.Ct(num(4, "year") * "-" * num(2, "month") * "-" * num(2, "day") * l.S" T"
                 * num(2, "hour") * ":" * num(2, "min") * ":" * num(2, "sec")
                 * (l.S".," * l.Cg(l.C(digit^1), "frac"))^-1 * offset^-1) / to_ns

-- A UUID, dashed or as 32 hex digits, normalised to the lower-case dashed form.
local function h(n) return l.C(rep(xdigit, n)) end
Uuid = ((h(8) * "-" * h(4) * "-" * h(4) * "-" * h(4) * "-" * h(12))
        + (h(8) * h(4) * h(4) * h(4) * h(12)))
       / function(a, b, c, d, e) return lower(a .. "-" .. b .. "-" .. c .. "-" .. d .. "-" .. e) end
local whole_uuid = Uuid * -1

local function uuid(token)
    if token then return l.match(whole_uuid, token) end
end

-- The request context, the first [...] of a message: old oslo.log
-- "[req-<id> <user> <tenant> ...]", newer "[req-<global> req-<id> <user> <project> ...]"
-- or "[None req-<id> ...]". Returns a table of fields, or nil.
function request_context(text)
    if sub(text, 1, 1) ~= "[" then return nil end
    local close = find(text, "]", 2, true)
    if not close then return nil end
    local tokens = {}
    for tok in gmatch(sub(text, 2, close - 1), "%S+") do tokens[#tokens + 1] = tok end
    local reqs, used = {}, 0
    for _, tok in ipairs(tokens) do
        local id = sub(tok, 1, 4) == "req-" and uuid(sub(tok, 5))
        if id then
            reqs[#reqs + 1] = id
        elseif not (used == 0 and (tok == "-" or tok == "None")) then
            break
        end
        used = used + 1
    end
    if #reqs == 0 then
        local id = uuid(tokens[1])
        if not id then return nil end
        reqs[1], used = id, 1
    end
    local ctx = {request_id = reqs[#reqs]}
    if #reqs > 1 and reqs[1] ~= reqs[#reqs] then ctx.global_request_id = reqs[1] end
    local user, tenant = uuid(tokens[used + 1]), uuid(tokens[used + 2])
    if user and tenant then
        ctx.user_id, ctx.tenant_id = user, tenant
    end
    return ctx
end

-- An eventlet access line anywhere in the message:
-- "GET /path HTTP/1.1" [status: ]200 [len: ]1893 [time: ]0.125
local sp = l.P" "
local access = l.P'"' * l.Cg(l.C(l.R"AZ"^1), "http_method") * sp
    * l.Cg(l.C((1 - l.space)^1), "http_url") * " HTTP/"
    * l.Cg(l.C(digit * "." * digit), "http_version") * '"' * sp^1
    * l.P"status: "^-1 * l.Cg(rep(digit, 3) / tonumber, "http_status") * sp^1
    * l.P"len: "^-1 * l.Cg(digit^1 / tonumber, "http_response_size") * sp^1
    * l.P"time: "^-1 * l.Cg((digit^1 * ("." * digit^1)^-1) / tonumber, "http_response_time")
http = l.P{ l.Ct(access) + 1 * l.V(1) }

-- The first dotted quad that does not start or end inside a word.
local octet = digit * digit^-2
first_ipv4 = l.P{ -l.B(alnum) * l.C(octet * "." * octet * "." * octet * "." * octet)
                  * -(alnum + l.S"_.") + 1 * l.V(1) }

-- Load balancer and pool ids in LBaaS / Octavia messages ("loadbalancer 1234...",
-- "pool_id=abc", ".../lbaas/<uuid>/..."): returns the field name and the id.
local function ci(s)
    local p = l.P(true)
    for c in gmatch(s, ".") do p = p * l.S(lower(c) .. upper(c)) end
    return p
end
local uuid_hex = rep(xdigit, 8) * l.P"-"^-1 * rep(xdigit, 4) * l.P"-"^-1
    * rep(xdigit, 4) * l.P"-"^-1 * rep(xdigit, 4) * l.P"-"^-1 * rep(xdigit, 12)
-- A name of at least two characters that starts and ends with a letter or digit.
local name = l.Cmt(l.C(alnum * (alnum + l.S"_-")^0), function(_, _, s)
    s = gsub(s, "[_-]+$", "")
    if #s >= 2 then return true, s end
    return false
end)
local ident = l.S"'\""^-1 * (l.C(uuid_hex) + name)
local sep = l.S" :="^1
local keyword = l.Cc("loadbalancer_id") * (ci"load" * sp^-1 * ci"balancer" + ci"lb")
    + l.Cc("lbaas_pool_id") * ci"pool"
local by_keyword = -l.B(alnum + "_") * keyword
    * ((l.S" _" * ci"id" * sep * ident) + (sep * ident))
local by_path = l.Cc("loadbalancer_id") * ci"/lbaas/" * ci"v2/"^-1 * (l.C(uuid_hex) / lower)
lbaas = l.P{ by_keyword + by_path + 1 * l.V(1) }

return M
