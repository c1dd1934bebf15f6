"""Lua decoder throughput next to the native decoder, on the same lines, in one run:
the LMA-style openstack_log.lua of the tests (SandboxDecoder, native = false) against
OpenStackLogDecoder, on the OpenStack corpus of benchmarks/decoders.py.

    .venv/bin/python -m hekapy.benchmarks.lua_decoder --lines 50000 --rounds 3

Each round times both decoders (alternating, so noise hits both); the best round of
each is reported, with the Lua/native ratio.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from hekapy.benchmarks.decoders import FAMILIES, corpus
from hekapy.collector.catalog import load_all
from hekapy.collector.engine.message import new_record_message
from hekapy.collector.engine.plugin import DecodeError, Decoder

LUA = Path(__file__).resolve().parents[1] / "tests" / "data" / "lua"


def build(type_name: str, **options: object) -> Decoder:
    cls = load_all()[type_name]
    values = {k: o.default_value() for k, o in cls.all_options().items()}
    values.update(options)
    return cls("bench", SimpleNamespace(**values))


def lines_per_second(dec: Decoder, lines: list[tuple[str, str]]) -> float:
    msgs = [new_record_message(0, "logfile", lg, "node-1", ln) for lg, ln in lines]
    decode = dec.decode
    gc.collect()
    t0 = time.perf_counter()
    for m in msgs:
        try:
            decode(m)
        except DecodeError:
            pass
    dec.flush()
    return len(msgs) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--script", default=str(LUA / "openstack_log.lua"))
    ap.add_argument("--modules", default=str(LUA / "modules"))
    args = ap.parse_args(argv)
    lines = corpus(FAMILIES["openstack"], args.lines)
    native = build("OpenStackLogDecoder", tz="UTC")
    lua = build("SandboxDecoder", filename=args.script, module_directory=args.modules,
                native=False)
    best = {"native": 0.0, "lua": 0.0}
    for _ in range(args.rounds):
        best["native"] = max(best["native"], lines_per_second(native, lines))
        best["lua"] = max(best["lua"], lines_per_second(lua, lines))
    print(f"{len(lines)} OpenStack lines, best of {args.rounds} rounds")
    print(f"  OpenStackLogDecoder (native): {best['native']:>10,.0f} lines/s")
    print(f"  SandboxDecoder (Lua):         {best['lua']:>10,.0f} lines/s")
    print(f"  Lua / native:                 {best['lua'] / best['native']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
