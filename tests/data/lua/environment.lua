-- Written for hekapy's sandbox tests: reports what the sandbox lets a script reach.
function process_message()
    local out = {}
    local function report(name, value) out[#out + 1] = name .. "=" .. type(value) end
    for _, name in ipairs({"collectgarbage", "coroutine", "dofile", "load", "loadfile",
                           "loadstring", "newproxy", "print", "io", "debug", "python",
                           "require", "string", "table", "math", "os", "setfenv"}) do
        report(name, _G[name])
    end
    for _, name in ipairs({"getenv", "execute", "exit", "remove", "rename", "setlocale",
                           "tmpname", "time", "date", "clock"}) do
        report("os." .. name, os[name])
    end
    report("package.loadlib", package.loadlib)
    report("lpeg", require("lpeg").match)
    report("re", require("re").compile)
    report("cjson", require("cjson").decode)
    report("io_module", package.loaded.io)
    out[#out + 1] = "socket=" .. tostring((pcall(require, "socket")))
    out[#out + 1] = "attribute=" .. tostring((pcall(function() return read_message.__doc__ end)))
    table.sort(out)
    inject_payload("txt", "environment", table.concat(out, " "))
    return 0
end
