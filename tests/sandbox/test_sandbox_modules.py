"""Heka's built-in sandbox modules as hekapy provides them: circular_buffer (its API, the
cbuf and cbufd payloads byte for byte, preserve_data, a SandboxFilter using one in a
running pipeline), cjson as Heka changed it, struct, hyperloglog, bloom_filter, and the
modules hekapy does not have. The formats are the ones docs/sandbox-modules.md states."""

from __future__ import annotations

import math
import random
import re
import struct
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hekapy.collector.engine.message import BYTES, DOUBLE, Field
from hekapy.collector.sandbox import Sandbox, SandboxError, SandboxTerminated
from hekapy.collector.sandbox.api import FILTER, format_number
from hekapy.collector.sandbox.sandbox_filter import SandboxFilter
from tests.helpers.paths import LUA
from tests.helpers.plugins import CollectOutput, config_from, run_script_pipeline


def sandbox(tmp_path: Path, source: str, **options: Any) -> Sandbox:
    """A SandboxFilter's sandbox running `source` (process_message added if missing)."""
    if "function process_message" not in source:
        source += "\nfunction process_message() return 0 end\n"
    script = tmp_path / "script.lua"
    script.write_text(source)
    values = {k: o.default_value() for k, o in SandboxFilter.all_options().items()}
    values.update(filename=str(script), **options)
    return Sandbox("SandboxFilter", "mod", SimpleNamespace(**values), FILTER)


def lua(sb: Sandbox, code: str, *args: Any) -> Any:
    """Run `code` in the sandbox's state (as an entry point, with its limits)."""
    return sb.box.call(sb.box.compile(code.encode(), "=test"), "test", *args)


def payloads(sb: Sandbox) -> list[str]:
    out = [m.payload for m in sb.api.injected]
    sb.api.injected.clear()
    return out


def header(time: int, rows: int, spr: int, columns: list[tuple[str, str, str]],
           annotations: str | None = None) -> str:
    info = ",".join(f'{{"name":"{n}","unit":"{u}","aggregation":"{a}"}}'
                    for n, u, a in columns)
    head = (f'{{"time":{time},"rows":{rows},"columns":{len(columns)},'
            f'"seconds_per_row":{spr},"column_info":[{info}]')
    if annotations is not None:
        head += f',"annotations":[{annotations}]'
    return head + "}\n"


# circular_buffer: data and the cbuf payload ------------------------------------------------

CPU = [("User", "percent", "max"), ("System", "percent", "sum")]


def test_cbuf_payload_and_rows_advancing_with_message_time(tmp_path):
    sb = sandbox(tmp_path, """
require "circular_buffer"
cpu = circular_buffer.new(4, 2, 10)
USER = cpu:set_header(1, "User", "percent", "max")
SYSTEM = cpu:set_header(2, "System", "percent")
""")
    lua(sb, 'inject_payload("cbuf", "cpu", cpu)')
    nan_rows = "nan\tnan\n" * 4
    assert payloads(sb) == [header(0, 4, 10, CPU) + nan_rows]
    # 100 s into the epoch: the newest row is the one of second 100, three rows back is 70.
    assert lua(sb, "return cpu:set(100e9, USER, 12.5)") == 12.5
    assert lua(sb, "return cpu:set(109.9e9, USER, 7)") == 12.5  # max keeps the larger
    assert lua(sb, "return cpu:add(101e9, SYSTEM, 0.25)") == 0.25  # NaN + x = x
    assert lua(sb, "return cpu:add(102e9, SYSTEM, 1/3)") == 0.25 + 1 / 3
    assert lua(sb, "return cpu:add(80e9, SYSTEM, 2)") == 2
    assert math.isnan(lua(sb, "return cpu:get(75e9, USER)"))
    assert lua(sb, "return cpu:get(69.9e9, USER)") is None  # before the window
    assert lua(sb, "return cpu:get(110e9, USER)") is None  # after it: get never advances
    assert lua(sb, "return cpu:current_time()") == 100e9
    lua(sb, 'add_to_payload(cpu) inject_payload("cbuf", "cpu")')
    assert payloads(sb) == [header(70, 4, 10, CPU)
                            + "nan\tnan\nnan\t2\nnan\tnan\n12.5\t0.58333333\n"]
    # A write 20 s later advances two rows; an old one is outside the window (nil).
    assert lua(sb, "return cpu:add(125e9, SYSTEM, -1)") == -1
    assert lua(sb, "return cpu:add(85e9, SYSTEM, 1)") is None
    lua(sb, 'inject_payload("cbuf", "cpu", cpu)')
    assert payloads(sb) == [header(90, 4, 10, CPU)
                            + "nan\tnan\n12.5\t0.58333333\nnan\tnan\nnan\t-1\n"]
    # Further than the window: every row is new.
    lua(sb, "cpu:set(1000e9, USER, 1e12) cpu:set(1000e9, SYSTEM, 1/0)")
    lua(sb, 'inject_payload("cbuf", "cpu", cpu)')
    assert payloads(sb) == [header(970, 4, 10, CPU) + "nan\tnan\n" * 3
                            + "1000000000000\tinf\n"]


