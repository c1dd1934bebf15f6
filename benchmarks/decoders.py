"""Decoder throughput: lines/s and MiB/s per decoder on a generated corpus, next to the
bare regex-match loop over the same lines measured in the same run (the limit a regex
decoder can reach in Python).

    .venv/bin/python -m hekapy.benchmarks.decoders --lines 200000

Each family's corpus comes from the demo generators (collector/app/demo.py), so the lines
look like the real services' (HTTP access lines, request contexts, tracebacks). The
decoder is timed on fresh record messages (making them is the input's cost, not the
decoder's); the baseline is `pattern.match(line)` for every line with the decoder's own
line regex. Two baselines where the decoder extracts more than the line prefix:
- "prefix": the regex that splits the line (time, pid, level, module, message): the floor
  no decoder can go below, though it extracts a third of the fields;
- "grammar": one regex over the whole grammar the decoder recognises (request context,
  HTTP access part), as LMA's single LPEG grammar did: the limit of a regex decoder.
Reported per decoder: lines/s, MiB/s, and decoder/baseline rate ratios (the issue's
target: the OpenStack decoder at >= 50% of the bare-regex rate).
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from hekapy.collector.app.demo import generate
from hekapy.collector.catalog import load_all
from hekapy.collector.engine.message import Message, new_record_message
from hekapy.collector.engine.plugin import DecodeError, Decoder


@dataclass
class Family:
    decoder: str
    services: list[tuple[str, str]]  # (demo generator, input Logger)
    baselines: dict[str, Callable[[], re.Pattern]]
    options: dict


def _openstack_prefix_re() -> re.Pattern:
    from hekapy.decoders import openstack_log
    return openstack_log._LINE_RE


def _openstack_grammar_re() -> re.Pattern:
    """Everything OpenStackLogDecoder extracts, in one match (lookaheads for the request
    context and the HTTP access part)."""
    from hekapy.decoders.openstack_log import _ID, _LC_UUID
    return re.compile(
        r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|[+-]\d\d(?::?\d\d)?)? "
        r"(\d+) (CRITICAL|ERROR|WARNING|INFO|AUDIT|DEBUG|TRACE) ([A-Za-z0-9_.-]+) ?"
        r"(?=\[(?:(?:req-(" + _LC_UUID + r")|None|-) )?req-(" + _LC_UUID + r")"
        r"(?: (" + _ID + r") (" + _ID + r"))?[ \]])?"
        r"(?=[^\n]*?\"([A-Z]+) (\S+) HTTP/(\d\.\d)\" +(?:status: )?(\d{3}) +(?:len: )?"
        r"(\d+) +(?:time: )?(\d+(?:\.\d+)?))?"
        r"(.*)", re.DOTALL)


def _syslog_re() -> re.Pattern:
    from hekapy.decoders import syslog
    return syslog._RFC3164_RE


def _haproxy_grammar_re() -> re.Pattern:
    from hekapy.decoders import haproxy_log, syslog
    return re.compile(syslog._RFC3164_RE.pattern.replace(r" *(.*)", r" *")
                      + haproxy_log._HTTP_RE.pattern)


def _keystone_re() -> re.Pattern:
    from hekapy.decoders.keystone_wsgi import DEFAULT_PATTERN, compile_log_format
    return compile_log_format(DEFAULT_PATTERN)


FAMILIES = {
    "openstack": Family("OpenStackLogDecoder",
                        [("nova-api", "nova_nova-api"), ("nova-compute", "nova_nova-compute"),
                         ("neutron-server", "neutron_server"),
                         ("lbaas-agent", "neutron_lbaas-agent")],
                        {"prefix": _openstack_prefix_re, "grammar": _openstack_grammar_re},
                        {"tz": "UTC"}),
    "haproxy": Family("HaproxyLogDecoder", [("haproxy", "system.haproxy.log")],
                      {"prefix": _syslog_re, "grammar": _haproxy_grammar_re}, {"tz": "UTC"}),
    "keystone": Family("KeystoneWsgiDecoder", [("keystone", "keystone-wsgi-main")],
                       {"grammar": _keystone_re}, {"tz": "UTC"}),
}


def corpus(family: Family, nlines: int, seed: int = 7) -> list[tuple[str, str]]:
    """(logger, line with newline) pairs, services interleaved in runs as files are read."""
    rng = random.Random(seed)
    now = 1_700_000_000.0
    out: list[tuple[str, str]] = []
    while len(out) < nlines:
        service, logger = family.services[rng.randrange(len(family.services))]
        for _ in range(50):
            now += rng.random() * 0.01
            out.extend((logger, line + "\n") for line in generate(service, rng, now))
    return out[:nlines]


def build(family: Family) -> Decoder:
    from types import SimpleNamespace
    cls = load_all()[family.decoder]
    values = {k: o.default_value() for k, o in cls.all_options().items()}
    values.update(family.options)
    return cls("bench", SimpleNamespace(**values))


def time_decoder(family: Family, lines: list[tuple[str, str]], chunk: int = 1000
                 ) -> tuple[float, int]:
    """Decode in batches as the pipeline does: a batch of fresh record messages (made
    outside the timing), decoded, then dropped, so the heap stays as small as in a
    running collector and the garbage collector's share is realistic."""
    dec = build(family)
    decode = dec.decode
    failures = 0
    elapsed = 0.0
    gc.collect()
    for start in range(0, len(lines), chunk):
        msgs: list[Message] = [new_record_message(0, "logfile", lg, "node-1", ln)
                               for lg, ln in lines[start:start + chunk]]
        t0 = time.perf_counter()
        for m in msgs:
            try:
                decode(m)
            except DecodeError:
                failures += 1
        elapsed += time.perf_counter() - t0
        del msgs
    t0 = time.perf_counter()
    dec.flush()
    return elapsed + time.perf_counter() - t0, failures


