"""Waiting for what no event announces: the state of a pipeline running in the test's
event loop, a file another process writes, a server's answer.

`wait_for` looks at its condition again after every pass of the event loop (the
pipeline's tasks run in between), or every `interval` seconds for what only a file or a
server shows. It fails with the thing waited for in the message: at the timeout, or at
once when a process it watches exits first.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol


class Process(Protocol):
    """A child process: subprocess.Popen, an asyncio process, or a stand-in for one."""

    @property
    def returncode(self) -> int | None: ...


# A function whose result is truthy once the awaited state is reached; a coroutine
# function too (a query to a server).
Condition = Callable[[], object | Awaitable[object]]


def exit_code(process: Process) -> int | None:
    """The process's exit status, None while it runs (Popen's returncode is only
    current after a poll())."""
    poll = getattr(process, "poll", None)
    return poll() if callable(poll) else process.returncode


def _watched(process: Process | Iterable[Process] | None) -> list[Process]:
    if process is None:
        return []
    if hasattr(process, "returncode"):
        return [process]
    return list(process)


def _describe(process: Process) -> str:
    if isinstance(process, subprocess.Popen):
        args = process.args if isinstance(process.args, list | tuple) else [process.args]
        return f"process {process.pid} ({' '.join(map(str, args))[-120:]})"
    return f"process {getattr(process, 'pid', '?')}"


def _failure(text: str, details: Callable[[], str] | None) -> AssertionError:
    return AssertionError(f"{text}\n{details()}" if details is not None else text)


def _exited(processes: list[Process], what: str,
            details: Callable[[], str] | None) -> AssertionError | None:
    for process in processes:
        code = exit_code(process)
        if code is not None:
            return _failure(f"{_describe(process)} exited with {code} while waiting for "
                            f"{what}", details)
    return None


async def wait_for(condition: Condition, what: str, *, timeout: float = 60.0,
                   interval: float = 0.0, process: Process | Iterable[Process] | None = None,
                   details: Callable[[], str] | None = None, required: bool = True) -> bool:
    """Until `condition()` holds; True then.

    `what` names the awaited state in the failure. `interval` 0 looks again after every
    pass of the event loop; a positive one sleeps between looks (for conditions that
    cost a file read or a request). The processes in `process` exiting first is a
    failure, as is the `timeout` (seconds) unless not `required`: then False, and the
    caller goes on with what it has. `details()` (a log's tail) is added to failures.
    """
    watched = _watched(process)
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return True
        if (error := _exited(watched, what, details)) is not None:
            raise error
        if time.monotonic() >= deadline:
            if not required:
                return False
            raise _failure(f"timed out after {timeout:g} s waiting for {what}", details)
        await asyncio.sleep(interval)


def wait_for_sync(condition: Callable[[], object], what: str, *, timeout: float = 60.0,
                  interval: float = 0.02,
                  process: subprocess.Popen | Iterable[subprocess.Popen] | None = None,
                  details: Callable[[], str] | None = None) -> None:
    """`wait_for` for tests without an event loop: sleeps `interval` between looks."""
    watched = _watched(process)
    deadline = time.monotonic() + timeout
    while not condition():
        if (error := _exited(watched, what, details)) is not None:
            raise error
        if time.monotonic() >= deadline:
            raise _failure(f"timed out after {timeout:g} s waiting for {what}", details)
        time.sleep(interval)


async def settle(passes: int = 2000) -> None:
    """Let every runnable task run many times (to show that nothing moves after)."""
    for _ in range(passes):
        await asyncio.sleep(0)
