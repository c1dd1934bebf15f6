-- hekapy's tests: LMA's status vocabulary and the one-line rendering of alarms
-- (docs/alarms.md, "Messages"), in Lua, shared by the test scripts.

local M = {}

M.STATUS = {okay = 0, warning = 1, unknown = 2, critical = 3, down = 4}
M.LABEL = {[0] = "OKAY", [1] = "WARN", [2] = "UNKNOWN", [3] = "CRITICAL", [4] = "DOWN"}
local WEIGHT = {[2] = 0, [0] = 1, [1] = 2, [3] = 3, [4] = 4}

function M.worse(a, b)
    if a == nil then return b end
    if b == nil then return a end
    if WEIGHT[a] > WEIGHT[b] then return a end
    return b
end

function M.compare(value, op, threshold)
    if op == "==" or op == "eq" then return value == threshold end
    if op == "!=" or op == "ne" then return value ~= threshold end
    if op == ">=" or op == "gte" then return value >= threshold end
    if op == ">" or op == "gt" then return value > threshold end
    if op == "<=" or op == "lte" then return value <= threshold end
    if op == "<" or op == "lt" then return value < threshold end
    return false
end

function M.line(a)
    local metric = a.metric
    local names = {}
    for k in pairs(a.fields or {}) do names[#names + 1] = k end
    table.sort(names)
    if #names > 0 then
        local parts = {}
        for _, k in ipairs(names) do parts[#parts + 1] = k .. '="' .. tostring(a.fields[k]) .. '"' end
        metric = metric .. "[" .. table.concat(parts, ",") .. "]"
    end
    local host = ""
    if a.hostname then host = ", host=" .. a.hostname end
    return string.format("%s (%s, rule='%s(%s)%s%s', current=%.2f%s)", a.message, a.severity,
                         a["function"], metric, a.operator, tostring(a.threshold), a.value, host)
end

function M.lines(alarms)
    local direct, hints = {}, {}
    for _, a in ipairs(alarms) do
        if a.tags and a.tags.dependency_level == "hint" then
            hints[#hints + 1] = M.line(a)
        else
            direct[#direct + 1] = M.line(a)
        end
    end
    if #hints > 0 then direct[#direct + 1] = "Other related alarms:" end
    for _, h in ipairs(hints) do direct[#direct + 1] = h end
    return direct
end

-- The Payload's alarms (an empty table is what cjson makes of `[]` too).
function M.alarms_of(payload)
    local cjson = require "cjson"
    local ok, doc = pcall(cjson.decode, payload)
    if not ok or type(doc) ~= "table" or type(doc.alarms) ~= "table" then return nil end
    return doc.alarms
end

function M.payload(alarms)
    if #alarms == 0 then return '{"alarms":[]}' end
    local cjson = require "cjson"
    return cjson.encode({alarms = alarms})
end

return M
