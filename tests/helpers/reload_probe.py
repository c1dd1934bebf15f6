"""`hekapy` with a probe: `python -m tests.helpers.reload_probe run -c CONF` runs the
command as usual, and on SIGUSR1 appends to the file named by $RELOAD_PROBE_OUT one JSON
line of what the process still holds: the Pipeline and StatusServer instances not freed
yet (live or garbage), the threads, the asyncio tasks, the RSS. A reload that leaves
its old pipeline behind shows as more than one pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import weakref
from typing import Any

from hekapy.collector.app.cli import main
from hekapy.collector.app.status import StatusServer
from hekapy.collector.engine.pipeline import Pipeline

# Weak references: an instance leaves its set only once it is freed, so garbage that
# no collection has freed still counts.
INSTANCES: dict[str, weakref.WeakSet[Any]] = {"pipelines": weakref.WeakSet(),
                                              "status_servers": weakref.WeakSet()}


def _track(cls: type, name: str) -> None:
    init = cls.__init__

    def tracked_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        INSTANCES[name].add(self)

    cls.__init__ = tracked_init  # type: ignore[misc]


def _report(_signum: int, _frame: Any) -> None:
    try:
        tasks = len(asyncio.all_tasks(asyncio.get_running_loop()))
    except RuntimeError:  # between two loop iterations
        tasks = -1
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    line = {name: len(s) for name, s in INSTANCES.items()}
    line.update(threads=threading.active_count(), tasks=tasks, rss=rss)
    with open(os.environ["RELOAD_PROBE_OUT"], "a") as out:
        out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    _track(Pipeline, "pipelines")
    _track(StatusServer, "status_servers")
    signal.signal(signal.SIGUSR1, _report)
    sys.argv[0] = "hekapy"
    main()
