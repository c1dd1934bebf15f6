"""hekapy end to end: `hekapy run` (LogstreamerInput → OpenStackLogDecoder → ESJsonEncoder
→ ElasticSearchOutput, LMA's configuration) into the Elasticsearch double, each in its
own process.

- `pipeline`: hekapy starts on empty log files and ships a probe line (so start-up is
  not timed); then the corpus is appended to the tailed files and timed until the
  double holds every document: lines/s, MiB/s, CPU s per GiB and peak RSS of hekapy
  (the last message of each file, which the decoder holds up to hold_timeout for a
  continuation line, is waited for but not timed). Then lines numbered `hkseq=<n>`
  are appended at a steady rate (`--latency-rate` lines/s for `--latency-seconds`,
  then 1.5 s more that are not measured, so no measured line waits for hold_timeout)
  and the double notes when each one was stored: latency from write to acknowledged,
  p50 and p99 in ms. Peak RSS is reported over the whole run (the catch-up of the
  appended corpus included: the input reads ahead up to max_inflight_bytes) and at
  steady state (during the numbered lines, after the catch-up).
- `pipeline-429`: the same with the double answering 429 to one bulk request in five.
- `outage`: hekapy with `use_buffering = true` on the Elasticsearch output; numbered
  lines appended at `--outage-rate` lines/s (10,000) throughout; after
  `--outage-pre` s the double goes down (connections refused and closed, documents
  kept) for `--outage-seconds` (60) s, then comes back. Reported: peak RSS of hekapy
  (over the run, at steady state before the outage, during the outage), the disk
  buffer's peak size (its segment files), the recovery time
  (from the double's return until every line written before it is stored, while lines
  keep coming), and the lines lost, which must be 0: the set of stored sequence numbers
  is compared with what was written. Runs once (no warm-up, whatever --runs says).

A run fails loudly (no number) when the double did not get every document the corpus
makes (benchmarks/harness.py `expected_documents`), a numbered line never arrived, or
hekapy died or would not stop.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from hekapy.benchmarks.harness import (
    OSLO_FILES,
    Bench,
    Double,
    Monitor,
    Sample,
    ScenarioError,
    SeqWriter,
    hekapy_run,
    latencies_ms,
    percentile,
    repeat,
    stop_process,
    tail,
    time_corpus,
    wait_ready,
)
from hekapy.benchmarks.openstack_config import es_output, openstack_logs

LMA_ES_FIELDS = ["DynamicFields", "Hostname", "Logger", "Payload", "Pid", "Severity",
                 "Timestamp", "Type"]
LATENCY_TAIL = 1.5  # seconds of lines after the measured ones (hold_timeout is 1 s)
OUTPUT_KEYS: dict[str, Any] = {"flush_count": 2000, "flush_interval": 200, "max_in_flight": 4}
# The outage's disk buffer: 16 MiB segments (deleted once acknowledged), room for far
# more than a minute at 10k lines/s, and `block` rather than losing anything.
OUTAGE_BUFFERING: dict[str, Any] = {"max_file_size": 16 << 20, "max_buffer_size": 4 << 30,
                                    "full_action": "block"}


def pipeline_config(state: Path, logs: Path, es_url: str,
                    buffering: dict[str, Any] | None = None) -> str:
    return openstack_logs(state, logs) + es_output(
        es_url, fields=LMA_ES_FIELDS, buffering=buffering, **OUTPUT_KEYS)


def empty_logs(logs: Path) -> list[Path]:
    """The corpus's oslo.log files, empty, under `logs` (a fresh /var/log)."""
    out = []
    for rel in OSLO_FILES:
        (logs / rel).parent.mkdir(parents=True, exist_ok=True)
        (logs / rel).touch()
        out.append(logs / rel)
    return out


def kill(proc: Any) -> int:
    """After a failure: the process goes, whatever it was doing."""
    proc.kill()
    return proc.wait()