def test_headers_configuration_and_argument_errors(tmp_path):
    sb = sandbox(tmp_path, 'require "circular_buffer"\ncb = circular_buffer.new(3, 2, 60)\n')
    assert lua(sb, 'return cb:set_header(2, "HTTP 5xx (backend errors)", "req/s!", "min")') == 2
    # names: 15 characters, alphanumerics; units: 7, alphanumerics, '/' and '*'
    assert lua(sb, "return cb:get_header(2)") == (b"HTTP_5xx__backe", b"req/s_", b"min")
    assert lua(sb, "return cb:get_header(1)") == (b"Column_1", b"count", b"sum")
    assert lua(sb, "return cb:get_configuration()") == (3, 2, 60)
    assert lua(sb, "return cb:current_time()") == 120e9
    errors = {
        "cb:add(0, 3, 1)": "bad argument #2 to 'add' (column out of range)",
        "cb:get(0, 0)": "bad argument #2 to 'get' (column out of range)",
        "cb:add(nil, 1, 1)": "bad argument #1 to 'add' (number expected, got nil)",
        "cb:set(0, 1, 'x')": "bad argument #3 to 'set' (number expected, got string)",
        'cb:set_header(1, "n", "u", "avg")': "bad argument #4 to 'set_header' "
                                             "(invalid option 'avg')",
        'cb:compute("median", 1)': "bad argument #1 to 'compute' (invalid option 'median')",
        "cb:compute('sum', 1, 60e9, 0)": "bad argument #4 to 'compute' (end must be >= start)",
        'cb:format("json")': "bad argument #1 to 'format' (invalid option 'json')",
        "circular_buffer.new(1, 4, 60)": "bad argument #1 to 'new' (rows must be > 1)",
        "circular_buffer.new(1440, 0, 60)": "bad argument #2 to 'new' (columns must be > 0)",
        "circular_buffer.new(1440, 4, 0)": "bad argument #3 to 'new' (seconds_per_row must be > 0)",
        "cb.add({}, 0, 1, 1)": "bad argument #1 to 'add' (circular_buffer expected, got table)",
    }
    for code, message in errors.items():
        ok, err = lua(sb, f"return pcall(function() {code} end)")
        assert not ok and err.decode() == "test:1: " + message, code
    # The object is opaque: nothing to iterate, no metatable to take.
    assert lua(sb, "return next(cb) == nil and getmetatable(cb)") == b"circular_buffer"
    ok, _ = lua(sb, "return pcall(setmetatable, cb, nil)")
    assert not ok


def test_compute_over_ranges_with_nan_rows(tmp_path):
    sb = sandbox(tmp_path, """
require "circular_buffer"
cb = circular_buffer.new(6, 1, 1)
for i, v in ipairs({2, 4, 0/0, 4, 5, 7}) do cb:set((i - 1) * 1e9, 1, v) end
""")
    # values of seconds 0..5: 2 4 nan 4 5 7
    valid = [2, 4, 4, 5, 7]
    mean = sum(valid) / 5
    var = sum((v - mean) ** 2 for v in valid) / 5
    assert lua(sb, 'return cb:compute("sum", 1)') == (22, 5)
    assert lua(sb, 'return cb:compute("avg", 1)') == (mean, 5)
    assert lua(sb, 'return cb:compute("variance", 1)') == (pytest.approx(var), 5)
    assert lua(sb, 'return cb:compute("sd", 1)') == (pytest.approx(math.sqrt(var)), 5)
    assert lua(sb, 'return cb:compute("min", 1)') == (2, 5)
    assert lua(sb, 'return cb:compute("max", 1, 0, 3.5e9)') == (4, 3)
    assert lua(sb, 'return cb:compute("sum", 1, 1e9, 2e9)') == (4, 1)  # end included
    assert lua(sb, 'return cb:compute("sum", 1, 5e9, 5e9)') == (7, 1)
    # a range with no valid value, and one outside the window
    assert lua(sb, 'return cb:compute("avg", 1, 2e9, 2e9)') == (0, 0)
    assert lua(sb, 'return cb:compute("sd", 1, 2e9, 2e9)') == (0, 0)
    assert lua(sb, 'local m, n = cb:compute("min", 1, 2e9, 2e9) return m ~= m, n') == (True, 0)
    assert lua(sb, 'return cb:compute("sum", 1, 0, 6e9)') is None
    lua(sb, "cb:add(7e9, 1, 1)")  # advances two rows: 0 and 1 leave the window
    assert lua(sb, 'return cb:compute("sum", 1)') == (17, 4)
    assert lua(sb, 'return cb:compute("sum", 1, 1e9)') is None


