-- hekapy's tests: a GSE filter in Lua, written from docs/alarms.md to hold the native
-- GseFilter to the same messages (tests/filters/test_alarms_differential.py). It reads LMA's
-- configuration keys and generated topology and policy modules.

local text = require "alarm_text"
local gse_policy = require "gse_policy"

local out_type = read_config("output_message_type") or error("output_message_type")
local cluster_field = read_config("cluster_field")
local member_field = read_config("member_field") or error("member_field")
local out_name = read_config("output_metric_name") or error("output_metric_name")
local source = read_config("source") or error("source")
local interval = (read_config("interval") or error("interval")) * 1e9
local max_inject = read_config("max_inject") or 10
local warm_up = (read_config("warm_up_period") or 0) * 1e9
local alerting = read_config("activate_alerting")
local vip = read_config("vip_resource") or "vip__management"
local topology = require(read_config("topology_file") or error("topology_file"))
local policies = require(read_config("policies_file") or error("policies_file"))

local clusters, order, memberships = {}, {}, {}
for name, c in pairs(topology.clusters) do
    local policy = policies.find(c.policy) or error("no policy " .. c.policy)
    local group_by = c.group_by
    if group_by ~= "hostname" and group_by ~= "member" then group_by = "none" end
    local members = {}
    for _, m in ipairs(c.members) do members[m] = true end
    clusters[name] = {policy = policy, group_by = group_by, hints = c.hints or {},
                      members = members, facts = {}, alarms = {}, status = text.STATUS.unknown}
end

-- Each cluster after its hints, otherwise by name.
local names = {}
for name in pairs(clusters) do names[#names + 1] = name end
table.sort(names)
local placed = {}
local function place(name)
    if placed[name] then return end
    placed[name] = true
    local hints = {}
    for _, h in ipairs(clusters[name].hints) do hints[#hints + 1] = h end
    table.sort(hints)
    for _, h in ipairs(hints) do
        if clusters[h] then place(h) end
    end
    order[#order + 1] = name
end
for _, name in ipairs(names) do place(name) end
for _, name in ipairs(order) do
    for m in pairs(clusters[name].members) do
        memberships[m] = memberships[m] or {}
        table.insert(memberships[m], name)
    end
end

local active = vip == ""
local first_tick, last_tick, last_index = nil, 0, nil

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    return keys
end

local function copy(v)
    if type(v) ~= "table" then return v end
    local c = {}
    for k, x in pairs(v) do c[k] = copy(x) end
    return c
end

function process_message()
    if vip ~= "" and read_message("Fields[name]") == "pacemaker_local_resource_active"
            and read_message("Fields[resource]") == vip then
        if read_message("Hostname") == read_message("Fields[hostname]") then
            active = read_message("Fields[value]") == 1
        end
        return 0
    end
    local member = read_message("Fields[" .. member_field .. "]")
    if member == nil then return -1, "no member" end
    local status = read_message("Fields[value]")
    if text.LABEL[status] == nil then return -1, "no status" end
    local alarms = text.alarms_of(read_message("Payload"))
    if alarms == nil then return -1, "no alarms" end
    local targets
    if cluster_field then
        local name = read_message("Fields[" .. cluster_field .. "]")
        if name == nil then return -1, "no cluster" end
        if clusters[name] == nil then return 0 end
        targets = {name}
    else
        targets = memberships[member] or {}
    end
    local hostname = read_message("Fields[hostname]")
    for _, name in ipairs(targets) do
        local c = clusters[name]
        local k1, k2 = member, hostname
        if c.group_by == "hostname" then k1, k2 = hostname, member
        elseif c.group_by == "member" then k2 = "__anyhost__" end
        if k1 == nil or k2 == nil then return -1, "no hostname" end
        c.facts[k1] = c.facts[k1] or {}
        local fact = {status = status, alarms = copy(alarms), member = member}
        if c.group_by == "hostname" then fact.hostname = hostname end
        c.facts[k1][k2] = fact
    end
    return 0
end

local function refresh(c)
    local alarms, breakdown = {}, {}
    for _, k1 in ipairs(sorted_keys(c.facts)) do
        local group = text.STATUS.unknown
        for _, k2 in ipairs(sorted_keys(c.facts[k1])) do
            local fact = c.facts[k1][k2]
            group = text.worse(group, fact.status)
            if fact.status ~= text.STATUS.okay then
                for _, a in ipairs(fact.alarms) do
                    local x = copy(a)
                    if type(x.tags) ~= "table" then x.tags = {} end
                    x.tags.dependency_name = fact.member
                    x.tags.dependency_level = "direct"
                    if fact.hostname then x.hostname = fact.hostname end
                    alarms[#alarms + 1] = x
                end
            end
        end
        breakdown[group] = (breakdown[group] or 0) + 1
    end
    c.status = text.STATUS.unknown
    for _, step in ipairs(c.policy) do
        if gse_policy.holds(step, breakdown) then
            c.status = step.status
            break
        end
    end
    if c.status == text.STATUS.okay then c.alarms = {} else c.alarms = alarms end
end

local function send(name)
    local c = clusters[name]
    refresh(c)
    local alarms = copy(c.alarms)
    if c.status ~= text.STATUS.okay then
        for _, h in ipairs(c.hints) do
            local other = clusters[h]
            for _, a in ipairs(other and other.alarms or {}) do
                local dep = a.tags and a.tags.dependency_name
                if dep and not c.members[dep] then
                    local x = copy(a)
                    x.tags.dependency_name = h
                    x.tags.dependency_level = "hint"
                    alarms[#alarms + 1] = x
                end
            end
        end
    end
    local fields = {name = out_name, value = c.status, cluster_name = name,
                    tag_fields = {"cluster_name"}, interval = interval / 1e9, source = source}
    if alerting == false then fields.no_alerting = true end
    inject_message({Type = out_type, Payload = text.payload(alarms), Fields = fields})
end

function timer_event(ns)
    if not active then return end
    if first_tick == nil then
        first_tick = ns
        return
    end
    if ns - first_tick <= warm_up then return end
    if last_index == nil and ns - last_tick < interval then return end
    last_tick = ns
    local sent = 0
    for i, name in ipairs(order) do
        if last_index == nil or i > last_index then
            send(name)
            last_index = i
            sent = sent + 1
            if sent >= max_inject then return end
        end
    end
    last_index = nil
end
