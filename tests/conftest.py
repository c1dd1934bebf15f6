"""pytest's hooks and fixtures for the whole suite (what test modules share is in
tests/helpers/)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from hekapy.collector.compiled import HOT_MODULES, TYPED_MODULES, source_path

# Importing the test plugins registers them (the tests' TOML names their types).
from tests.helpers.plugins import CollectOutput


def pytest_configure(config) -> None:
    """Refuse to test a compiled hot module older than its source, or a compiled module
    that is no longer hot: the source would not be what runs (scripts/test and
    scripts/setup-venv rebuild them)."""
    root = Path(__file__).resolve().parents[1]
    stale = []
    for name in HOT_MODULES + TYPED_MODULES:
        spec = importlib.util.find_spec(name)
        origin = (spec.origin or "") if spec is not None else ".py"  # a typed one unbuilt
        if not origin.endswith(".py") and \
                os.path.getmtime(origin) < os.path.getmtime(root / source_path(name)):
            stale.append(name)
    hot = {p.rsplit(".", 1)[0] for p in map(source_path, HOT_MODULES + TYPED_MODULES)}
    stale += [str(so.relative_to(root)) for top in ("collector", "decoders", "filters",
                                                    "outputs", "benchmarks")
              for so in (root / top).rglob("*.so")
              if str(so.relative_to(root)).split(".")[0] not in hot]
    if stale:
        pytest.exit(f"compiled modules older than their source, or no longer hot: "
                    f"{', '.join(stale)}; run scripts/setup-venv test,fast", returncode=4)


@pytest.fixture(autouse=True)
def _reset_instances():
    CollectOutput.instances.clear()
    yield


@pytest.fixture(autouse=True)
def _no_daemon_left_behind():
    """A test that fails midway must not leave its `hekapy run` subprocess running."""
    from tests.fault_harness import DAEMONS
    yield
    import contextlib
    import os
    import signal
    while DAEMONS:
        proc = DAEMONS.pop().proc
        if proc is not None and proc.returncode is None:
            # os.kill: the test's event loop (and the process's transport) may be closed.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The fault-injection suite's accounting table (README: "Fault injection")."""
    from tests.fault_harness import ROWS, summary_table
    if ROWS:
        terminalreporter.write_sep("-", "fault injection: exact accounting")
        terminalreporter.write_line(summary_table(ROWS))