def test_mannwhitneyu_and_the_normal_distribution(tmp_path):
    sb = sandbox(tmp_path, """
require "circular_buffer"
cb = circular_buffer.new(60, 1, 1)
for i = 0, 24 do cb:set(i * 1e9, 1, 100 + i) end        -- x: 100..124
for i = 25, 49 do cb:set(i * 1e9, 1, 100 + i + 10) end  -- y: 135..159, all larger
""")
    u, p = lua(sb, "return cb:mannwhitneyu(1, 0, 24e9, 25e9, 49e9)")
    n1 = n2 = 25
    assert u == 0
    z = (n1 * n2 - 0.5 - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9)
    u, p2 = lua(sb, "return cb:mannwhitneyu(1, 0, 24e9, 25e9, 49e9, false)")
    z = (n1 * n2 - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    assert p2 == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9)
    # the samples swapped: U of the first is n1*n2, the p-value the same
    assert lua(sb, "return cb:mannwhitneyu(1, 25e9, 49e9, 0, 24e9)") == (625, p)
    # ties: x = 1 1 2, y = 2 3 3 (ranks 1.5 1.5 3.5 | 3.5 5.5 5.5)
    t = sandbox(tmp_path, """
require "circular_buffer"
cb = circular_buffer.new(6, 1, 1)
for i, v in ipairs({1, 1, 2, 2, 3, 3}) do cb:set((i - 1) * 1e9, 1, v) end
""")
    u, p = lua(t, "return cb:mannwhitneyu(1, 0, 2e9, 3e9, 5e9)")
    assert u == 1.5 + 1.5 + 3.5 - 6
    ties = 1 - 3 * (2 ** 3 - 2) / (6 ** 3 - 6)
    z = (8.5 - 0.5 - 4.5) / math.sqrt(ties * 9 * 7 / 12)  # from U of y, the larger
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9)
    # every value tied: no test; a range outside the window: nil
    lua(t, "for i = 0, 5 do cb:set(i * 1e9, 1, 4) end")
    assert lua(t, "return cb:mannwhitneyu(1, 0, 2e9, 3e9, 5e9)") is None
    assert lua(t, "return cb:mannwhitneyu(1, 0, 2e9, 3e9, 6e9)") is None
    for z in (-8.0, -3.1, -1.0, -0.2, 0.0, 0.7, 2.5, 2.6, 6.0):
        got = lua(sb, f"return circular_buffer._normal_cdf({z!r})")
        assert got == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-12, abs=1e-300)


def test_output_number_format(tmp_path):
    sb = sandbox(tmp_path, 'require "circular_buffer"\n')
    cases = {"0": "0", "-7": "-7", "0.5": "0.5", "1/3": "0.33333333", "-2/3": "-0.66666667",
             "0.000000004": "0", "0.125": "0.125", "0.00000003": "0.00000003",
             "123.456": "123.456", "2147483647": "2147483647", "2147483648": "2147483648",
             "1e20": "1e+20", "0/0": "nan", "-1/0": "-inf", "99.999999999": "100"}
    for expr, text in cases.items():
        assert lua(sb, f"return circular_buffer._output_number({expr})") == text.encode(), expr
    # the cbufd rows (written in Lua) and the cbuf rows and add_to_payload (in Python)
    # write every number alike
    rng = random.Random(7)
    values = [rng.uniform(-1e4, 1e4) for _ in range(300)] + \
             [rng.randint(-10**12, 10**12) / 10**rng.randint(0, 12) for _ in range(300)]
    written = lua(sb, "local t = {...} for i = 1, #t do "
                      "t[i] = circular_buffer._output_number(t[i]) end "
                      "return table.concat(t, ' ')", *values)
    assert written.split(b" ") == [format_number(v) for v in values]


# circular_buffer: deltas and annotations ------------------------------------------------

