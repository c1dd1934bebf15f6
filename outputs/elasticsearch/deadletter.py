"""The dead-letter file: documents Elasticsearch rejected for good, one JSON line each,
with the server's reason, so an operator can fix the mapping and replay them
(`hekapy replay` or a plain `curl --data-binary` of the action and source lines).

Each line: {"time": <unix seconds>, "output": <plugin>, "status": <item status>,
"error": <server's error object>, "action": <bulk action line>, "source": <document>}.
A document that is not valid JSON is kept as a string. Writes are flushed and fsynced
before the rejected messages are acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson


class DeadLetterFile:
    def __init__(self, path: str | os.PathLike, output: str) -> None:
        self.path = Path(path)
        self.output = output
        self.written = 0

    @staticmethod
    def _split(item: bytes) -> tuple[Any, Any]:
        action, _, source = item.rstrip(b"\n").partition(b"\n")
        parsed = []
        for part in (action, source):
            try:
                parsed.append(orjson.loads(part))
            except orjson.JSONDecodeError:
                parsed.append(part.decode("utf-8", "replace"))
        return parsed[0], parsed[1]

    def _write(self, records: list[tuple[bytes, int, Any]]) -> None:
        now = time.time()
        lines = []
        for item, status, error in records:
            action, source = self._split(item)
            lines.append(orjson.dumps({"time": now, "output": self.output, "status": status,
                                       "error": error, "action": action, "source": source}))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b"\n".join(lines) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self.written += len(records)

    async def write(self, records: list[tuple[bytes, int, Any]]) -> None:
        """Append (bulk item bytes, status, error) records durably."""
        if records:
            await asyncio.to_thread(self._write, records)
