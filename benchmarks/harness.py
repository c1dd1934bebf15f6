"""What every scenario of the benchmark harness (`python -m hekapy.benchmarks`) shares:
the run's context (`Bench`: the corpus, its size, the options), repeated runs with a
warm-up, a failed run that reports no number (`ScenarioError`), the Elasticsearch
double in its own process (`Double`), sampling a process's RSS and CPU (`Monitor`),
timing a running shipper from the corpus landing in the files it tails until its sink
holds every document (`time_corpus`), and sequence-numbered oslo.log lines appended at
a steady rate (`SeqWriter`) for readiness probes, latency and loss checks.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hekapy.benchmarks.es_double import start_process

Sample = dict[str, Any]

# The oslo.log files of the corpus (benchmarks/corpus.py) that the LMA configuration
# tails (nova and neutron), and each one's stream name (the logstreamer differentiator).
OSLO_FILES = {"nova/nova-api.log": "nova_nova-api", "nova/nova-compute.log": "nova_nova-compute",
              "neutron/server.log": "neutron_server",
              "neutron/lbaas-agent.log": "neutron_lbaas-agent"}
SEQ_PATTERN = r"hkseq=(\d+)"


class ScenarioError(Exception):
    """A broken run (a sink short of documents, a process that died, a missing tool):
    the scenario reports no number, and the harness exits non-zero."""


@dataclass
class Bench:
    """One harness run: the corpus (written once), its size, and the options."""

    corpus: Path
    tmp: Path
    nbytes: int
    lines: int
    args: argparse.Namespace
    _expected: int | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def oslo_paths(self) -> list[Path]:
        return [self.corpus / f for f in OSLO_FILES]

    @property
    def runs(self) -> int:
        return int(self.args.runs)

    @property
    def warmup(self) -> bool:
        return not self.args.quick

    def expected_documents(self) -> int:
        """How many documents hekapy makes of the corpus (tracebacks are one each)."""
        if self._expected is None:
            self._expected = expected_documents(self.oslo_paths)
        return self._expected

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """Something several scenarios or runs share (an archive, decoded lines)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def scratch(self, name: str) -> Path:
        """A fresh directory under the run's temporary directory."""
        n = len(list(self.tmp.glob(f"{name}-*")))
        path = self.tmp / f"{name}-{n}"
        path.mkdir(parents=True)
        return path


def expected_documents(paths: Iterable[Path]) -> int:
    from types import SimpleNamespace

    from hekapy.collector.engine.message import Message
    from hekapy.decoders.openstack_log import OpenStackLogDecoder
    options = {k: o.default_value() for k, o in OpenStackLogDecoder.all_options().items()}
    n = 0
    for p in paths:
        dec = OpenStackLogDecoder("bench", SimpleNamespace(**{**options, "tz": "UTC"}))
        with open(p, encoding="utf-8", errors="replace") as f:
            for line in f:
                r = dec.decode(Message(payload=line))
                n += 0 if r is None else 1 if isinstance(r, Message) else len(r)
        n += len(dec.flush())
    return n


def repeat(bench: Bench, run: Callable[[], Sample]) -> list[Sample]:
    """A warm-up run (page cache, imports; not with --quick), then --runs runs."""
    if bench.warmup:
        run()
    return [run() for _ in range(bench.runs)]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


# --- processes ----------------------------------------------------------------------

