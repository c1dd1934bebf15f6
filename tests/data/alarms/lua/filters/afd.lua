-- hekapy's tests: an AFD filter in Lua, written from docs/alarms.md to hold the native
-- AfdFilter to the same messages (tests/filters/test_alarms_differential.py). It reads LMA's
-- configuration keys and alarm module, keeps datapoints in hekapy's circular_buffer
-- and injects afd_node_metric / afd_service_metric messages.

local circular_buffer = require "circular_buffer"
local expression = require "field_expression"
local text = require "alarm_text"

local KINDS = {
    node = {type = "afd_node_metric", name = "node_status", field = "node_role"},
    service = {type = "afd_service_metric", name = "service_status", field = "service"},
}
local kind = KINDS[read_config("afd_type") or ""] or error("afd_type must be node or service")
local cluster = read_config("afd_cluster_name") or error("afd_cluster_name is missing")
local member = read_config("afd_logical_name") or error("afd_logical_name is missing")
local hostname = read_config("hostname") or error("hostname is missing")
local alerting = read_config("activate_alerting")
local spr = read_config("seconds_per_row") or 5
local definitions = require(read_config("afd_file") or error("afd_file is missing"))

local alarms = {}
local needed = {} -- metric -> list of field names
local started = false

local function add_needed(metric, name)
    local list = needed[metric] or {}
    needed[metric] = list
    for _, n in ipairs(list) do
        if n == name then return end
    end
    list[#list + 1] = name
end

for _, def in ipairs(definitions) do
    local alarm = {description = def.description or "",
                   severity = text.STATUS[string.lower(def.severity)],
                   logical = string.lower(def.trigger.logical_operator or "or"),
                   rules = {}, start = 0}
    local policy = def.no_data_policy and string.lower(def.no_data_policy) or "unknown"
    if policy == "skip" then alarm.skip = true else alarm.no_data = text.STATUS[policy] end
    for i, r in ipairs(def.trigger.rules) do
        local window = tonumber(r.window) or 0
        if window <= 0 then window = 10 end
        local periods = tonumber(r.periods) or 0
        if periods <= 0 then periods = 1 end
        local rule = {metric = r.metric, fn = r["function"], op = r.relational_operator,
                      threshold = tonumber(r.threshold), window = window, periods = periods,
                      fields = r.fields or {}, group_by = r.group_by or {}, value = r.value,
                      matchers = {}, stores = {}, order = {}}
        rule.span = math.ceil(window * periods)
        rule.rows = math.ceil(window * periods / spr)
        local names = {}
        for f, e in pairs(rule.fields) do
            rule.matchers[f] = expression.new(e)
            names[#names + 1] = f
            add_needed(rule.metric, f)
        end
        for _, g in ipairs(rule.group_by) do add_needed(rule.metric, g) end
        if #names == 0 then add_needed(rule.metric, nil) end
        table.sort(names)
        local id = {rule.metric, rule.fn, rule.window, rule.periods}
        for _, f in ipairs(names) do id[#id + 1] = "(" .. f .. "=" .. rule.fields[f] .. ")" end
        rule.id = table.concat(id, "/")
        if i == 1 then alarm.wait = window * periods * 1e9 end
        alarm.rules[#alarm.rules + 1] = rule
    end
    alarms[#alarms + 1] = alarm
end

local function value_of_metric()
    local listed = read_message("Fields[value_fields]")
    if listed then
        local values, i = {}, 0
        while true do
            local name = read_message("Fields[value_fields]", 0, i)
            if not name then break end
            values[name] = read_message("Fields[" .. name .. "]")
            i = i + 1
        end
        return values
    end
    return read_message("Fields[value]")
end

local function store_of(rule, fields)
    local key = rule.id
    if #rule.group_by > 0 then
        local parts = {key}
        for _, g in ipairs(rule.group_by) do parts[#parts + 1] = fields[g] end
        key = table.concat(parts, "/")
    end
    local store = rule.stores[key]
    if store then return store end
    local cbuf
    if rule.fn == "avg" then
        cbuf = circular_buffer.new(rule.rows, 2, spr)
    elseif rule.fn == "min" or rule.fn == "max" then
        cbuf = circular_buffer.new(rule.rows, 1, spr)
        cbuf:set_header(1, rule.metric, "count", rule.fn)
    else
        cbuf = circular_buffer.new(rule.rows, 1, spr)
    end
    local shown = rule.fields
    if #rule.group_by > 0 then
        shown = {}
        for k, v in pairs(fields) do shown[k] = v end
    end
    store = {cbuf = cbuf, fields = shown}
    rule.stores[key] = store
    rule.order[#rule.order + 1] = key
    return store
end

local function accepts(rule, fields)
    local any, present = false, false
    for name, matcher in pairs(rule.matchers) do
        any = true
        if fields[name] ~= nil then
            if not expression.matches(matcher, fields[name]) then return false end
            present = true
        end
    end
    return not any or present
end

function process_message()
    local metric = read_message("Fields[name]")
    local wanted = needed[metric]
    if not wanted then return 0 end
    local value = value_of_metric()
    if value == nil then return -1, "no value" end
    local fields = {}
    for _, name in ipairs(wanted) do
        local v = read_message("Fields[" .. name .. "]")
        if v == nil then return -1, "missing Fields[" .. name .. "]" end
        fields[name] = v
    end
    local ts = read_message("Timestamp")
    for _, alarm in ipairs(alarms) do
        for _, rule in ipairs(alarm.rules) do
            if rule.metric == metric and accepts(rule, fields) then
                local v = value
                if type(v) == "table" then v = rule.value and v[rule.value] end
                if type(v) == "number" then
                    local store = store_of(rule, fields)
                    if rule.fn == "avg" then
                        store.cbuf:add(ts, 1, v)
                        store.cbuf:add(ts, 2, 1)
                    else
                        store.cbuf:set(ts, 1, v)
                    end
                end
            end
        end
    end
    return 0
end

local function number(v)
    return v ~= nil and v == v
end

local function newest(cbuf, ns, horizon)
    local t, v = ns, nil
    while not number(v) and t >= ns - horizon do
        v = cbuf:get(t, 1)
        t = t - spr * 1e9
    end
    return v
end

local function oldest(cbuf, ns, horizon)
    local t, v = ns - horizon, nil
    while not number(v) and t <= ns do
        v = cbuf:get(t, 1)
        t = t + spr * 1e9
    end
    return v
end

-- outcome: "match", "missing", "nomatch", "nodata"; and the contexts to report
local function evaluate_rule(rule, ns)
    local contexts, match, missing, nomatch = {}, false, false, false
    local horizon = rule.span * 1e9
    for _, key in ipairs(rule.order) do
        local store = rule.stores[key]
        local cbuf = store.cbuf
        if ns - cbuf:current_time() > horizon then
            missing = true
            contexts[#contexts + 1] = {value = -1, fields = store.fields}
        else
            local result
            if rule.fn == "avg" then
                result = cbuf:compute("sum", 1) / cbuf:compute("sum", 2)
            elseif rule.fn == "last" or rule.fn == "diff" then
                local last = newest(cbuf, ns, horizon)
                local first
                if rule.fn == "diff" and number(last) then first = oldest(cbuf, ns, horizon) end
                if number(last) and (rule.fn == "last" or number(first)) then
                    result = last
                    if rule.fn == "diff" then result = last - first end
                else
                    missing = true
                    contexts[#contexts + 1] = {value = -1, fields = store.fields}
                end
            else
                result = cbuf:compute(rule.fn, 1)
            end
            if result ~= nil then
                if text.compare(result, rule.op, rule.threshold) then
                    match = true
                    contexts[#contexts + 1] = {value = result, fields = store.fields}
                else
                    nomatch = true
                end
            end
        end
    end
    if match then return "match", contexts end
    if missing then return "missing", contexts end
    if nomatch then return "nomatch", {} end
    return "nodata", {{value = -1, fields = rule.fields}}
end

local function evaluate_alarm(alarm, ns)
    local matches, unknown, found, message = 0, false, {}, ""
    for _, rule in ipairs(alarm.rules) do
        local outcome, contexts = evaluate_rule(rule, ns)
        if outcome == "match" then
            matches = matches + 1
            message = alarm.description
        elseif outcome == "missing" then
            message = "No datapoint have been received over the last " .. rule.span .. " seconds"
            unknown = true
        elseif outcome == "nodata" then
            message = "No datapoint have been received ever"
            unknown = true
        end
        for _, c in ipairs(contexts) do
            found[#found + 1] = {rule = rule, value = c.value, fields = c.fields, message = message}
        end
    end
    local no_data = alarm.no_data
    if alarm.skip then no_data = nil end
    local state = text.STATUS.okay
    if alarm.logical == "and" then
        if unknown then state = no_data
        elseif matches == #alarm.rules then state = alarm.severity end
    elseif matches > 0 then
        state = alarm.severity
    elseif unknown then
        state = no_data
    end
    if state == nil or state == text.STATUS.okay then found = {} end
    return state, found
end

function timer_event(ns)
    if not started then
        started = true
        for _, alarm in ipairs(alarms) do alarm.start = ns end
        return
    end
    local status, reported = nil, {}
    for _, alarm in ipairs(alarms) do
        if ns - alarm.start >= alarm.wait then
            local state, found = evaluate_alarm(alarm, ns)
            status = text.worse(state, status)
            for _, f in ipairs(found) do
                local r = f.rule
                reported[#reported + 1] = {
                    severity = text.LABEL[state], ["function"] = r.fn, metric = r.metric,
                    fields = f.fields, tags = {}, operator = r.op, value = f.value,
                    threshold = r.threshold, window = r.window, periods = r.periods,
                    message = f.message}
            end
            if status ~= nil and status ~= text.STATUS.okay and status ~= text.STATUS.unknown then
                break
            end
        end
    end
    if status == nil then return end
    local fields = {name = kind.name, value = status, hostname = hostname, source = member,
                    tag_fields = {kind.field, "source", "hostname"}}
    fields[kind.field] = cluster
    if alerting == false then fields.no_alerting = true end
    inject_message({Type = kind.type, Payload = text.payload(reported), Fields = fields})
end
