-- hekapy's tests: the field expressions of alarm rules, in Lua, written from
-- docs/alarms.md ("Rules") to check the native AfdFilter against an independent
-- implementation. Handles the expressions the tests use: a bare value (equality), or
-- terms "<op> <operand>" joined by && and || (&& binds tighter), numeric when every
-- operand is a number.

local M = {}

local OPS = {"==", "!=", "=~", "!~", "<=", ">=", "<", ">"}
local NUMERIC_OPS = {["=="] = true, ["!="] = true, ["<="] = true, [">="] = true,
                     ["<"] = true, [">"] = true}

local function trim(s)
    return (string.gsub(string.gsub(s, "^%s+", ""), "%s+$", ""))
end

local function split(s, sep)
    local out, from = {}, 1
    while true do
        local a, b = string.find(s, sep, from, true)
        if not a then
            out[#out + 1] = string.sub(s, from)
            return out
        end
        out[#out + 1] = string.sub(s, from, a - 1)
        from = b + 1
    end
end

local function has_operator(e)
    for _, op in ipairs(OPS) do
        if string.find(e, op, 1, true) then return true end
    end
    return string.find(e, "||", 1, true) or string.find(e, "&&", 1, true)
end

local function term(text)
    text = trim(text)
    local op = "=="
    for _, candidate in ipairs(OPS) do
        if string.sub(text, 1, #candidate) == candidate then
            op = candidate
            text = trim(string.sub(text, #candidate + 1))
            break
        end
    end
    local quoted = string.match(text, '^"(.+)"$')
    return {op = op, operand = quoted or text}
end

function M.new(expression)
    local self = {expression = expression}
    if not has_operator(expression) then
        self.simple = true
        return self
    end
    self.alternatives = {}
    local numeric = true
    for _, alt in ipairs(split(expression, "||")) do
        local terms = {}
        for _, t in ipairs(split(alt, "&&")) do
            local parsed = term(t)
            if not (NUMERIC_OPS[parsed.op] and string.match(parsed.operand, "^%-?%d+%.?%d*$")) then
                numeric = false
            end
            terms[#terms + 1] = parsed
        end
        self.alternatives[#self.alternatives + 1] = terms
    end
    self.numeric = numeric
    if numeric then
        for _, terms in ipairs(self.alternatives) do
            for _, t in ipairs(terms) do t.operand = tonumber(t.operand) end
        end
    end
    return self
end

local function holds(value, t)
    local op, x = t.op, t.operand
    if op == "==" then return value == x end
    if op == "!=" then return value ~= x end
    if op == "=~" or op == "!~" then
        if type(value) ~= "string" then value = tostring(value) end
        local found = string.find(value, x) ~= nil
        if op == "=~" then return found end
        return not found
    end
    if type(value) ~= type(x) then return false end
    if op == "<" then return value < x end
    if op == "<=" then return value <= x end
    if op == ">" then return value > x end
    return value >= x
end

function M.matches(self, value)
    if self.simple then
        return value == self.expression or tonumber(self.expression) == value
    end
    if self.numeric then
        value = tonumber(value)
        if value == nil then return false end
    end
    for _, terms in ipairs(self.alternatives) do
        local all = true
        for _, t in ipairs(terms) do
            if not holds(value, t) then
                all = false
                break
            end
        end
        if all then return true end
    end
    return false
end

return M