def wait_seqs(es: Double, n: int, proc: Any, monitor: Monitor, log: Path,
              stall: float = 30.0) -> None:
    """Until the double holds every numbered line below `n`."""
    last, last_change = -1, time.monotonic()
    while (floor := es.count()["seq_floor"]) < n:
        if proc.poll() is not None:
            raise ScenarioError(f"hekapy exited with {proc.returncode}: {tail(log)}")
        if floor != last:
            last, last_change = floor, time.monotonic()
        elif time.monotonic() - last_change > stall:
            raise ScenarioError(f"numbered line hkseq={floor} (of {n}) not stored after "
                                f"{stall:.0f} s: lines lost or a stalled pipeline")
        monitor.sample()
        time.sleep(0.05)


def pipeline_once(bench: Bench, faults: dict[str, Any] | None = None) -> Sample:
    args = bench.args
    tmp = bench.scratch("pipeline")
    paths = empty_logs(tmp / "logs")
    expected = bench.expected_documents()
    with Double(record_seq=True, faults=faults) as es:
        conf = tmp / "hekad.toml"
        conf.write_text(pipeline_config(tmp / "state", tmp / "logs", es.url))
        log = tmp / "hekapy.log"
        proc = hekapy_run(conf, log)
        writer = SeqWriter(paths)
        ok = False
        try:
            mon = Monitor(proc.pid)
            documents = lambda: es.count()["documents"]  # noqa: E731
            writer.write(1)  # the probe: hekapy is up once it is stored
            wait_ready(documents, 1, proc, "hekapy", log)
            sample = time_corpus(bench, paths, documents, 1, expected, mon, proc, "hekapy",
                                 log, untimed_tail=len(OSLO_FILES), sink=es)
            first = writer.next_seq
            catch_up_peak, mon.peak_rss = mon.peak_rss, 0  # steady state from here
            writer.write_at(args.latency_rate, args.latency_seconds, between=mon.sample)
            end = writer.next_seq
            # Lines go on past the measured ones: the decoder holds a stream's last line
            # up to hold_timeout for a continuation line, which a steady stream never
            # waits for (those tail lines must arrive too, but are not measured).
            writer.write_at(args.latency_rate, LATENCY_TAIL, between=mon.sample)
            writer.close()
            n = writer.next_seq
            wait_seqs(es, n, proc, mon, log)
            steady_peak = mon.peak_rss
            mon.peak_rss = max(catch_up_peak, steady_peak)
            written = {s: t for s, t in writer.write_times().items() if first <= s < end}
            lat = latencies_ms(written, es.arrivals())
            stats = es.stats()
            ok = True
        finally:
            writer.close()
            rc = stop_process(proc, "hekapy") if ok else kill(proc)
    if rc != 0:
        raise ScenarioError(f"hekapy exited with {rc} on SIGTERM: {tail(log)}")
    if stats["documents"] != expected + n:
        raise ScenarioError(f"the double holds {stats['documents']} documents, "
                            f"{expected + n} expected")
    if faults and not stats.get("rejected_429"):
        raise ScenarioError("the double was to answer 429 but never did")
    sample.update(documents=expected, peak_rss_mib=mon.peak_rss_mib,
                  peak_rss_steady_mib=steady_peak / 2**20,
                  latency_p50_ms=percentile(lat, 50), latency_p99_ms=percentile(lat, 99),
                  latency_lines=len(written), latency_rate=args.latency_rate)
    if faults:
        sample["rejected_429"] = stats["rejected_429"]
    return sample


def bench_pipeline(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: pipeline_once(bench))


def bench_pipeline_429(bench: Bench) -> list[Sample]:
    return repeat(bench, lambda: pipeline_once(bench, {"reject_429_every": 5}))


def buffer_bytes(directory: Path) -> int:
    try:
        return sum(e.stat().st_size for e in os.scandir(directory)
                   if e.name.endswith(".log"))
    except FileNotFoundError:
        return 0


