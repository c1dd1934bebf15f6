"""`hekapy top` on a terminal: a live view that says how to quit, and q quits it."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import time

import pytest

from tests.helpers.collectors import (
    HEKAPY,
    start_collector,
    stop_collector,
    tap_config,
    wait_status,
)

pytestmark = pytest.mark.services


async def read_until(fd: int, text: bytes, proc: subprocess.Popen, timeout: float = 30
                     ) -> bytes:
    """What the terminal shows, once it shows `text`."""
    loop = asyncio.get_running_loop()
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert proc.poll() is None, f"top exited with {proc.returncode}: {seen[-500:]!r}"
        ready = asyncio.Event()
        loop.add_reader(fd, ready.set)
        try:
            await asyncio.wait_for(ready.wait(), max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError(f"no {text!r} on the terminal: {seen[-500:]!r}") from None
        finally:
            loop.remove_reader(fd)
        seen += os.read(fd, 65536)
    return seen


async def test_q_quits_top_and_the_screen_says_so(tmp_path):
    conf, _log, port = tap_config(tmp_path)
    collector = start_collector(conf, tmp_path / "hekapy.log")
    main, terminal = pty.openpty()
    try:
        await wait_status(f"http://127.0.0.1:{port}", collector)
        top = subprocess.Popen([*HEKAPY, "top", "-c", str(conf), "--interval", "0.2"],
                               stdin=terminal, stdout=terminal, stderr=terminal,
                               env={**os.environ, "COLUMNS": "160", "TERM": "xterm"})
        try:
            screen = await read_until(main, b"q quits", top)
            assert b"PLUGIN" in screen
            os.write(main, b"q")
            loop = asyncio.get_running_loop()
            assert await asyncio.wait_for(loop.run_in_executor(None, top.wait), 30) == 0
        finally:
            if top.poll() is None:
                top.kill()
    finally:
        os.close(main)
        os.close(terminal)
        await stop_collector(collector)