REQ = [("Requests", "count", "sum"), ("Slowest", "ms", "max")]


def test_cbufd_payload_has_the_changes_since_the_last_one(tmp_path):
    sb = sandbox(tmp_path, """
require "circular_buffer"
http = circular_buffer.new(3, 2, 60, true)
REQUESTS = http:set_header(1, "Requests")
SLOWEST = http:set_header(2, "Slowest", "ms", "max")
function report() inject_payload("cbufd", "http", http:format("cbufd")) end
""")
    lua(sb, """
http:add(120e9, REQUESTS, 1) http:add(130e9, REQUESTS, 1) http:set(130e9, SLOWEST, 250)
http:add(60e9, REQUESTS, 5)
""")
    lua(sb, "report()")
    # one line per changed row: its time, then per column the sum's change or the
    # other aggregations' value (the rows in the order of Lua's table of changed rows)
    assert sorted_rows(payloads(sb)) == [(header(0, 3, 60, REQ),
                                          ["120\t2\t250", "60\t5\tnan"])]
    lua(sb, "report()")
    assert payloads(sb) == []  # nothing changed: no payload at all
    lua(sb, """
http:add(150e9, REQUESTS, 3)      -- 2 -> 5
http:set(150e9, SLOWEST, 100)     -- max: stays 250, no change
http:set(60e9, REQUESTS, 1)       -- 5 -> 1
http:add(170e9, REQUESTS, 0)      -- no change
""")
    lua(sb, "report()")
    assert sorted_rows(payloads(sb)) == [(header(0, 3, 60, REQ),
                                          ["120\t3\tnan", "60\t-4\tnan"])]
    lua(sb, "http:set(150e9, SLOWEST, 900) http:add(120e9, REQUESTS, 0/0)")
    lua(sb, "report()")
    assert payloads(sb) == [header(0, 3, 60, REQ) + "120\tnan\t900\n"]
    # the full payload is not a delta and changes nothing
    lua(sb, 'http:add(120e9, REQUESTS, 4) inject_payload("cbuf", "http", http:format("cbuf"))')
    assert payloads(sb) == [header(0, 3, 60, REQ) + "nan\tnan\n1\tnan\n4\t900\n"]
    lua(sb, "report()")
    assert payloads(sb) == [header(0, 3, 60, REQ) + "120\t4\tnan\n"]
    # a buffer without deltas has no cbufd payload
    lua(sb, 'local p = circular_buffer.new(2, 1, 1) p:add(0, 1, 1)'
            ' inject_payload("cbufd", "x", p:format("cbufd"))')
    assert payloads(sb) == []


