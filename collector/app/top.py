"""`hekapy top`: per-plugin rates, queue depths, buffers and errors of a running
collector, from two /stats snapshots at a time (rich Live on a terminal, plain tables
otherwise). On a terminal, q quits.

`hekapy top -c CONFIG [--once] [--interval S]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Iterator
from typing import Any, TextIO

import aiohttp

from hekapy.collector.app.status.client import fetch_stats, status_endpoint
from hekapy.collector.engine.config import Config


def _human(n: float, unit: str = "") -> str:
    for suffix in ("", "k", "M", "G", "T"):
        if abs(n) < 1000 or suffix == "T":
            s = f"{n:.0f}" if suffix == "" else f"{n:.1f}"
            return f"{s}{suffix}{unit}"
        n /= 1000
    return str(n)


def _bytes(n: float) -> str:
    for suffix in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or suffix == "GiB":
            return f"{n:.0f}{suffix}" if suffix == "B" else f"{n:.1f}{suffix}"
        n /= 1024
    return str(n)


TOP_COLUMNS = ("PLUGIN", "TYPE", "IN/s", "OUT/s", "QUEUE", "QBYTES", "BUFFER", "UNACKED",
               "ERRORS", "DROPPED", "RETRIED", "STATE")


def top_rows(prev: dict | None, cur: dict) -> list[tuple[str, ...]]:
    """One row per plugin: rates from two snapshots (`prev` None: no rates yet)."""
    dt = (cur["uptime"] - prev["uptime"]) if prev else 0.0
    before = {(p["category"], p["name"]): p for p in prev["plugins"]} if prev else {}
    rows: list[tuple[str, ...]] = []
    for p in cur["plugins"]:
        old = before.get((p["category"], p["name"]))

        def rate(key: str, p: dict = p, old: dict | None = old) -> str:
            if old is None or dt <= 0:
                return "-"
            return _human(max(0, p[key] - old[key]) / dt)

        queues = p.get("queues") or []
        qmsgs = sum(q["messages"] for q in queues)
        qbytes = sum(q["bytes"] for q in queues)
        buf = p.get("buffer")
        unacked = p.get("unacked_batches")
        state = ("gave up" if p.get("gave_up") else "retrying" if p.get("retrying_for")
                 else "running")
        rows.append((p["name"], p["type"], rate("messages_in"), rate("messages_out"),
                     str(qmsgs) if queues else "-", _bytes(qbytes) if queues else "-",
                     _bytes(buf["bytes"]) if buf else "-",
                     str(unacked) if unacked is not None else "-",
                     str(p["errors"]), str(p["dropped"]), str(p["retried"]), state))
    return rows


def top_header(prev: dict | None, cur: dict) -> str:
    proc = cur["process"]
    cpu = "-"
    if prev:
        dt = cur["uptime"] - prev["uptime"]
        if dt > 0:
            cpu = f"{100 * (proc['cpu_seconds'] - prev['process']['cpu_seconds']) / dt:.0f}%"
    health = cur["health"]
    reasons = "; ".join(health.get("reasons", []))
    return (f"hekapy {cur['version']} on {cur['hostname']} (pid {cur['pid']}): up "
            f"{cur['uptime']:.0f}s, RSS {_bytes(proc['rss_bytes'])}, CPU {cpu}, "
            f"routed {cur['router']['messages']}, health {health['status']}"
            + (f" ({reasons})" if reasons else ""))


def plain_table(rows: list[tuple[str, ...]]) -> str:
    table = [TOP_COLUMNS, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(TOP_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in table)


def _rich_view(prev: dict | None, cur: dict) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(expand=False, box=None, header_style="bold")
    for c in TOP_COLUMNS:
        t.add_column(c, justify="right" if c not in ("PLUGIN", "TYPE", "STATE") else "left")
    for r in top_rows(prev, cur):
        style = "red" if r[-1] == "gave up" else "yellow" if r[-1] == "retrying" else None
        t.add_row(*r, style=style)
    return Group(Text(top_header(prev, cur)), t, Text("q quits", style="dim"))


@contextlib.contextmanager
def quit_key(stdin: TextIO) -> Iterator[asyncio.Event]:
    """An event set when `q` (or Q) is typed on the terminal: the terminal is in cbreak
    mode meanwhile (keys arrive at once, unechoed) and restored after."""
    quit_typed = asyncio.Event()
    if not stdin.isatty():
        yield quit_typed
        return
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def typed() -> None:
        if os.read(fd, 32).lower().find(b"q") != -1:
            quit_typed.set()

    tty.setcbreak(fd)
    loop.add_reader(fd, typed)
    try:
        yield quit_typed
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def run_top(config: Config, once: bool, interval: float,
                  out: TextIO = sys.stdout) -> int:
    """Refresh per-plugin rates and queue depths every `interval` seconds (rich Live on
    a terminal, plain tables otherwise); `once`: one snapshot with rates over one
    interval, then exit."""
    base, auth = status_endpoint(config)
    tty = out.isatty() and not once
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(headers=auth, timeout=timeout) as s:
        prev = await fetch_stats(s, base)
        await asyncio.sleep(interval)
        cur = await fetch_stats(s, base)
        if once:
            out.write(top_header(prev, cur) + "\n" + plain_table(top_rows(prev, cur)) + "\n")
            out.flush()
            return 0
        if not tty:
            while True:
                out.write(top_header(prev, cur) + "\n" + plain_table(top_rows(prev, cur))
                          + "\n\n")
                out.flush()
                await asyncio.sleep(interval)
                prev, cur = cur, await fetch_stats(s, base)
        from rich.console import Console
        from rich.live import Live
        with quit_key(sys.stdin) as quit_typed, Live(
                _rich_view(prev, cur), console=Console(file=out), auto_refresh=False,
                screen=False) as live:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(quit_typed.wait(), interval)
                if quit_typed.is_set():
                    return 0
                prev, cur = cur, await fetch_stats(s, base)
                live.update(_rich_view(prev, cur), refresh=True)
