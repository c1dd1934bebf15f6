-- Lines and errors per minute of the logs it sees, in a circular buffer that
-- preserve_data keeps across restarts (tests/sandbox/test_sandbox_modules.py).
require "circular_buffer"

_PRESERVATION_VERSION = 1

counts = circular_buffer.new(5, 2, 60, true)
local LINES = counts:set_header(1, "Lines")
local ERRORS = counts:set_header(2, "Errors", "count", "sum")

function process_message()
    local ts = read_message("Timestamp")
    counts:add(ts, LINES, 1)
    local severity = read_message("Severity")
    counts:add(ts, ERRORS, (severity and severity <= 3) and 1 or 0)
    return 0
end

function timer_event(ns)
    inject_payload("cbuf", "log_counts", counts:format("cbuf"))
    local lines, rows = counts:compute("sum", LINES)
    inject_message({Type = "log_rate",
                    Fields = {lines = lines, rows = rows, newest = counts:current_time()}})
end
