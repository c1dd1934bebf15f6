"""SandboxDecoder running Lua: an LPEG + cjson decoder, the native/Lua switch, the
environment a script sees, read/write_message, failures, errors that name plugin,
script and line, termination, and a decoder in a running pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hekapy.collector.engine.config import ConfigInvalid, load_config
from hekapy.collector.engine.message import (
    BOOL,
    DOUBLE,
    INTEGER,
    STRING,
    Field,
    Message,
    new_record_message,
)
from hekapy.collector.engine.pipeline import Pipeline
from hekapy.collector.engine.plugin import DecodeError
from hekapy.collector.engine.protobuf import encode_message
from hekapy.collector.sandbox import TERMINATED_TYPE
from hekapy.collector.sandbox.sandbox_decoder import SandboxDecoder
from hekapy.decoders.openstack_log import OpenStackLogDecoder
from tests.helpers.paths import LUA
from tests.helpers.plugins import CollectOutput, ScriptInput, config_from, write_config
from tests.helpers.wait import wait_for

MODULES = LUA / "modules"


def decoder(tmp_path: Path, script: str, extra: str = "") -> SandboxDecoder:
    """A SandboxDecoder built through the config loader, as hekapy builds it."""
    cfg = config_from(tmp_path, f"""
        [dec]
        type = "SandboxDecoder"
        filename = "{LUA / script}"
        module_directory = "{MODULES}"
        {extra}
    """)
    return Pipeline(cfg).build_plugin("dec", "Decoder")


def ns_close(a: int, b: int) -> bool:
    """Lua numbers are doubles: a nanosecond time near 2**60 is exact to 256 ns only,
    in Heka as here."""
    return abs(a - b) <= 256


def record(payload: str, logger: str = "billing_app") -> Message:
    return new_record_message(1_000, "logfile", logger, "node-1", payload)


APP_LINE = ('2024-03-05T10:20:30.250Z web-3 billing[4242]: {"level":"warning",'
            '"msg":"slow query","duration_ms":812.5,"user":{"id":"u-17","admin":false},'
            '"tags":["db","slow"],"retries":2}\n')


def test_lpeg_and_cjson_decoder(tmp_path):
    dec = decoder(tmp_path, "app_json.lua", '[dec.config]\ntype = "billing.json"')
    [m] = dec.decode(record(APP_LINE))
    assert (m.type, m.hostname, m.logger, m.pid, m.severity, m.payload) == (
        "billing.json", "web-3", "billing", 4242, 4, "slow query")
    assert ns_close(m.timestamp, 1709634030250000000)
    fields = {f.name: f for f in m.fields}
    assert fields["duration_ms"] == Field("duration_ms", [812.5], DOUBLE)
    assert fields["retries"] == Field("retries", [2.0], DOUBLE)  # Lua numbers: DOUBLE
    assert fields["user_id"] == Field("user_id", ["u-17"], STRING)
    assert fields["user_admin"] == Field("user_admin", [False], BOOL)
    assert fields["tags"] == Field("tags", ["db", "slow"], STRING)
    assert set(fields) == {"duration_ms", "retries", "user_id", "user_admin", "tags"}
    # The record's Uuid (an input derives it from the position) is kept: a replayed
    # line makes the same document.
    rec = record(APP_LINE)
    rec.uuid = bytes(range(16))
    [again] = dec.decode(rec)
    assert again.uuid == rec.uuid


def test_negative_status_is_a_decode_failure_with_its_reason(tmp_path):
    dec = decoder(tmp_path, "app_json.lua")
    with pytest.raises(DecodeError, match="no timestamp/host/program prefix"):
        dec.decode(record("garbage\n"))
    with pytest.raises(DecodeError, match="invalid JSON body"):
        dec.decode(record("2024-03-05T10:20:30Z web-3 billing[1]: {not json\n"))
    # The sandbox is still alive.
    [m] = dec.decode(record(APP_LINE))
    assert m.type == "app.json"  # read_config("type") is nil without [dec.config]


def test_known_lma_script_runs_native_unless_native_false(tmp_path):
    text = f"""
        [native_dec]
        type = "SandboxDecoder"
        filename = "{LUA / 'openstack_log.lua'}"
          [native_dec.config]
          tz = "UTC"
        [lua_dec]
        type = "SandboxDecoder"
        filename = "{LUA / 'openstack_log.lua'}"
        module_directory = "{MODULES}"
        native = false
    """
    cfg = config_from(tmp_path, text)
    assert cfg.plugins["native_dec"].cls is OpenStackLogDecoder
    assert cfg.plugins["lua_dec"].cls is SandboxDecoder
    lua = Pipeline(cfg).build_plugin("lua_dec", "Decoder")
    [m] = lua.decode(record("2015-11-30 08:38:59.306 3434 INFO nova.api [-] hi\n",
                            "nova_nova-api"))
    assert (m.type, m.logger, m.payload) == ("log", "openstack.nova", "[-] hi\n")


def test_config_errors_name_the_script_and_line(tmp_path):
    bad = tmp_path / "syntax.lua"
    bad.write_text("function process_message()\n  return 0\n\n")  # no `end`
    needs = tmp_path / "needs_module.lua"
    needs.write_text('local x = require "no_such_module"\n'
                     'function process_message() return 0 end\n')
    idle = tmp_path / "idle.lua"
    idle.write_text("local x = 1\n")
    cfg = load_config(write_config(tmp_path, f"""
        [missing]
        type = "SandboxDecoder"
        filename = "{tmp_path / 'nope.lua'}"
        [syntax]
        type = "SandboxDecoder"
        filename = "{bad}"
        [needs]
        type = "SandboxDecoder"
        filename = "{needs}"
        module_directory = "{MODULES}"
        [idle]
        type = "SandboxDecoder"
        filename = "{idle}"
    """))
    errors = {e.section: str(e) for e in cfg.errors}
    assert "nope.lua does not exist" in errors["missing"]
    assert "SandboxDecoder 'syntax'" in errors["syntax"]
    assert "syntax.lua:4: 'end' expected" in errors["syntax"]
    assert "needs_module.lua:1: module 'no_such_module' not found" in errors["needs"]
    assert "defines no process_message()" in errors["idle"]


def test_environment_is_heka_restricted(tmp_path):
    dec = decoder(tmp_path, "environment.lua")
    [m] = dec.decode(record("x"))
    seen = dict(item.split("=") for item in m.payload.split())
    for name in ("collectgarbage", "coroutine", "dofile", "load", "loadfile", "loadstring",
                 "newproxy", "print", "io", "debug", "python", "os.getenv", "os.execute",
                 "os.exit", "os.remove", "os.rename", "os.setlocale", "os.tmpname",
                 "package.loadlib", "io_module"):
        assert seen[name] == "nil", name
    for name in ("require", "setfenv", "os.time", "os.date", "os.clock", "lpeg", "re",
                 "cjson"):
        assert seen[name] == "function", name
    assert seen["string"] == seen["table"] == seen["math"] == seen["os"] == "table"
    assert seen["socket"] == "false"  # system modules other than lpeg/re/cjson: no
    assert seen["attribute"] == "false"
    assert m.type == "heka.sandbox-output"
    assert {f.name: f.values[0] for f in m.fields} == {"payload_type": "txt",
                                                        "payload_name": "environment"}


def test_read_and_write_message(tmp_path):
    script = tmp_path / "rw.lua"
    script.write_text("""