def sorted_rows(texts: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for text in texts:
        head, _, rows = text.partition("\n")
        out.append((head + "\n", sorted(rows.splitlines())))
    return out


def test_annotations_in_both_payloads(tmp_path):
    sb = sandbox(tmp_path, """
require "circular_buffer"
cb = circular_buffer.new(2, 2, 60, true)
function full() inject_payload("cbuf", "a", cb:format("cbuf")) end
function delta() inject_payload("cbufd", "a", cb:format("cbufd")) end
""")
    cols = [("Column_1", "count", "sum"), ("Column_2", "count", "sum")]
    lua(sb, """
cb:annotate(70e9, 2, "alert", 'disk "sda" 95%\\t\\255full')
cb:annotate(0, 1, "info", "deploy")
cb:annotate(120e9, 1, "info", "the future: ignored")
cb:annotate(10e9, 1, "info", "redeploy", false)  -- replaces the first, not in cbufd
""")
    lua(sb, "full()")
    first = '{"x":0,"col":1,"shortText":"i","text":"redeploy"}'
    second = '{"x":60000,"col":2,"shortText":"a","text":"disk \\"sda\\" 95%\\t full"}'
    assert payloads(sb) == [header(0, 2, 60, cols, f"{first},{second}") + "nan\tnan\n" * 2]
    lua(sb, "delta()")
    assert payloads(sb) == [header(0, 2, 60, cols, second)]
    lua(sb, "delta()")
    assert payloads(sb) == []
    # an annotation leaves with its row
    lua(sb, "cb:set(120e9, 1, 1) full()")
    assert payloads(sb) == [header(60, 2, 60, cols, second) + "nan\tnan\n1\tnan\n"]


# circular_buffer: preserve_data ------------------------------------------------------------

def test_preserved_circular_buffers_round_trip(tmp_path):
    source = """
require "circular_buffer"
plain = circular_buffer.new(3, 2, 1)
plain:set_header(2, "Latency", "ms", "max")
deltas = circular_buffer.new(2, 1, 1, true)
nested = {cb = plain}
"""
    first = sandbox(tmp_path, source, preserve_data=True)
    lua(first, """
plain:set(5e9, 1, 1.25) plain:set(5e9, 2, 1/3) plain:add(4e9, 1, -1/0)
deltas:add(0, 1, 2)
plain:annotate(5e9, 2, "alert", "slow\\nagain")
""")
    path = tmp_path / "mod.data"
    first.save(str(path))
    text = path.read_text()
    assert 'if _G["deltas"] == nil then _G["deltas"] = circular_buffer.new(2, 1, 1, true) end\n' \
           '_G["deltas"]:set_header(1, "Column_1", "count", "sum")\n' \
           '_G["deltas"]:fromstring("1 1 2 nan 0 2")\n' in text
    # the buffer is saved once, under the first name found, the other name refers to it
    plain = re.search(r'^if (_G\[.*?) == nil then \1 = circular_buffer.new\(3, 2, 1\) end$',
                      text, re.M)
    assert plain, text
    name = plain.group(1)
    assert f'{name}:set_header(2, "Latency", "ms", "max")\n' in text
    # time 5, newest row 2; rows in storage order: 3 s, 4 s, 5 s
    assert f'{name}:fromstring("5 2 nan nan -inf nan 1.25 0.33333333333333331")\n' in text
    assert f'{name}:annotate(5000000000, 2, "alert", "slow\\\nagain", true)\n' in text
    lua(first, 'inject_payload("cbuf", "p", plain) inject_payload("cbufd", "d", deltas)')
    before = payloads(first)

    # A fresh sandbox of the same script: what the script makes is refilled from the file.
    second = sandbox(tmp_path, source, preserve_data=True)
    assert second.restore(str(path))
    lua(second, 'inject_payload("cbuf", "p", plain) inject_payload("cbufd", "d", deltas)')
    assert payloads(second) == before
    assert lua(second, "return nested.cb == plain and plain:get(5e9, 2) == 1/3")
    assert lua(second, "return plain:get_header(2)") == (b"Latency", b"ms", b"max")
    assert b"slow\\nagain" in before[0].encode()

    # A script that no longer makes the object gets it from the file.
    third = sandbox(tmp_path, 'require "circular_buffer"\n', preserve_data=True)
    assert third.restore(str(path))
    assert lua(third, "return plain:get(4e9, 1)") == -math.inf


def test_fromstring_rejects_a_wrong_shape(tmp_path):
    sb = sandbox(tmp_path, 'require "circular_buffer"\ncb = circular_buffer.new(2, 1, 1)\n')
    ok, err = lua(sb, 'return pcall(cb.fromstring, cb, "1 1 2")')
    assert not ok and b"fromstring() found 3 values, expected 4" in err
    ok, err = lua(sb, 'return pcall(cb.fromstring, cb, "1 1 2 x")')
    assert not ok and b"fromstring() invalid value 'x'" in err
    lua(sb, 'cb:fromstring("61 0 4 nan")')
    assert lua(sb, "return cb:current_time(), cb:get(61e9, 1), cb:get(60e9, 1)") == (
        61e9, 4, None) or lua(sb, "return cb:get(61e9, 1)") == 4


# circular_buffer in a running pipeline ------------------------------------------------------

def log_line(minute: int, second: int, level: str = "INFO") -> str:
    return (f"2015-11-30 08:{minute:02d}:{second:02d}.306 3434 {level} nova.api "
            f"[req-0fd2a9ba-448d-40f5-995e-33e32ac5a6ba - - - - -] something happened\n")


def rate_config(tmp_path: Path):
    return config_from(tmp_path, f"""
        [hekad]
        base_dir = "{tmp_path / 'state'}"
        hostname = "collector-1"
        [src]
        type = "ScriptInput"
        decoder = "dec"
        [dec]
        type = "OpenStackLogDecoder"
        tz = "UTC"
        [rate]
        type = "SandboxFilter"
        filename = "{LUA / 'cbuf_log_rate.lua'}"
        message_matcher = "Type == 'log'"
        timer_event_on_shutdown = true
        preserve_data = true
        [reports]
        type = "CollectOutput"
        message_matcher = "Logger == 'rate'"
    """)


async def test_sandbox_filter_with_a_circular_buffer_across_a_restart(tmp_path):
    minute = int(datetime(2015, 11, 30, 8, 38, tzinfo=UTC).timestamp())
    cols = [("Lines", "count", "sum"), ("Errors", "count", "sum")]
    await run_script_pipeline(rate_config(tmp_path), [
        [log_line(38, 1), log_line(38, 59, "ERROR")], [log_line(39, 30, "WARNING")]])
    payload, rate = CollectOutput.instances["reports"].messages
    assert (payload.type, payload.get_field("payload_type")) == ("heka.sandbox-output", "cbuf")
    assert payload.payload == header(minute - 180, 5, 60, cols) + \
        "nan\tnan\n" * 3 + "2\t1\n1\t0\n"
    assert rate.type == "heka.sandbox.log_rate"
    assert {f.name: f for f in rate.fields} == {
        "lines": Field("lines", [3.0], DOUBLE), "rows": Field("rows", [2.0], DOUBLE),
        "newest": Field("newest", [(minute + 60) * 1e9], DOUBLE)}
    data = (tmp_path / "state" / "sandbox_preservation" / "rate.data").read_text()
    assert '_G["counts"]:fromstring(' in data

    # Restarted: the buffer goes on from the preserved rows.
    CollectOutput.instances.clear()
    await run_script_pipeline(rate_config(tmp_path), [[log_line(41, 5, "ERROR"), log_line(41, 6)]])
    payload, rate = CollectOutput.instances["reports"].messages
    assert payload.payload == header(minute - 60, 5, 60, cols) + \
        "nan\tnan\n2\t1\n1\t0\nnan\tnan\n2\t1\n"
    assert rate.get_field("lines") == 5 and rate.get_field("rows") == 3


def test_inject_message_with_a_circular_buffer_field(tmp_path):
    sb = sandbox(tmp_path, """
require "circular_buffer"
cb = circular_buffer.new(2, 1, 60)
cb:add(60e9, 1, 3)
""")
    lua(sb, 'inject_message({Type = "graph", Fields = {cb = {value = cb, representation = '
            '"cbuf"}, raw = cb}})')
    (msg,) = sb.api.injected
    text = header(0, 2, 60, [("Column_1", "count", "sum")]) + "nan\n3\n"
    assert {f.name: f for f in msg.fields} == {
        "cb": Field("cb", [text.encode()], BYTES, "cbuf"),
        "raw": Field("raw", [text.encode()], BYTES)}
    ok, err = lua(sb, "return pcall(add_to_payload, setmetatable({}, {}))")
    assert not ok and err == b"add_to_payload() unsupported type"


def test_a_large_buffer_payload_costs_the_script_few_instructions(tmp_path):
    # 14400 NaN cells: creating them takes ~60000 instructions, writing them (in Python)
    # few; in Lua it took ~200000
    sb = sandbox(tmp_path, """
require "circular_buffer"
cb = circular_buffer.new(1440, 10, 60)
""", instruction_limit=100000)
    lua(sb, "inject_payload('cbuf', 'big', cb)")
    (text,) = payloads(sb)
    assert text.count("\n") == 1441 and text.endswith("\tnan\n")


def test_a_buffer_beyond_the_memory_limit_terminates_the_sandbox(tmp_path):
    sb = sandbox(tmp_path, 'require "circular_buffer"\n', memory_limit=256 << 10)
    with pytest.raises(SandboxTerminated) as e:
        lua(sb, "big = circular_buffer.new(100000, 4, 1)")
    assert e.value.reason == "test() memory_limit exceeded"


# cjson -------------------------------------------------------------------------------------

def test_cjson_as_heka_had_it(tmp_path):
    sb = sandbox(tmp_path, 'local json = require "cjson"\nsame = json == cjson\n',
                 output_limit=80)
    assert lua(sb, "return same")
    assert lua(sb, """
local t = cjson.decode('{"a": null, "b": [1, null], "c": {"d": null, "e": "x"}}')
return t.a == nil and t.b[1] == 1 and t.b[2] == nil and t.c.d == nil and t.c.e == "x"
""")
    assert lua(sb, "return cjson.decode('null')") is None
    assert lua(sb, "return cjson.decode_null(true), type(cjson.decode('[null]')[1])") == (
        True, b"userdata")
    assert lua(sb, "return cjson.decode('[null]')[1] == cjson.null")
    assert lua(sb, "return cjson.decode_null(false)") is False
    ok, err = lua(sb, """return pcall(function()
  return cjson.decode('{"unterminated": ')
end)""")
    # lua-cjson's message, without a position, as Heka's cjson raised it
    assert not ok and err == b"Expected value but found T_END at character 18"
    ok, err = lua(sb, "return pcall(cjson.encode, {string.rep('x', 100)})")
    assert not ok and err == b"strbuf output_limit exceeded"
    assert lua(sb, "return cjson.encode({1, 'two', {three = true}})") == \
        b'[1,"two",{"three":true}]'
    ok, err = lua(sb, "return pcall(cjson.encode, {f = print or function() end})")
    assert not ok and b"Cannot serialise function" in err
    assert lua(sb, "return cjson.new == nil and cjson.encode_keep_buffer == nil")


def test_cjson_without_output_limit_encodes_any_size(tmp_path):
    sb = sandbox(tmp_path, 'require "cjson"\n', output_limit=0)
    assert len(lua(sb, "return cjson.encode({string.rep('x', 200000)})")) == 200004


# struct ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,lua_args,py_fmt,py_args", [
    ("<i4", "7", "<i", (7,)),
    (">I2", "65535", ">H", (65535,)),
    ("<bBhH", "-1, 200, -300, 40000", "<bBhH", (-1, 200, -300, 40000)),
    ("<l", "-123456789012", "<q", (-123456789012,)),
    (">L", "2^53", ">Q", (2**53,)),
    ("<d", "0.1", "<d", (0.1,)),
    (">d", "-1/0", ">d", (-math.inf,)),
    ("<f", "1.5", "<f", (1.5,)),
    (">f", "-3.25e-3", ">f", (-3.25e-3,)),
    ("<d", "5e-324", "<d", (5e-324,)),
    ("<f", "1e-40", "<f", (1e-40,)),
    ("<i3", "-2", None, None),
    ("!4<bi4", "1, 2", "<bxxxi", (1, 2)),
    (">c3x", "'abc'", ">3sx", (b"abc",)),
])
def test_struct_pack_and_unpack(tmp_path, fmt, lua_args, py_fmt, py_args):
    sb = sandbox(tmp_path, 'require "struct"\n')
    packed = lua(sb, f"return struct.pack({fmt!r}, {lua_args})")
    if py_fmt is None:
        assert packed == b"\xfe\xff\xff"
    else:
        assert packed == struct.pack(py_fmt, *py_args)
        assert lua(sb, f"return struct.size({fmt!r})") == struct.calcsize(py_fmt)
    values = lua(sb, f"return struct.unpack({fmt!r}, {_lua_string(packed)})")
    assert values[-1] == len(packed) + 1
    if py_fmt is not None:
        expected = struct.unpack(py_fmt, packed)
        for got, want in zip(values[:-1], expected, strict=True):
            assert got == (want if not isinstance(want, float) else pytest.approx(want))


