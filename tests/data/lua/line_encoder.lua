-- Encoder written for hekapy's sandbox tests: one text line per log message,
-- "<Logger> <severity_label> <Payload>" with a configurable separator.
--   * messages with a field skip=true: -2, nothing is written;
--   * Type "rewrite": write_message changes the message, which is then encoded as
--     protobuf (return 0 without output);
--   * Type "refuse": -1 with a reason (an encode error).
local sep = read_config("separator") or " "

function process_message()
    if read_message("Fields[skip]") then return -2 end
    local t = read_message("Type")
    if t == "refuse" then return -1, "refused by line_encoder" end
    if t == "rewrite" then
        write_message("Type", "rewritten")
        write_message("Fields[encoded_by]", "line_encoder")
        return 0
    end
    local payload = read_message("Payload")
    if string.sub(payload, -1) == "\n" then payload = string.sub(payload, 1, -2) end
    add_to_payload(read_message("Logger"), sep,
                   read_message("Fields[severity_label]") or "-", sep, payload, "\n")
    inject_payload("txt", "line")
    return 0
end