class Monitor:
    """Peak RSS and CPU time of a process (psutil), sampled when asked."""

    def __init__(self, pid: int) -> None:
        import psutil
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.alive = True

    def sample(self) -> None:
        try:
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
        except Exception:  # gone: keep what was seen
            self.alive = False

    def cpu_seconds(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss / 2**20


def stop_process(proc: subprocess.Popen, what: str, timeout: float = 60.0) -> int:
    """SIGTERM, then wait; a process that does not stop is killed and is an error."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ScenarioError(f"{what} did not stop within {timeout:.0f} s of SIGTERM "
                                "(killed)") from None
    return proc.returncode


def tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


def hekapy_run(conf: Path, log: Path) -> subprocess.Popen:
    """`hekapy run -c conf`, its stderr to `log`."""
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "hekapy.collector.app.cli", "run",
                                 "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)


class Double:
    """The Elasticsearch double (benchmarks/es_double.py) in its own process, ids only,
    no mapping checks; `count()` over one kept-alive connection (cheap to poll)."""

    def __init__(self, *flags: str, record_seq: bool = False,
                 faults: dict[str, Any] | None = None) -> None:
        args = ["--no-sources", "--no-mappings", *flags]
        if record_seq:
            args += ["--record-seq", SEQ_PATTERN]
        if faults:
            args += ["--faults", json.dumps(faults)]
        self.proc, self.url = start_process(*args)
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> Any:
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self._conn.request("GET", path)
                r = self._conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise ScenarioError(f"the double answered {r.status} to {path}")
                return json.loads(body)
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def cpu_seconds(self) -> float:
        """CPU seconds the double's process used so far."""
        import psutil
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def count(self) -> dict[str, int]:
        """{"documents", "bulk_requests", "seqs", "seq_floor"}"""
        return self.get("/_double/count")

    def stats(self) -> dict[str, Any]:
        return self.get("/_double/stats")

    def arrivals(self) -> dict[int, float]:
        a = self.get("/_double/arrivals")
        return dict(zip(a["seqs"], a["times"], strict=True))

    def go_down(self) -> None:
        """Refuse connections and close open ones (SIGUSR1); documents are kept.
        Returns once the double refuses (it handles the signal asynchronously)."""
        self.proc.send_signal(signal.SIGUSR1)
        self._wait_until(up=False)

    def come_back(self) -> None:
        self.proc.send_signal(signal.SIGUSR2)
        self._wait_until(up=True)

    def _wait_until(self, up: bool) -> None:
        """Until the double answers (`up`) or refuses; no event to await across the
        process boundary, so it is asked every 10 ms, for at most 10 s."""
        deadline = time.monotonic() + 10
        while True:
            if self._conn is not None:  # a connection kept from before: ask afresh
                self._conn.close()
                self._conn = None
            try:
                self.count()
                answers = True
            except (OSError, http.client.HTTPException):
                answers = False
            if answers == up:
                return
            if time.monotonic() > deadline:
                raise ScenarioError("the double did not " + ("come back" if up else "go down"))
            time.sleep(0.01)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> Double:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_files(pairs: Iterable[tuple[Path, Path]]) -> None:
    """Append each source file to its destination (a log being tailed), 1 MiB at a time."""
    for src, dst in pairs:
        with open(src, "rb") as fin, open(dst, "ab") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)


def wait_ready(count: Callable[[], int], n: int, proc: subprocess.Popen, what: str,
               log: Path | None = None, timeout: float = 60.0) -> None:
    """Until the sink holds `n` items (a probe line went through: the shipper is up)."""
    deadline = time.monotonic() + timeout
    while count() < n:
        if proc.poll() is not None:
            raise ScenarioError(f"{what} exited with {proc.returncode} before it shipped "
                                f"anything: {tail(log) if log else ''}")
        if time.monotonic() > deadline:
            raise ScenarioError(f"{what} shipped nothing in {timeout:.0f} s"
                                + (f": {tail(log)}" if log else ""))
        time.sleep(0.02)


def time_corpus(bench: Bench, dests: Sequence[Path], count: Callable[[], int], base: int,
                expected: int, monitor: Monitor, proc: subprocess.Popen, what: str,
                log: Path | None = None, untimed_tail: int = 0, stall: float = 30.0,
                sink: Double | None = None) -> Sample:
    """The shipper is up and its sink holds `base` items. Append the corpus's oslo.log
    files to the tailed `dests` and wait until the sink holds `base + expected`: the
    seconds from the append to the last item (start-up excluded, nothing extrapolated)
    and the shipper's CPU seconds over the same span. The last `untimed_tail` items
    are waited for but not timed (hekapy holds each stream's last message up to
    hold_timeout for a continuation line: latency, not throughput). With `sink` (the
    double), also the share of a core the sink used over the span ("sink_cpu_share":
    near 1.0 means the row measured the double, not the shipper). Fails loudly when
    the process exits, the count stops moving for `stall` s, or ends above the total.
    """
    total = base + expected
    timed_to = total - min(untimed_tail, expected - 1)
    sink_cpu = sink.cpu_seconds() if sink is not None else 0.0
    t0 = time.perf_counter()
    cpu0 = monitor.cpu_seconds()
    append_files(zip(bench.oslo_paths, dests, strict=True))
    stored = -1
    t_end = cpu_end = None
    last_change = time.perf_counter()
    while stored < total:
        if proc.poll() is not None:
            raise ScenarioError(f"{what} exited with {proc.returncode} at {stored - base} "
                                f"of {expected}: {tail(log) if log else ''}")
        monitor.sample()
        now_stored = count()
        if now_stored != stored:
            now = time.perf_counter()
            stored, last_change = now_stored, now
            if t_end is None and stored >= timed_to:
                t_end, cpu_end = now, monitor.cpu_seconds()
                if sink is not None:
                    sink_cpu = sink.cpu_seconds() - sink_cpu
        elif time.perf_counter() - last_change > stall:
            raise ScenarioError(f"{what}: the sink stopped at {stored - base} of {expected} "
                                f"for {stall:.0f} s: a broken run, no number reported"
                                + (f"\n{tail(log)}" if log else ""))
        time.sleep(0.02)
    if stored > total:
        raise ScenarioError(f"{what}: the sink has {stored - base} items, {expected} "
                            "expected (duplicates or a miscount): no number reported")
    assert t_end is not None and cpu_end is not None
    out: Sample = {"seconds": t_end - t0, "cpu_seconds": cpu_end - cpu0,
                   "peak_rss_mib": monitor.peak_rss_mib}
    if sink is not None:
        out["sink_cpu_share"] = sink_cpu / (t_end - t0)
    return out


