"""Live views of a running collector: the tap registry the router offers batches to, and
the client side of `hekapy tap` and `hekapy top`.

Server side. `TapRegistry` hangs off `Router.tap` only while at least one viewer is
attached; with none, the router's whole cost is one attribute check per batch. Each
viewer (`TapViewer`) has a small bounded queue of message references. `offer()` never
waits: it runs the viewer's matcher (and, for `plugin=NAME`, that plugin's own
message_matcher, i.e. what the router delivers to its queue) and appends what fits;
what does not fit is dropped *for that viewer only* and counted. While a viewer's queue
is full its matcher is not even run: those messages are counted as unexamined. The
status server (collector/app/status.py) streams each viewer's queue as NDJSON on
`GET /tap?match=EXPR&plugin=NAME&buffer=N`:

    {"tap": {"match": "...", "plugin": "...", "buffer": 1000}}     first line: attached
    {"message": {...Heka JSON, as JsonEncoder writes it...}}      one per message
    {"dropped": 12, "unexamined": 3400}                           totals, when they grow
    {"end": "the collector is stopping"}                          last line

Client side. `hekapy tap -c CONFIG [--match EXPR] [--plugin NAME] [--format text|json]
[--head N] [--buffer N]` and `hekapy top -c CONFIG [--once] [--interval S]` find the
status server from the config's [hekad] keys (the same file the collector runs):

    [hekad]
    status_address = "127.0.0.1:4352"
    status_username = "ops"          # optional basic auth (both or neither)
    status_password = "%ENV[HEKAPY_STATUS_PASSWORD]"
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:
    from hekapy.collector.engine.config import Config
    from hekapy.collector.engine.message import Message
    from hekapy.collector.engine.router import Route, Router

DEFAULT_BUFFER = 1000
MAX_BUFFER = 100_000


class TapViewer:
    """One attached viewer: its matcher, the plugin it watches and its bounded queue."""

    def __init__(self, predicate: Callable[[Message], bool], route: Route | None = None,
                 capacity: int = DEFAULT_BUFFER) -> None:
        always = getattr(predicate, "always", None)
        self.nothing = always is False
        self.predicate = None if always else predicate
        self.route = route
        self.capacity = max(1, capacity)
        self.queue: deque[Message] = deque()
        self.dropped = 0  # matching messages that did not fit
        self.unexamined = 0  # messages that passed while the queue was full
        self.delivered = 0
        self.wake = asyncio.Event()

    def offer(self, msgs: list[Message], skip: str | None) -> None:
        room = self.capacity - len(self.queue)
        if room <= 0:
            self.unexamined += len(msgs)
            return
        if self.nothing:
            return
        r = self.route
        if r is not None:
            if r.name == skip or r.always is False:
                return
            if not r.always:
                rp = r.predicate
                msgs = [m for m in msgs if rp(m)]
        pred = self.predicate
        matched = msgs if pred is None else [m for m in msgs if pred(m)]
        if not matched:
            return
        if len(matched) > room:
            self.dropped += len(matched) - room
            matched = matched[:room]
        self.queue.extend(matched)
        self.wake.set()

    def take(self, n: int) -> list[Message]:
        q = self.queue
        out = [q.popleft() for _ in range(min(n, len(q)))]
        self.delivered += len(out)
        return out


class TapRegistry:
    """The viewers of one router; sets `router.tap` only while there are any."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.viewers: list[TapViewer] = []
        self.dropped_total = 0  # of viewers already gone, for /metrics
        self.offer_errors = 0

    def attach(self, viewer: TapViewer) -> None:
        self.viewers.append(viewer)
        self.router.tap = self

    def detach(self, viewer: TapViewer) -> None:
        if viewer in self.viewers:
            self.viewers.remove(viewer)
            self.dropped_total += viewer.dropped + viewer.unexamined
        if not self.viewers:
            self.router.tap = None

    def dropped(self) -> int:
        """Messages every viewer so far missed (dropped or unexamined)."""
        return self.dropped_total + sum(v.dropped + v.unexamined for v in self.viewers)

    def offer(self, msgs: list[Message], skip: str | None = None) -> None:
        """Called by Router.route for every batch while viewers are attached. Never
        waits and never raises into the pipeline."""
        for v in self.viewers:
            try:
                v.offer(msgs, skip)
            except Exception:
                self.offer_errors += 1


# --- client side ----------------------------------------------------------------------

class StatusClientError(Exception):
    """The status server is off, unreachable or refused us."""


