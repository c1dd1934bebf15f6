"""`hekapy tap`: print the messages flowing through a running collector.

`hekapy tap -c CONFIG [--match EXPR] [--plugin NAME] [--format text|json] [--head N]
[--buffer N]` reads the NDJSON stream of the status server's `GET /tap`
(collector/app/status/server.py describes its lines). The collector drops what this
viewer cannot keep up with and says how much; this side only reports it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import aiohttp
import orjson

from hekapy.collector.app.status.client import status_endpoint
from hekapy.collector.engine.config import Config


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
