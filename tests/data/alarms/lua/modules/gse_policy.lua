-- hekapy's tests: the policy steps of a GSE cluster, in Lua (docs/alarms.md, "GSE").
-- LMA's generated gse_policies.lua calls gse_policy.new for each step.

local text = require "alarm_text"

local M = {}

function M.new(step)
    local p = {status = text.STATUS[string.lower(step.status)], rules = {}, logical = "or"}
    if step.trigger then
        p.logical = string.lower(step.trigger.logical_operator or "or")
        for _, r in ipairs(step.trigger.rules or {}) do
            local statuses = {}
            for _, s in ipairs(r.arguments) do statuses[#statuses + 1] = text.STATUS[s] end
            p.rules[#p.rules + 1] = {fn = r["function"], statuses = statuses,
                                     op = r.relational_operator, threshold = tonumber(r.threshold)}
        end
    end
    return p
end

-- Whether the step holds for {status = number of groups}.
function M.holds(p, breakdown)
    if #p.rules == 0 then return true end
    local total = 0
    for _, n in pairs(breakdown) do total = total + n end
    local any = false
    for _, r in ipairs(p.rules) do
        local value = 0
        for _, s in ipairs(r.statuses) do value = value + (breakdown[s] or 0) end
        if r.fn == "percent" then value = value * 100 / total end
        if text.compare(value, r.op, r.threshold) then
            any = true
            if p.logical == "or" then return true end
        elseif p.logical == "and" then
            return false
        end
    end
    return any
end

return M
