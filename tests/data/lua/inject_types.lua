-- Written for hekapy's sandbox tests: each record's Payload names a case of
-- inject_message's typing rules (docs/compatibility.md, "Lua sandbox"); the script
-- injects that case.
-- API errors are caught with pcall and returned as the failure reason, so one bad
-- case does not terminate the sandbox.
local cases = {}

cases.scalars = function()
    return {Type = "scalars", Fields = {s = "text", n = 42, f = 1.5, b = true, no = false}}
end

cases.typed = function()
    return {Type = "typed", Fields = {
        i = {value = 42.9, value_type = 2, representation = "count"},
        neg = {value = -7.9, value_type = 2},
        raw = {value = "\0\1\255", value_type = 1},
        d = {value = 3, value_type = 3, representation = "ms"},
        s = {value = "x", value_type = 0, representation = "uri"},
        flag = {value = true, value_type = 4},
    }}
end

cases.arrays = function()
    return {Type = "arrays", Fields = {
        names = {"a", "b", "c"},
        nums = {1, 2.5, 3},
        ints = {value = {1, 2, 3}, value_type = 2, representation = "B"},
        flags = {true, false},
        empty = {},
    }}
end

cases.array_form = function()
    return {Type = "array_form", Fields = {
        {name = "first", value = "1"},
        {name = "second", value = 2, value_type = 2, representation = "B"},
        {name = "first", value = "again"},
        {name = "list", value = {"x", "y"}},
    }}
end

cases.headers = function()
    return {Uuid = "0123456789abcdef", Timestamp = 1.5e18, Type = "headers",
            Logger = "my-logger", Hostname = "my-host", Severity = 3, Pid = 77,
            EnvVersion = "2", Payload = "the payload", Fields = {}}
end

cases.defaults = function()
    -- No Uuid/Timestamp/Logger/Hostname/Severity/Pid: a decoder keeps the record's.
    return {Type = "defaults", Uuid = "too short"}
end

cases.mixed = function()
    return {Type = "mixed", Fields = {bad = {1, "two"}}}
end

cases.inconsistent = function()
    return {Type = "inconsistent", Fields = {bad = {value = "text", value_type = 2}}}
end

cases.unsupported = function()
    return {Type = "unsupported", Fields = {bad = {nested = {1}}}}
end

function process_message()
    local name = read_message("Payload")
    if name == "roundtrip" then
        -- decode_message gives the array form; inject it again, changed.
        local t = decode_message(read_message("raw"))
        t.Type = "copy of " .. (t.Type or "")
        t.Fields[#t.Fields + 1] = {name = "copied", value = true}
        inject_message(t)
        return 0
    end
    if name == "protobuf" then
        inject_message(read_message("raw"))
        return 0
    end
    if name == "two" then
        inject_message({Type = "one"})
        inject_message({Type = "two"})
        return 0
    end
    local case = cases[name]
    if not case then return -1, "unknown case " .. tostring(name) end
    local ok, err = pcall(inject_message, case())
    if not ok then return -1, err end
    return 0
end
