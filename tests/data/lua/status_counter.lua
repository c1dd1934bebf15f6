-- Filter written for hekapy's sandbox tests: counts HTTP responses by status class
-- and service (LMA's http metrics filters work this way). Every timer_event reports
-- the counts with inject_payload (a text table) and one inject_message metric.
-- preserve_data keeps `counts` and `seen` across restarts.
_PRESERVATION_VERSION = 1

counts = {}     -- service -> {["2xx"] = n, ...}
seen = 0
last_report = nil

local payload_name = read_config("payload_name") or "http_status"

function process_message()
    local status = read_message("Fields[http_status]")
    if not status then return -1, "no http_status field" end
    local service = read_message("Logger")
    local class = string.format("%dxx", math.floor(status / 100))
    local per = counts[service]
    if not per then
        per = {}
        counts[service] = per
    end
    per[class] = (per[class] or 0) + 1
    seen = seen + 1
    return 0
end

function timer_event(ns)
    local services = {}
    for service in pairs(counts) do services[#services + 1] = service end
    table.sort(services)
    for _, service in ipairs(services) do
        local classes = {}
        for class in pairs(counts[service]) do classes[#classes + 1] = class end
        table.sort(classes)
        for _, class in ipairs(classes) do
            add_to_payload(service, " ", class, " ", counts[service][class], "\n")
        end
    end
    inject_payload("txt", payload_name, "total ", seen, "\n")
    inject_message({Type = "http_counts", Timestamp = ns,
                    Fields = {total = {value = seen, value_type = 2},
                              services = #services}})
    last_report = ns
end
