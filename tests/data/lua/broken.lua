-- A decoder with a bug on line 9 (tests: error messages name plugin, script, line).
local settings = nil

function process_message()
    local payload = read_message("Payload")
    if payload == "fine" then
        return 0
    end
    return settings.threshold -- line 9: settings is nil
end
