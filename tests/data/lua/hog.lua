-- A filter that allocates without bound (tests: memory_limit).
local hoard = {}

function process_message()
    local i = #hoard
    while true do
        i = i + 1
        hoard[i] = string.rep("x", 4096) .. i
    end
    return 0
end
