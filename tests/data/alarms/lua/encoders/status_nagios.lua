-- hekapy's tests: Nagios passive checks of status messages, in Lua, written from
-- docs/alarms.md to hold the native NagiosEncoder to the same bytes.

local text = require "alarm_text"

local host = read_config("nagios_host")
local template = read_config("service_template") or error("service_template")
local limit = read_config("truncate_size") or 3072
local STATES = {[0] = 0, [1] = 1, [2] = 3, [3] = 2, [4] = 2}
local BREAK = "\\n"

local function encode(s)
    s = string.gsub(tostring(s), "([^%w %-_%.~])",
                    function(c) return string.format("%%%02X", string.byte(c)) end)
    return (string.gsub(s, " ", "+"))
end

-- Cut after the last whole line that fits, or at the limit.
local function cut(s)
    if #s <= limit then return s end
    local keep, from = nil, 1
    while true do
        local a, b = string.find(s, BREAK, from, true)
        if a == nil or a - 1 > limit then break end
        keep = a - 1
        from = b + 1
    end
    if keep == nil or keep < 1 then keep = limit end
    return string.sub(s, 1, keep)
end

function process_message()
    local service = string.gsub(template, "%%{(.-)}", function(k)
        local v = read_message("Fields[" .. k .. "]")
        if v ~= nil then return tostring(v) end
    end)
    local status = read_message("Fields[value]")
    local alarms = text.alarms_of(read_message("Payload"))
    if STATES[status] == nil or alarms == nil then return -1 end
    local lines = {service .. " " .. text.LABEL[status]}
    local details = text.lines(alarms)
    if #details == 0 then details = {"no details"} end
    for _, l in ipairs(details) do lines[#lines + 1] = l end
    local params = {"cmd_typ=30", "cmd_mod=2"}
    if host and host ~= "" then params[#params + 1] = "host=" .. encode(host) end
    params[#params + 1] = "service=" .. encode(service)
    params[#params + 1] = "plugin_state=" .. STATES[status]
    params[#params + 1] = "plugin_output=" .. encode(cut(table.concat(lines, BREAK)))
    params[#params + 1] = "performance_data="
    inject_payload("txt", "nagios", table.concat(params, "&"))
    return 0
end
