-- hekapy's tests: the annotations of cluster status changes, in Lua, written from
-- docs/alarms.md to hold the native InfluxdbAnnotationFilter to the same messages.

local text = require "alarm_text"

local measurement = read_config("measurement_name") or "annotations"
local last = {}

function process_message()
    local cluster = read_message("Fields[cluster_name]")
    local status = read_message("Fields[value]")
    local alarms = text.alarms_of(read_message("Payload"))
    if cluster == nil or text.LABEL[status] == nil or alarms == nil then return -1 end
    local previous = last[cluster]
    local title
    if previous == nil and status == text.STATUS.okay then return 0 end
    if previous == nil then
        title = "General status is " .. text.LABEL[status]
    elseif previous ~= status then
        title = "General status " .. text.LABEL[previous] .. " -> " .. text.LABEL[status]
    else
        return 0
    end
    last[cluster] = status
    inject_message({
        Timestamp = read_message("Timestamp"), Type = "metric", Severity = 6,
        Fields = {name = measurement, tag_fields = {"cluster"},
                  value_fields = {"title", "tags", "text"}, title = title, tags = cluster,
                  text = table.concat(text.lines(alarms), "<br />"), cluster = cluster,
                  source = "influxdb_annotation"}})
    return 0
end
