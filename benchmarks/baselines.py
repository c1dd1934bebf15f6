"""The harness's baselines, measured on the same corpus in the same run as hekapy:
- `cat`: `cat` of the corpus to /dev/null (the physical limit of reading it);
- `regex`: a bare Python loop, one full-grammar oslo.log regex per line (CPython's
  ceiling for line parsing);
- `naive`: a naive Python shipper: regex, a 13-field dict, orjson, 5,000-document bulk
  bodies written to /dev/null (every row's ratio is to this one).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import orjson

from hekapy.benchmarks.harness import Bench, Sample, repeat

# The OpenStack line grammar in one regex (what a regex-parsing shipper would use).
OSLO_RE = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) (?P<pid>\d+) (?P<level>[A-Z]+) "
    r"(?P<module>\S+) (?:\[(?P<ctx>[^\]]*)\] )?(?P<msg>.*)")


def cat_once(paths: list[Path]) -> Sample:
    t0 = time.perf_counter()
    subprocess.run(["cat", *map(str, paths)], stdout=subprocess.DEVNULL, check=True)
    return {"seconds": time.perf_counter() - t0}


def regex_once(paths: list[Path]) -> Sample:
    t0 = time.perf_counter()
    n = 0
    match = OSLO_RE.match
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                if match(line):
                    n += 1
    return {"seconds": time.perf_counter() - t0}


def naive_once(paths: list[Path]) -> Sample:
    t0 = time.perf_counter()
    match = OSLO_RE.match
    body: list[bytes] = []
    with open(os.devnull, "wb") as out:
        for p in paths:
            with open(p, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = match(line)
                    if not m:
                        continue
                    doc = {"Timestamp": m["ts"], "Pid": int(m["pid"]),
                           "severity_label": m["level"], "python_module": m["module"],
                           "Payload": m["msg"], "Type": "log", "Logger": p.stem,
                           "Hostname": "bench-1", "Severity": 6, "programname": p.stem,
                           "request_id": m["ctx"] or "", "EnvVersion": "", "Uuid": ""}
                    body.append(b'{"index":{"_index":"log"}}\n' + orjson.dumps(doc) + b"\n")
                    if len(body) == 5000:
                        out.write(b"".join(body))
                        body = []
        out.write(b"".join(body))
    return {"seconds": time.perf_counter() - t0}


def bench_cat(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: cat_once(bench.oslo_paths))


def bench_regex(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: regex_once(bench.oslo_paths))


def bench_naive(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: naive_once(bench.oslo_paths))
