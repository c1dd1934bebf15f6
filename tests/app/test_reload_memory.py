"""A reload frees the pipeline it replaces. The old pipeline is garbage held in
reference cycles (contexts and their pipeline, tasks and their coroutines, a failed
connection's traceback); with the daemon's garbage-collector tuning (high thresholds,
start-up objects frozen) nothing collected it, and each SIGHUP kept one pipeline with
what it held (6-7 MiB in the LMA log_collector). The daemon runs under a probe
(tests/helpers/reload_probe.py) that counts the instances not freed yet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from hekapy.benchmarks.es_double import EsDouble
from tests.fault_harness import config, finish_writer, write_lines
from tests.helpers.paths import REPO
from tests.helpers.plugins import write_config
from tests.helpers.wait import wait_for
from tests.services import free_port

pytestmark = pytest.mark.services

RELOADS = 4
RUNNING = "reload: the new configuration is running"


async def test_reloads_free_the_pipelines_they_replace(tmp_path):
    logs, stderr, probe = tmp_path / "logs", tmp_path / "stderr.log", tmp_path / "probe.jsonl"
    # A TcpOutput whose peer is away, as the log_collector's metric_tcpoutput while the
    # metric_collector restarts: its failed connections' tracebacks hold its context.
    extra = f"""
[metric_tcpoutput]
type = "TcpOutput"
message_matcher = "Type == 'log'"
address = "127.0.0.1:{free_port()}"
retry_delay = "20ms"
retry_max_delay = "100ms"
"""
    async with EsDouble() as es:
        base = config(tmp_path / "state", logs, es.url, extra=extra).replace(
            'hostname = "fault-1"',
            f'hostname = "fault-1"\nstatus_address = "127.0.0.1:{free_port()}"')
        conf = write_config(tmp_path, base)
        with stderr.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.helpers.reload_probe", "run", "-c", str(conf)],
                cwd=REPO, stdout=err, stderr=err,
                env={**os.environ, "RELOAD_PROBE_OUT": str(probe)})

        def log_tail() -> str:
            return stderr.read_text()[-3000:]

        async def held() -> dict[str, int]:
            before = len(probe.read_text().splitlines()) if probe.exists() else 0
            proc.send_signal(signal.SIGUSR1)
            await wait_for(lambda: probe.exists() and len(probe.read_text().splitlines()) > before,
                           "the probe's report", timeout=20, interval=0.02, process=proc,
                           details=log_tail)
            return json.loads(probe.read_text().splitlines()[-1])

        try:
            stored = 2000
            await finish_writer(await write_lines(logs, stored))
            await es.wait_count(stored, timeout=60, proc=proc)
            start = await held()
            assert start["pipelines"] == 1 and start["status_servers"] == 1, start
            for i in range(1, RELOADS + 1):
                conf.write_text(base.replace("flush_count = 1000", f"flush_count = {1000 - i}"))
                proc.send_signal(signal.SIGHUP)
                await wait_for(lambda i=i: stderr.read_text().count(RUNNING) == i,
                               f"reload {i} applied", timeout=60, interval=0.02, process=proc,
                               details=log_tail)
                await finish_writer(await write_lines(logs, 2000, first=stored))
                stored += 2000
                await es.wait_count(stored, timeout=60, proc=proc)
                now = await held()
                # One pipeline and one status server: the running ones.
                assert now["pipelines"] == 1, (i, now)
                assert now["status_servers"] == 1, (i, now)
                assert now["tasks"] <= start["tasks"] + 5, (i, start, now)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log_tail()
