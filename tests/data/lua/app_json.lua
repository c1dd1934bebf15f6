-- Decoder for an application's JSON log lines, written for hekapy's sandbox tests in
-- the style of the LMA decoders: an LPEG grammar splits the syslog-like prefix, cjson
-- decodes the JSON body, read_config supplies the message Type.
--
--   2024-03-05T10:20:30.250Z web-3 billing[4242]: {"level":"warning","msg":"slow", ...}
--
-- Output: Type <config type>, Timestamp, Hostname, Logger = the program, Pid,
-- Severity from "level", Payload = "msg", and the other JSON members as fields
-- (nested objects flattened with "_", arrays of scalars kept as arrays).
local l = require "lpeg"
l.locale(l)
local cjson = require "cjson"
local patterns = require "oslo_patterns"

local msg_type = read_config("type") or "app.json"
local severities = {emergency = 0, alert = 1, critical = 2, error = 3, warning = 4,
                    notice = 5, info = 6, debug = 7}

local prefix = l.Ct(l.Cg(patterns.Timestamp, "Timestamp") * l.space^1
                    * l.Cg(l.C((1 - l.space)^1), "Hostname") * l.space^1
                    * l.Cg(l.C((l.alnum + l.S"_-.")^1), "Logger")
                    * "[" * l.Cg(l.digit^1 / tonumber, "Pid") * "]:" * l.space^0
                    * l.Cg(l.C(l.P"{" * l.P(1)^0), "json"))

local function flatten(fields, name, value)
    local t = type(value)
    if t == "table" then
        if #value > 0 then
            fields[name] = value -- an array of scalars
        else
            for k, v in pairs(value) do flatten(fields, name .. "_" .. k, v) end
        end
    elseif t ~= "userdata" then -- cjson.null is a userdata: dropped
        fields[name] = value
    end
end

function process_message()
    local m = l.match(prefix, read_message("Payload"))
    if not m then return -1, "no timestamp/host/program prefix" end
    local ok, doc = pcall(cjson.decode, m.json)
    if not ok or type(doc) ~= "table" then return -1, "invalid JSON body" end

    local fields = {}
    for k, v in pairs(doc) do
        if k ~= "level" and k ~= "msg" then flatten(fields, k, v) end
    end
    inject_message({
        Type = msg_type,
        Timestamp = m.Timestamp,
        Hostname = m.Hostname,
        Logger = m.Logger,
        Pid = m.Pid,
        Severity = severities[doc.level] or 6,
        Payload = doc.msg or "",
        Fields = fields,
    })
    return 0
end
