"""`hekapy` as a command: the command line, `hekapy run` started and stopped, its status
server, and the Prometheus text of its /metrics."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.helpers.plugins import write_config
from tests.helpers.wait import wait_for
from tests.services import free_port, stop_process

# The CLI of this checkout, whatever the PATH says.
HEKAPY = [sys.executable, "-m", "hekapy.collector.app.cli"]


def start_collector(conf: Path, log: Path, env: dict[str, str] | None = None
                    ) -> subprocess.Popen:
    """`hekapy run -c conf`, its stderr to `log`."""
    with log.open("w") as err:
        return subprocess.Popen([*HEKAPY, "run", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=err, env=env)


async def stop_collector(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (drain, checkpoint), SIGKILL after `timeout`; the exit status must be 0."""
    proc.send_signal(signal.SIGTERM)
    await wait_for(lambda: proc.poll() is not None, "hekapy to exit after SIGTERM",
                   timeout=timeout, interval=0.02, required=False)
    if proc.poll() is None:
        proc.kill()
    assert proc.wait() == 0


async def wait_status(base: str, proc: subprocess.Popen | None = None,
                      timeout: float = 30) -> None:
    """Until the status server at `base` answers (any HTTP status): it binds before the
    pipeline starts."""
    async with aiohttp.ClientSession() as s:
        async def answers() -> bool:
            try:
                async with s.get(base + "/health"):
                    return True
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(answers, f"the status server at {base}", timeout=timeout,
                       interval=0.02, process=proc)


class HekapyProcesses:
    """`hekapy run` processes with one shared stderr log (`tail()` in failures), and
    waiting on conditions while checking that every one of them is alive."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.log = tmp / "hekapy.log"
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, conf: Path) -> subprocess.Popen:
        with open(self.log, "ab") as err:
            proc = subprocess.Popen([*HEKAPY, "run", "-c", str(conf)], env=self.env,
                                    stdout=subprocess.DEVNULL, stderr=err)
        self.procs[name] = proc
        return proc

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def until(self, check: Callable[[], Awaitable[bool] | bool], what: str,
                    timeout: float = 60.0) -> None:
        """Polls `check` (InfluxDB, a file) until it holds."""
        await wait_for(check, what, timeout=timeout, interval=0.1,
                       process=list(self.procs.values()), details=self.tail)

    async def stop_all(self) -> None:
        for p in self.procs.values():
            await stop_process(p, 60)


# A collector tailing logs/app.log into two FileOutputs (errors only, everything), with a
# status server: what `hekapy tap` and `hekapy top` attach to.
TAP_TOML = """
[hekad]
base_dir = "{state}"
status_address = "127.0.0.1:{port}"

[app]
type = "LogstreamerInput"
log_directory = "{logs}"
file_match = 'app\\.log'

[errors]
type = "FileOutput"
message_matcher = "Payload =~ /ERROR/"
path = "{out_errors}"
encoder = "PayloadEncoder"

[everything]
type = "FileOutput"
message_matcher = "TRUE"
path = "{out}"
encoder = "PayloadEncoder"
flush_interval = 20

[PayloadEncoder]
append_newlines = false
"""


def tap_config(tmp_path: Path) -> tuple[Path, Path, int]:
    """TAP_TOML under `tmp_path` (outputs out.log and errors.log): the configuration,
    the log to append to and the status port."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").touch()
    port = free_port()
    conf = write_config(tmp_path, TAP_TOML.format(
        state=tmp_path / "state", port=port, logs=logs, out=tmp_path / "out.log",
        out_errors=tmp_path / "errors.log"))
    return conf, logs / "app.log", port


# --- a small Prometheus text-format parser (format 0.0.4) -------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>.*)\}})? (?P<value>\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """{family: [(labels, value)]}; AssertionError on anything malformed (a sample
    before its TYPE, a family typed twice, bad label syntax, a bad value)."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.match(rf"^# HELP {_NAME} .+$", line), line
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"{name} typed twice"
            assert kind in ("counter", "gauge", "untyped", "histogram", "summary"), line
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample: {line!r}"
        name = m["name"]
        assert name in types, f"{name} sampled before its TYPE"
        labels: dict[str, str] = {}
        rest = m["labels"] or ""
        pos = 0
        while pos < len(rest):
            lm = _LABEL.match(rest, pos)
            assert lm, f"bad labels in {line!r}"
            labels[lm[1]] = lm[2].replace('\\"', '"').replace("\\n", "\n").replace(
                "\\\\", "\\")
            pos = lm.end()
        value = float(m["value"])
        assert not math.isnan(value)
        if types[name] == "counter":
            assert value >= 0, line
        out.setdefault(name, []).append((labels, value))
    return out


def sample(metrics: dict, name: str, **labels: str) -> float:
    """The one sample of `name` with these labels (AssertionError unless exactly one)."""
    hits = [v for lab, v in metrics.get(name, []) if all(lab.get(k) == x
                                                          for k, x in labels.items())]
    assert len(hits) == 1, f"{name}{labels}: {hits} in {metrics.get(name)}"
    return hits[0]