def _lua_string(b: bytes) -> str:
    return '"' + "".join(f"\\{c}" for c in b) + '"'


def test_struct_strings_and_errors(tmp_path):
    sb = sandbox(tmp_path, 'require "struct"\n')
    packed = lua(sb, 'return struct.pack("<sB", "name", 4)')
    assert packed == b"name\x00\x04"
    assert lua(sb, 'return struct.unpack("<sB", "name\\0\\4")') == (b"name", 4, 7)
    assert lua(sb, 'return struct.unpack("<Bc0", "\\3abcz")') == (b"abc", 5)
    assert lua(sb, 'return struct.unpack("<H", "zz\\1\\0", 3)') == (1, 5)
    for code, message in {
        'struct.pack("<q", 1)': "invalid format option 'q'",
        'struct.unpack("<i4", "ab")': "data string too short",
        'struct.size("s")': "options 's' and 'c0' have no fixed size",
        'struct.pack("<c4", "ab")': "string too short",
        'struct.pack("<i9", 1)': "integral size 9 is larger than limit of 8",
    }.items():
        ok, err = lua(sb, f"return pcall(function() return {code} end)")
        assert not ok and message in err.decode(), code


# hyperloglog and bloom_filter -----------------------------------------------------------------

def test_hyperloglog(tmp_path):
    sb = sandbox(tmp_path, 'require "hyperloglog"\na, b = hyperloglog.new(), hyperloglog.new()\n',
                 preserve_data=True, instruction_limit=0)
    assert lua(sb, "return a:count()") == 0
    assert lua(sb, 'return a:add("x"), a:add("x"), a:add(1.5)') == (True, False, True)
    lua(sb, 'for i = 1, 30000 do a:add("user-" .. i) end'
            ' for i = 20001, 50000 do b:add("user-" .. i) end')
    for code, true_count in (("a:count()", 30002), ("b:count()", 30000),
                             ("hyperloglog.count(a, b)", 50002)):
        estimate = lua(sb, f"return {code}")
        assert abs(estimate - true_count) / true_count < 0.02, code  # 0.81% standard error
    union = lua(sb, "return hyperloglog.count(a, b)")
    text = lua(sb, "return tostring(a)")
    assert len(text) == 12304 and text.startswith(b"HYLL\x00")
    path = tmp_path / "hll.data"
    sb.save(str(path))
    again = sandbox(tmp_path, 'require "hyperloglog"\n', preserve_data=True)
    again.restore(str(path))
    assert lua(again, "return tostring(a)") == text
    assert lua(again, "return hyperloglog.count(a, b), a:merge(b) == a, a:count()") == (
        union, True, union)
    lua(again, "a:clear()")
    assert lua(again, "return a:count()") == 0
    lua(again, 'inject_payload("hll", "users", a)')
    assert len(again.api.injected[0].payload.encode("utf-8", "surrogateescape")) > 0
    for code, message in {
        "a:add({})": "bad argument #2 to 'add' (must be a string or number)",
        "a:fromstring('short')": "fromstring() bytes found: 5, expected 12304",
        "hyperloglog.new(1)": "bad argument #1 to 'new' (incorrect number of arguments)",
        "a:count(1)": "bad argument #2 to 'count' (incorrect number of arguments)",
    }.items():
        ok, err = lua(again, f"return pcall(function() {code} end)")
        assert not ok and err.decode() == "test:1: " + message, code


