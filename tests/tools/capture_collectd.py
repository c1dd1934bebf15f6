"""How the collectd input of tests/data/lma/collectd.json was made (not run by the
tests): Debian's collectd, started by tests/services.py's `collectd()` with write_http
in JSON and StoreRates as LMA configured it, posts its `cpu` plugin's values to a small
HTTP listener; the first body in which every value is a number (collectd sends no rate
before its second reading of a counter) is written out as JSON.

Run from the repository root: `.venv/bin/python -m tests.tools.capture_collectd OUT.json`.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.services import collectd, stop_process

WAIT_SECONDS = 60.0


class BodyCollector(BaseHTTPRequestHandler):
    """Keeps the first JSON array of plain numbers collectd posts, then signals."""

    captured: list | None = None
    done = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()
        numbers = all(isinstance(v, (int, float)) and math.isfinite(v)
                      for sample in body for v in sample["values"])
        if numbers and BodyCollector.captured is None:
            BodyCollector.captured = body
            BodyCollector.done.set()

    def log_message(self, format: str, *args: object) -> None:
        pass


async def capture(directory: Path) -> list:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BodyCollector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    proc = await collectd(directory, url, interval=1.0, plugins=("cpu",))
    try:
        if not await asyncio.to_thread(BodyCollector.done.wait, WAIT_SECONDS):
            raise SystemExit(f"collectd posted no complete body in {WAIT_SECONDS:.0f} s "
                             f"(see {directory}/collectd.log)")
    finally:
        await stop_process(proc)
        server.shutdown()
    assert BodyCollector.captured is not None
    return BodyCollector.captured


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.tools.capture_collectd OUT.json")
    with tempfile.TemporaryDirectory() as tmp:
        body = asyncio.run(capture(Path(tmp)))
    Path(sys.argv[1]).write_text(json.dumps(body, indent=1) + "\n")


if __name__ == "__main__":
    main()