def status_endpoint(config: Config) -> tuple[str, dict[str, str]]:
    """(base URL, request headers: basic auth if set) of the status server `config`
    runs."""
    from hekapy.collector.engine.config import split_host_port

    h = config.hekad
    if not h.status_address:
        raise StatusClientError("the status server is off in this config "
                                "([hekad] status_address = \"\")")
    host, port = split_host_port(h.status_address)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    headers = ({"Authorization": basic_auth_header(h.status_username,
                                                   h.status_password).decode()}
               if h.status_username else {})
    return f"http://{host}:{port}", headers


def format_message_text(doc: dict) -> str:
    """One line for a message's JSON: time, host, logger, type, severity, payload,
    fields."""
    ts = doc.get("Timestamp", 0)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // 1_000_000_000))
    when += f".{ts % 1_000_000_000 // 1000:06d}Z"
    payload = str(doc.get("Payload", "")).rstrip("\n").replace("\n", "\\n")
    fields = " ".join(
        f"{f['name']}={f['value'][0] if len(f['value']) == 1 else f['value']}"
        for f in doc.get("Fields", ()))
    line = (f"{when} {doc.get('Hostname', '')} {doc.get('Logger', '')} "
            f"{doc.get('Type', '')} sev={doc.get('Severity', '')} | {payload}")
    return f"{line} | {fields}" if fields else line


async def run_tap(config: Config, match: str, plugin: str, fmt: str, head: int,
                  buffer: int, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Stream the collector's tap to `out` until it ends, `head` messages were shown, or
    the user interrupts. Returns the exit status."""
    import aiohttp

    base, auth = status_endpoint(config)
    params = {"match": match, "buffer": str(buffer)}
    if plugin:
        params["plugin"] = plugin
    shown = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(headers=auth, timeout=timeout) as s, \
                s.get(base + "/tap", params=params) as r:
            if r.status != 200:
                text = (await r.text()).strip()
                print(f"error: {base}/tap: {r.status} {text}", file=err)
                return 1
            pending = b""
            async for chunk in r.content.iter_any():
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line:
                        continue
                    doc = orjson.loads(line)
                    if "message" in doc:
                        m = doc["message"]
                        out.write((orjson.dumps(m).decode() if fmt == "json"
                                   else format_message_text(m)) + "\n")
                        shown += 1
                        if head and shown >= head:
                            out.flush()
                            return 0
                    elif "tap" in doc:
                        t = doc["tap"]
                        print(f"tapping {base} match={t['match']!r}"
                              + (f" plugin={t['plugin']!r}" if t.get("plugin") else "")
                              + f" (queue {t['buffer']}); Ctrl-C stops", file=err,
                              flush=True)
                    elif "dropped" in doc:
                        print(f"tap: {doc['dropped']} matching message(s) dropped and "
                              f"{doc.get('unexamined', 0)} not examined: this viewer's "
                              "queue was full (the pipeline never waits for a viewer)",
                              file=err, flush=True)
                    elif "end" in doc:
                        print(f"tap ended: {doc['end']}", file=err)
                        out.flush()
                        return 0
                out.flush()
    except aiohttp.ClientError as e:
        print(f"error: cannot reach the status server at {base}: {e}", file=err)
        return 1
    print("tap ended: the connection closed", file=err)
    return 0


async def fetch_stats(session: Any, base: str) -> dict:
    """One /stats snapshot."""
    import aiohttp
    try:
        async with session.get(base + "/stats") as r:
            if r.status != 200:
                raise StatusClientError(f"{base}/stats: {r.status} {(await r.text()).strip()}")
            return orjson.loads(await r.read())
    except aiohttp.ClientError as e:
        raise StatusClientError(f"cannot reach the status server at {base}: {e}") from None


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
    rows = []
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
    return Group(Text(top_header(prev, cur)), t)


async def run_top(config: Config, once: bool, interval: float,
                  out: TextIO = sys.stdout) -> int:
    """Refresh per-plugin rates and queue depths every `interval` seconds (rich Live on
    a terminal, plain tables otherwise); `once`: one snapshot with rates over one
    interval, then exit."""
    import aiohttp

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
        with Live(_rich_view(prev, cur), console=Console(file=out), auto_refresh=False,
                  screen=False) as live:
            while True:
                await asyncio.sleep(interval)
                prev, cur = cur, await fetch_stats(s, base)
                live.update(_rich_view(prev, cur), refresh=True)


def basic_auth_header(username: str, password: str) -> bytes:
    """The Authorization header value a client sends for these credentials."""
    return b"Basic " + base64.b64encode(f"{username}:{password}".encode())


def run_client(coro: Any) -> int:
    """Run a client coroutine; Ctrl-C exits quietly with 130."""
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(coro)
    return 130