# --- lines with sequence numbers ----------------------------------------------------

class SeqWriter:
    """Appends oslo.log lines numbered 0, 1, 2 … (`hkseq=<n>` in the message) to log
    files, in turn, and remembers when each burst was written (time.time(), after the
    write returned), for write-to-acknowledged latency and loss checks."""

    def __init__(self, paths: Sequence[Path], line_bytes: int = 300) -> None:
        self.files = [open(p, "ab", buffering=0) for p in paths]
        self.next_seq = 0
        self.bursts: list[tuple[int, int, float]] = []  # (first seq, count, time)
        self.pace(0.0)
        self._pad = "x" * max(0, line_bytes - 200)

    def write(self, n: int) -> None:
        if n <= 0:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + \
            f".{int(now * 1000) % 1000:03d}"
        per_file: list[list[str]] = [[] for _ in self.files]
        first = self.next_seq
        for seq in range(first, first + n):
            per_file[seq % len(self.files)].append(
                f"{stamp} 2310 INFO nova.api.openstack.wsgi [None req-{seq:08x}-0000-4000-"
                f"8000-000000000000 309cad68386d070c415ed7e70cad1946 53e5753dc98fa36a1009aec"
                f"ac22ae386 - - - -] hkseq={seq} bench line {self._pad}\n")
        for f, lines in zip(self.files, per_file, strict=True):
            if lines:
                f.write("".join(lines).encode())
        self.next_seq = first + n
        self.bursts.append((first, n, time.time()))

    def pace(self, rate: float) -> None:
        """From now on, `keep_pace()` writes what `rate` lines/s is due."""
        self._rate = rate
        self._t0 = time.perf_counter()
        self._base = self.next_seq

    def keep_pace(self) -> None:
        due = int((time.perf_counter() - self._t0) * self._rate) - (self.next_seq - self._base)
        self.write(due)

    def write_at(self, rate: float, seconds: float, tick: float = 0.01,
                 between: Callable[[], None] | None = None) -> None:
        """`rate` lines/s for `seconds`, in bursts every `tick` s; `between()` runs
        after each burst (sampling)."""
        self.pace(rate)
        end = self._t0 + seconds
        while (now := time.perf_counter()) < end:
            self.keep_pace()
            if between is not None:
                between()
            time.sleep(max(0.0, min(tick - (time.perf_counter() - now), end - now)))
        self.write(int(seconds * rate) - (self.next_seq - self._base))

    def write_times(self) -> dict[int, float]:
        return {s: t for first, n, t in self.bursts for s in range(first, first + n)}

    def close(self) -> None:
        for f in self.files:
            f.close()


def latencies_ms(written: dict[int, float], arrived: dict[int, float]) -> list[float]:
    missing = written.keys() - arrived.keys()
    if missing:
        raise ScenarioError(f"{len(missing)} of {len(written)} numbered lines never reached "
                            f"the sink (e.g. hkseq={min(missing)}): lines lost")
    return [(arrived[s] - t) * 1000 for s, t in written.items()]


# --- aggregation ----------------------------------------------------------------------

def make_row(samples: list[Sample], bench: Bench) -> dict[str, Any]:
    """Medians over the runs (peaks: the maximum; losses: the maximum), and rates from
    the median time: items (default: the corpus's lines) and bytes (the corpus's)."""
    row: dict[str, Any] = {"runs": len(samples)}
    first = samples[0]
    if "seconds" in first:
        items = first.get("items", bench.lines)
        nbytes = first.get("bytes", bench.nbytes)
        secs = [s["seconds"] for s in samples]
        med = statistics.median(secs)
        row["unit"] = first.get("unit", "lines")
        row["lines_per_s"] = items / med
        row["spread_lines_per_s"] = [items / max(secs), items / min(secs)]
        if nbytes:
            row["mib_per_s"] = nbytes / med / 2**20
        if "cpu_seconds" in first and nbytes:
            cpu = statistics.median(s["cpu_seconds"] for s in samples)
            row["cpu_s_per_gib"] = cpu / (nbytes / 2**30)
    for key, value in first.items():
        if key in ("seconds", "items", "bytes", "unit", "cpu_seconds") or key in row:
            continue
        values = [s[key] for s in samples if key in s]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            row[key] = value
        elif key.startswith(("peak_", "max_")) or "lost" in key:
            row[key] = max(values)
        else:
            row[key] = statistics.median(values)
    return row


def tool_path(name: str, given: str | None, hint: str) -> str:
    """The executable `given`, or `name` on PATH or in /usr/sbin; else a loud error."""
    import shutil
    candidates = [given] if given else [shutil.which(name), f"/usr/sbin/{name}"]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    where = given or f"{name} (PATH, /usr/sbin)"
    raise ScenarioError(f"{where} not found: {hint}")
