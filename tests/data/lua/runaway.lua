-- A filter that never returns (tests: instruction_limit). It even catches the
-- limit's error with pcall, which must not save it.
spins = 0

function process_message()
    while true do
        pcall(function()
            while true do spins = spins + 1 end
        end)
    end
    return 0
end