function process_message()
    local out = {}
    for _, v in ipairs({"Type", "Logger", "Payload", "EnvVersion", "Hostname", "Uuid",
                        "Timestamp", "Severity", "Pid"}) do
        out[#out + 1] = v .. "=" .. tostring(read_message(v))
    end
    out[#out + 1] = "f00=" .. tostring(read_message("Fields[multi]"))
    out[#out + 1] = "f01=" .. tostring(read_message("Fields[multi]", 0, 1))
    out[#out + 1] = "f10=" .. tostring(read_message("Fields[multi]", 1, 0))
    out[#out + 1] = "f02=" .. tostring(read_message("Fields[multi]", 0, 2))
    out[#out + 1] = "missing=" .. tostring(read_message("Fields[nope]"))
    out[#out + 1] = "flag=" .. tostring(read_message("Fields[flag]"))
    out[#out + 1] = "bytes=" .. tostring(read_message("Fields[bin]"))
    out[#out + 1] = "rawlen=" .. #read_message("raw")
    local n = 0
    while true do
        local vt, name, value, rep, count = read_next_field()
        if not vt then break end
        n = n + 1
        out[#out + 1] = "next" .. n .. "=" .. name .. ":" .. vt .. ":" .. tostring(value)
                        .. ":" .. rep .. ":" .. count
    end
    write_message("Payload", table.concat(out, " "))
    write_message("Severity", "3")
    write_message("Pid", 12)
    write_message("Uuid", "00112233-4455-6677-8899-aabbccddeeff")
    write_message("Timestamp", "2024-01-02T03:04:05.5Z")
    write_message("Fields[added]", 2, "count")
    write_message("Fields[multi]", "changed", "", 0, 1)
    write_message("Fields[flag]", nil)
    return 0
end
""")
    cfg = config_from(tmp_path, f"""
        [dec]
        type = "SandboxDecoder"
        filename = "{script}"
    """)
    dec = Pipeline(cfg).build_plugin("dec", "Decoder")
    msg = Message(uuid=bytes(range(16)), timestamp=123, type="t", logger="lg", severity=6,
                  payload="p", env_version="1", pid=None, hostname="h", fields=[
                      Field("multi", ["a", "b"], STRING), Field("multi", [7], INTEGER),
                      Field("flag", [True], BOOL), Field("bin", [b"\x00\x01"], 1)])
    out = dec.decode(msg)
    assert out is msg  # no injection: the record's message goes on, as written
    seen = dict(item.split("=", 1) for item in msg.payload.split(" "))
    assert seen == {
        "Type": "t", "Logger": "lg", "Payload": "p", "EnvVersion": "1", "Hostname": "h",
        "Uuid": "00010203-0405-0607-0809-0a0b0c0d0e0f", "Timestamp": "123",
        "Severity": "6", "Pid": "nil", "f00": "a", "f01": "b", "f10": "7", "f02": "nil",
        "missing": "nil", "flag": "true", "bytes": "\x00\x01",
        "rawlen": str(len(encode_message(Message(
            uuid=bytes(range(16)), timestamp=123, type="t", logger="lg", severity=6,
            payload="p", env_version="1", hostname="h", fields=[
                Field("multi", ["a", "b"], STRING), Field("multi", [7], INTEGER),
                Field("flag", [True], BOOL), Field("bin", [b"\x00\x01"], 1)])))),
        "next1": "multi:0:a::2", "next2": "multi:2:7::1", "next3": "flag:4:true::1",
        "next4": "bin:1:\x00\x01::1"}
    assert (msg.severity, msg.pid) == (3, 12)
    assert msg.uuid_text == "00112233-4455-6677-8899-aabbccddeeff"
    assert msg.timestamp == 1704164645_500000000
    assert msg.raw is None
    fields = [(f.name, f.values, f.value_type, f.representation) for f in msg.fields]
    assert fields == [("multi", ["a", "changed"], STRING, ""), ("multi", [7], INTEGER, ""),
                      ("bin", [b"\x00\x01"], 1, ""), ("added", [2.0], DOUBLE, "count")]


def test_lua_error_names_plugin_script_and_line_then_terminates(tmp_path, caplog):
    dec = decoder(tmp_path, "broken.lua")
    assert dec.decode(record("fine")).payload == "fine"
    out = dec.decode(record("not fine"))
    expected = (f"SandboxDecoder 'dec' ({LUA / 'broken.lua'}) terminated: process_message() "
                "broken.lua:9: attempt to index upvalue 'settings' (a nil value)")
    assert out.type == TERMINATED_TYPE and out.logger == "hekad"
    assert out.payload == expected
    assert out.fields == [Field("plugin", ["dec"], STRING)]
    assert expected in caplog.text
    # Terminated: every later record is a decode failure, even a good one.
    with pytest.raises(DecodeError, match=re.escape(
            "sandbox terminated: process_message() broken.lua:9:")):
        dec.decode(record("fine"))


def test_status_above_zero_and_missing_status_are_fatal(tmp_path):
    script = tmp_path / "status.lua"
    script.write_text('function process_message()\n'
                      '  local p = read_message("Payload")\n'
                      '  if p == "one" then return 1, "gave up" end\n'
                      '  if p == "none" then return end\n'
                      '  return 0\nend\n')
    cfg = config_from(tmp_path, f'[a]\ntype = "SandboxDecoder"\nfilename = "{script}"\n'
                                f'[b]\ntype = "SandboxDecoder"\nfilename = "{script}"\n')
    p = Pipeline(cfg)
    a, b = p.build_plugin("a", "Decoder"), p.build_plugin("b", "Decoder")
    assert a.decode(record("one")).payload.endswith(
        "terminated: process_message() returned 1: gave up")
    assert b.decode(record("none")).payload.endswith(
        "terminated: process_message() must return a numeric status code")


def test_api_misuse_is_a_lua_error_at_the_calling_line(tmp_path):
    script = tmp_path / "misuse.lua"
    script.write_text('function process_message()\n'
                      '  local ok, err = pcall(read_message)\n'
                      '  if not ok then write_message("Payload", err) end\n'
                      '  inject_message(42)\n'
                      '  return 0\nend\n')
    cfg = config_from(tmp_path, f'[d]\ntype = "SandboxDecoder"\nfilename = "{script}"\n')
    dec = Pipeline(cfg).build_plugin("d", "Decoder")
    out = dec.decode(record("x"))
    # pcall got a string error (not a Python object) naming the script line.
    assert out.type == TERMINATED_TYPE
    assert out.payload.endswith("process_message() misuse.lua:4: inject_message() takes a "
                                "table or a protobuf string")


def test_tz_reinterprets_the_timestamps_the_script_sets(tmp_path):
    dec = decoder(tmp_path, "app_json.lua", '[dec.config]\ntz = "Europe/Paris"')
    [m] = dec.decode(record(APP_LINE))
    # Heka's config.tz: the script's 10:20:30.250 is read as Paris time (UTC+1 in March).
    assert ns_close(m.timestamp, 1709634030250000000 - 3600 * 10**9)


async def test_decoder_in_a_pipeline_terminates_and_the_pipeline_goes_on(tmp_path):
    cfg = config_from(tmp_path, f"""
        [src]
        type = "ScriptInput"
        decoder = "dec"
        send_decode_failures = true
        [dec]
        type = "SandboxDecoder"
        filename = "{LUA / 'broken.lua'}"
        [sink]
        type = "CollectOutput"
        message_matcher = "TRUE"
    """)
    ScriptInput.script = [["fine"], ["boom"], ["fine", "fine"]]
    ScriptInput.linger = False
    p = Pipeline(cfg)
    await p.start()
    sink = CollectOutput.instances["sink"]
    await wait_for(lambda: len(sink.messages) == 4, "every record to come out")
    await p.stop()
    kinds = [(m.type, m.payload[:4]) for m in sink.messages]
    assert kinds[0] == ("", "fine")
    assert kinds[1][0] == TERMINATED_TYPE
    # After termination the records are decode failures, forwarded as Heka does.
    assert [m.get_field("decode_failure") for m in sink.messages[2:]] == [True, True]
    assert p.inputs[0][1].stats.decode_failures == 2
    assert ScriptInput.last.acked[-1] == 3


def test_missing_system_module_names_the_debian_package(tmp_path, monkeypatch):
    from hekapy.collector.sandbox import host
    monkeypatch.setattr(host, "system_modules", lambda: ({}, {}))
    with pytest.raises(ConfigInvalid) as e:
        decoder(tmp_path, "app_json.lua")
    assert ("app_json.lua:10: module 'lpeg' needs the system's Lua 5.1 build of it "
            "(Debian: lua-lpeg), which is not installed") in str(e.value)
