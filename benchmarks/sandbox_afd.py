"""What an alarm filter built on circular_buffer costs: a SandboxFilter script shaped
like LMA's AFD filters (one circular buffer per metric and host, every metric value
added with its time, every alarm window evaluated on each timer tick) run on metric
messages of a busy node, against the same script keeping plain Lua tables instead of
circular buffers (what the module itself costs).

    .venv/bin/python -m hekapy.benchmarks.sandbox_afd --metrics 400 --seconds 600

`--metrics` metric series each report every 10 s, for `--seconds` of message time;
every 10 s the timer evaluates `--alarms` rules (an average over a 5-minute window
each). The CPU time per message and per tick gives the share of one core at the
given rate (the default: 400 series every 10 s plus 60 log-derived values a second,
about what LMA's metric collector sees on a busy controller).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from hekapy.collector.engine.message import DOUBLE, STRING, Field, Message
from hekapy.collector.sandbox import Sandbox
from hekapy.collector.sandbox.api import FILTER
from hekapy.collector.sandbox.sandbox_filter import SandboxFilter

# One buffer (value sum, value count per 10 s row; 10 minutes) per metric and host.
CBUF_SCRIPT = """
require "circular_buffer"
require "string"
local buffers = {}
local alarms = %(alarms)d

function process_message()
    local name = read_message("Fields[name]")
    local value = read_message("Fields[value]")
    if not name or not value then return -1, "not a metric" end
    local key = name .. "|" .. read_message("Hostname")
    local cb = buffers[key]
    if not cb then
        cb = circular_buffer.new(60, 2, 10)
        cb:set_header(1, name, "sum", "sum")
        cb:set_header(2, name, "count", "sum")
        buffers[key] = cb
    end
    local ts = read_message("Timestamp")
    cb:add(ts, 1, value)
    cb:add(ts, 2, 1)
    return 0
end

function timer_event(ns)
    local n = 0
    for key, cb in pairs(buffers) do
        n = n + 1
        if n > alarms then break end
        local now = cb:current_time()
        local sum = cb:compute("sum", 1, now - 300e9, now)
        local count = cb:compute("sum", 2, now - 300e9, now)
        if count and count > 0 and sum / count > 95 then
            inject_payload("txt", "alarm", key)
        end
    end
end
"""

# The same bookkeeping in plain tables (the newest row only): the module's share is
# the difference.
TABLE_SCRIPT = """
local sums, counts = {}, {}
function process_message()
    local name = read_message("Fields[name]")
    local value = read_message("Fields[value]")
    if not name or not value then return -1, "not a metric" end
    local key = name .. "|" .. read_message("Hostname")
    local ts = read_message("Timestamp")
    local row = ts - ts % 10e9
    local s = sums[key]
    if not s or s.row ~= row then
        s = {row = row, sum = 0, count = 0}
        sums[key] = s
    end
    s.sum = s.sum + value
    s.count = s.count + 1
    return 0
end

function timer_event(ns) end
"""


def build(source: str, tmp: Path, name: str, memory_limit: int) -> Sandbox:
    script = tmp / f"{name}.lua"
    script.write_text(source)
    values = {k: o.default_value() for k, o in SandboxFilter.all_options().items()}
    values.update(filename=str(script), memory_limit=memory_limit)
    return Sandbox("SandboxFilter", name, SimpleNamespace(**values), FILTER)


def metric_stream(series: int, seconds: int, start_ns: int) -> list[list[Message]]:
    """Per 10 s of message time, one value of each series (hosts of 40 series each)."""
    ticks = []
    for t in range(0, seconds, 10):
        ts = start_ns + t * 1_000_000_000
        ticks.append([Message(type="metric", hostname=f"node-{i // 40}", timestamp=ts + i,
                              fields=[Field("name", [f"metric_{i % 40}"], STRING),
                                      Field("value", [float((i * 7 + t) % 100)], DOUBLE)])
                      for i in range(series)])
    return ticks


def run(sb: Sandbox, ticks: list[list[Message]]) -> tuple[float, float, int]:
    """(CPU s in process_message, CPU s in timer_event, messages)."""
    gc.collect()
    processing = timers = 0.0
    count = 0
    for batch in ticks:
        t0 = time.process_time()
        for m in batch:
            sb.process_message(m)
        t1 = time.process_time()
        sb.timer_event(batch[0].timestamp)
        t2 = time.process_time()
        processing += t1 - t0
        timers += t2 - t1
        count += len(batch)
    sb.api.injected.clear()
    return processing, timers, count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metrics", type=int, default=400, help="series, each every 10 s")
    ap.add_argument("--seconds", type=int, default=600, help="message time covered")
    ap.add_argument("--alarms", type=int, default=100, help="windows evaluated per tick")
    ap.add_argument("--memory-limit", type=int, default=8 << 20,
                    help="the filter's memory_limit (Heka's default: 8 MiB)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="messages/s to cost (default: the series' rate + 60/s)")
    args = ap.parse_args(argv)
    rate = args.rate or args.metrics / 10 + 60
    ticks = metric_stream(args.metrics, args.seconds, 1_700_000_000 * 10**9)
    with tempfile.TemporaryDirectory() as tmp:
        cbuf = build(CBUF_SCRIPT % {"alarms": args.alarms}, Path(tmp), "afd",
                     args.memory_limit)
        plain = build(TABLE_SCRIPT, Path(tmp), "plain", args.memory_limit)
        run(cbuf, ticks[:3])  # warm up
        run(plain, ticks[:3])
        c_proc, c_timer, n = run(cbuf, ticks)
        p_proc, _, _ = run(plain, ticks)
    per_msg = c_proc / n
    per_tick = c_timer / len(ticks)
    share = rate * per_msg + per_tick / 10
    print(f"{n} metric messages ({args.metrics} series, {args.seconds} s), "
          f"{len(ticks)} ticks of {args.alarms} windows")
    print(f"  circular_buffer filter: {per_msg * 1e6:8.2f} us/message, "
          f"{per_tick * 1e3:8.2f} ms/tick")
    print(f"  plain-table filter:     {p_proc / n * 1e6:8.2f} us/message")
    print(f"  circular_buffer's part: {(c_proc - p_proc) / n * 1e6:8.2f} us/message")
    print(f"  at {rate:.0f} messages/s and a tick every 10 s: {share * 100:.2f}% of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
