-- OpenStack (oslo.log) decoder for Heka's SandboxDecoder, written for hekapy's tests
-- in the style of the LMA collector's openstack_log.lua: an LPEG grammar for the line,
-- shared grammars from a module (oslo_patterns.lua, found through module_directory),
-- one message injected per line. Unlike LMA it does not merge tracebacks: each line is
-- its own message, which is what the comparison with OpenStackLogDecoder needs.
--
-- Input Logger "<service>_<program>" (the Logstreamer differentiator), output:
-- Type "log", Logger "openstack.<service>", the line's time, pid and severity,
-- Payload = the message part, and the fields of docs/compatibility.md, "LMA decoders".
local l = require "lpeg"
l.locale(l)
local patterns = require "oslo_patterns"

local TRACEBACK = "Traceback (most recent call last):"

local severity = {
    CRITICAL = 2, ERROR = 3, WARNING = 4, INFO = 6, DEBUG = 7,
    AUDIT = 7, TRACE = 7, -- oslo.log's extras, absent from the syslog map
}

local level = l.P"CRITICAL" + "ERROR" + "WARNING" + "INFO" + "AUDIT" + "DEBUG" + "TRACE"
local line = l.Ct(l.Cg(patterns.Timestamp, "Timestamp") * " "
                  * l.Cg(l.digit^1 / tonumber, "Pid") * " "
                  * l.Cg(l.C(level), "SeverityLabel") * " "
                  * l.Cg(l.C((l.alnum + l.S"_.-")^1), "PythonModule") * l.P" "^-1
                  * l.Cg(l.C(l.P(1)^0), "Message"))

-- Reused for every message, as the LMA decoders did.
local msg = {Type = "log"}

function process_message()
    local m = l.match(line, read_message("Payload"))
    if not m then
        return -1, "not an oslo.log line"
    end
    local logger = read_message("Logger")
    local cut = string.find(logger, "_", 1, true)
    local service, program = logger, ""
    if cut then
        service, program = string.sub(logger, 1, cut - 1), string.sub(logger, cut + 1)
    end
    if program == "" then program = service end

    local text = m.Message
    local fields = {
        severity_label = m.SeverityLabel,
        python_module = m.PythonModule,
        programname = program,
    }
    if string.sub(text, 1, #TRACEBACK) ~= TRACEBACK then
        local ctx = patterns.request_context(text)
        if ctx then
            for k, v in pairs(ctx) do fields[k] = v end
        end
        if string.find(text, "HTTP/", 1, true) then
            local http = l.match(patterns.http, text)
            if http then
                for k, v in pairs(http) do fields[k] = v end
                -- whole numbers as INTEGER fields, as the native decoder types them
                fields.http_status = {value = http.http_status, value_type = 2}
                fields.http_response_size = {value = http.http_response_size, value_type = 2}
                local ip = l.match(patterns.first_ipv4, text)
                if ip then fields.http_client_ip_address = ip end
            end
        end
        local module = m.PythonModule
        if string.find(module, "lbaas", 1, true) or string.sub(module, 1, 7) == "octavia" then
            local name, id = l.match(patterns.lbaas, text)
            if name then fields[name] = id end
        end
    end

    msg.Logger = "openstack." .. service
    msg.Timestamp = m.Timestamp
    msg.Pid = m.Pid
    msg.Severity = severity[m.SeverityLabel]
    msg.Payload = text
    msg.Fields = fields
    inject_message(msg)
    return 0
end