def test_bloom_filter(tmp_path):
    sb = sandbox(tmp_path, 'require "bloom_filter"\nbf = bloom_filter.new(1000, 0.01)\n',
                 preserve_data=True)
    assert lua(sb, 'return bf:query("a"), bf:add("a"), bf:add("a"), bf:query("a")') == (
        False, True, False, True)
    lua(sb, "for i = 1, 999 do bf:add(i) end")
    count = lua(sb, "return bf:count()")
    assert 985 <= count <= 1000  # an item whose bits were all set already is not added
    assert lua(sb, "for i = 1, 999 do if not bf:query(i) then return false end end "
                   "return true")
    false_hits = lua(sb, "local n = 0 for i = 1, 10000 do "
                         "if bf:query('other-' .. i) then n = n + 1 end end return n")
    assert false_hits < 250  # 1% wanted; well under 2.5%
    path = tmp_path / "bf.data"
    sb.save(str(path))
    again = sandbox(tmp_path, 'require "bloom_filter"\nbf = bloom_filter.new(1000, 0.01)\n',
                    preserve_data=True)
    again.restore(str(path))
    assert lua(again, "return bf:count(), bf:query(500), bf:query('a')") == (count, True, True)
    lua(again, "bf:clear()")
    assert lua(again, "return bf:count(), bf:query(500)") == (0, False)
    ok, err = lua(again, "return pcall(bf.fromstring, bf, string.rep('x', 1213))")
    assert not ok and b"not a bloom filter saved by hekapy" in err
    ok, err = lua(again, "return pcall(bloom_filter.new, 10, 1)")
    assert not ok and b"probability must be between 0 and 1" in err
    small = sandbox(tmp_path, 'require "bloom_filter"\n', memory_limit=64 << 10)
    ok, err = lua(small, "return pcall(bloom_filter.new, 1e6, 0.001)")
    assert not ok and b"more than the memory_limit" in err


# what hekapy does not provide ------------------------------------------------------------------

def test_modules_hekapy_does_not_provide(tmp_path):
    for name in ("cuckoo_filter", "sax"):
        with pytest.raises(SandboxError) as e:
            sandbox(tmp_path, f'require "{name}"\n')
        assert (f"script.lua:1: module '{name}' is built into Heka's sandbox but not "
                "provided by hekapy") in str(e.value)
    # an operator's own module of that name, in module_directory, is found first
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "sax.lua").write_text("return {mine = true}\n")
    sb = sandbox(tmp_path, 'local sax = require "sax"\nmine = sax.mine\n',
                 module_directory=str(modules))
    assert lua(sb, "return mine")


def test_cjson_missing_from_the_system_names_the_debian_package(tmp_path, monkeypatch):
    from hekapy.collector.sandbox import host
    monkeypatch.setattr(host, "system_modules", lambda: ({}, {}))
    with pytest.raises(SandboxError) as e:
        sandbox(tmp_path, 'local x = 1\nlocal json = require "cjson"\n')
    assert str(e.value).endswith("init() script.lua:2: module 'cjson' needs the system's Lua "
                                 "5.1 build of it (Debian: lua-cjson), which is not installed")