def time_regex(pattern: re.Pattern, lines: list[tuple[str, str]]) -> float:
    match = pattern.match
    texts = [ln for _, ln in lines]
    gc.collect()
    t0 = time.perf_counter()
    for t in texts:
        match(t)
    return time.perf_counter() - t0


@dataclass
class Measurement:
    """Best-of-`repeat` seconds for the decoder and for each bare-regex baseline."""

    lines: int
    nbytes: int
    decoder_seconds: float
    failures: int
    baseline_seconds: dict[str, float]


def measure(family: Family, lines: list[tuple[str, str]], repeat: int = 1) -> Measurement:
    """The decoder and its baselines on the same lines, runs interleaved so all see the
    same machine state (this script's `main` and the harness's `decoders` scenario)."""
    patterns = {k: f() for k, f in family.baselines.items()}
    best = dict.fromkeys(patterns, float("inf"))
    dec_t = float("inf")
    fails = 0
    for _ in range(repeat):
        for k, p in patterns.items():
            best[k] = min(best[k], time_regex(p, lines))
        t, fails = time_decoder(family, lines)
        dec_t = min(dec_t, t)
    return Measurement(len(lines), sum(len(ln.encode()) for _, ln in lines), dec_t, fails,
                       best)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5, help="best of N")
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES))
    args = ap.parse_args(argv)
    print(f"{'decoder':<22} {'lines/s':>10} {'MiB/s':>7} {'failures':>8}   baselines "
          "(lines/s, decoder/baseline)")
    for name in args.family or sorted(FAMILIES):
        fam = FAMILIES[name]
        m = measure(fam, corpus(fam, args.lines), args.repeat)
        n, dec_t = m.lines, m.decoder_seconds
        mib = m.nbytes / (1 << 20)
        base = "  ".join(f"{k} {n / t:,.0f} ({t / dec_t:.0%})"
                         for k, t in m.baseline_seconds.items())
        print(f"{fam.decoder:<22} {n / dec_t:>10,.0f} {mib / dec_t:>7.1f} {m.failures:>8}   "
              f"{base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
