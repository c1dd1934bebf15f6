-- Self-monitoring filter written for hekapy's tests to the contract of the LMA
-- collector's heka_monitoring.lua: it takes Heka's heka.all-report messages (matcher
-- "Type == 'heka.all-report'"), decodes the JSON Payload and, for every entry of the
-- "filters" and "decoders" lists, reads Name, ProcessMessageCount.value and
-- ProcessMessageAvgDuration.value (an entry without them is a Lua error, as there),
-- plus Memory, TimerEventAvgDuration and TimerEventSamples when present. The points
-- go out as one message (Type bulk_metric, the points as a JSON Payload), named
-- hekad_msg_count, hekad_msg_avg_duration, hekad_memory,
-- hekad_timer_event_avg_duration and hekad_timer_event_count, tagged with the plugin
-- kind ("filter", "decoder") and its name without the "_filter"/"_decoder" suffix.
require "cjson"  -- Heka's sandbox left a global `cjson`
require "string"

local function add_points(points, kind, entries)
    for _, entry in ipairs(entries) do
        local name = string.gsub(entry.Name, "_" .. kind, "")
        local tags = {type = kind, name = name}
        local function point(metric, value)
            points[#points + 1] = {name = metric, value = value, tags = tags}
        end
        point("hekad_msg_count", entry.ProcessMessageCount.value)
        point("hekad_msg_avg_duration", entry.ProcessMessageAvgDuration.value)
        if entry.Memory then point("hekad_memory", entry.Memory.value) end
        if entry.TimerEventAvgDuration then
            point("hekad_timer_event_avg_duration", entry.TimerEventAvgDuration.value)
        end
        if entry.TimerEventSamples then
            point("hekad_timer_event_count", entry.TimerEventSamples.value)
        end
    end
end

function process_message()
    local ok, report = pcall(cjson.decode, read_message("Payload"))
    if not ok then return -1, "the Payload is not JSON" end
    local points = {}
    add_points(points, "filter", report.filters or {})
    add_points(points, "decoder", report.decoders or {})
    inject_message({Type = "bulk_metric", Timestamp = read_message("Timestamp"),
                    Hostname = read_message("Hostname"), Severity = 6,
                    Payload = cjson.encode(points),
                    Fields = {source = "internal", hostname = read_message("Hostname")}})
    return 0
end