def outage_once(bench: Bench) -> Sample:
    args = bench.args
    rate = float(args.outage_rate)
    tmp = bench.scratch("outage")
    logs = tmp / "logs"
    paths = empty_logs(logs)
    state = tmp / "state"
    bufdir = state / "output_queue" / "elasticsearch_output"
    tick = 0.01
    with Double(record_seq=True) as es:
        conf = tmp / "hekad.toml"
        conf.write_text(pipeline_config(state, logs, es.url, OUTAGE_BUFFERING))
        log = tmp / "hekapy.log"
        proc = hekapy_run(conf, log)
        writer = SeqWriter(paths)
        ok = False
        try:
            mon = Monitor(proc.pid)
            peak_buf = 0

            def sample() -> None:
                nonlocal peak_buf
                mon.sample()
                peak_buf = max(peak_buf, buffer_bytes(bufdir))
                if proc.poll() is not None:
                    raise ScenarioError(f"hekapy exited with {proc.returncode}: "
                                        f"{tail(log)}")

            def write_for(seconds: float) -> None:
                end = time.perf_counter() + seconds
                while (now := time.perf_counter()) < end:
                    writer.keep_pace()
                    sample()
                    time.sleep(max(0.0, tick - (time.perf_counter() - now)))

            # hekapy is up and shipping: its first line is stored.
            writer.write(1)
            deadline = time.monotonic() + 60
            while es.count()["seq_floor"] < 1:
                sample()
                if time.monotonic() > deadline:
                    raise ScenarioError(f"hekapy shipped nothing in 60 s: {tail(log)}")
                time.sleep(0.05)
            writer.pace(rate)
            start_peak, mon.peak_rss = mon.peak_rss, 0
            write_for(args.outage_pre)
            steady_peak, mon.peak_rss = mon.peak_rss, 0
            es.go_down()
            write_for(args.outage_seconds)
            peak_rss_outage = mon.peak_rss
            mon.peak_rss = max(start_peak, steady_peak, peak_rss_outage)
            back_seq = writer.next_seq
            es.come_back()
            t_back = time.perf_counter()
            limit = max(120.0, 5 * args.outage_seconds)
            recovery = None
            next_poll = 0.0
            while recovery is None:
                now = time.perf_counter()
                if now - t_back > limit:
                    floor = es.count()["seq_floor"]
                    raise ScenarioError(f"not recovered {limit:.0f} s after the double came "
                                        f"back: hkseq={floor} of {back_seq} still missing")
                writer.keep_pace()
                sample()
                if now >= next_poll:
                    if es.count()["seq_floor"] >= back_seq:
                        recovery = time.perf_counter() - t_back
                    next_poll = now + 0.1
                time.sleep(max(0.0, tick - (time.perf_counter() - now)))
            write_for(args.outage_post)
            writer.close()
            total = writer.next_seq
            wait_seqs(es, total, proc, mon, log, stall=60.0)
            arrived = es.arrivals()
            stats = es.stats()
            ok = True
        finally:
            writer.close()
            rc = stop_process(proc, "hekapy") if ok else kill(proc)
    lost = total - len(arrived.keys() & set(range(total)))
    if lost:
        raise ScenarioError(f"{lost} of {total} lines lost across the outage")
    if rc != 0:
        raise ScenarioError(f"hekapy exited with {rc} on SIGTERM: {tail(log)}")
    return {"peak_rss_mib": mon.peak_rss_mib, "peak_rss_steady_mib": steady_peak / 2**20,
            "peak_rss_outage_mib": peak_rss_outage / 2**20,
            "buffer_peak_mib": peak_buf / 2**20, "recovery_seconds": recovery,
            "lines_lost": lost, "lines_written": total, "write_rate": rate,
            "outage_seconds": args.outage_seconds,
            "ids_written_more_than_once": stats["ids_written_more_than_once"]}


def bench_outage(bench: Bench) -> list[Sample]:
    return [outage_once(bench)]
