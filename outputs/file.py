"""FileOutput: encoded messages appended to a local file (docs/compatibility.md, "Outputs")."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import BinaryIO

from hekapy.collector.engine.contexts import OutputContext
from hekapy.collector.engine.framing import default_use_framing, frame_record
from hekapy.collector.engine.plugin import Option, OptionError, Output, register

_ROTATION_HOURS = (0, 1, 4, 12, 24)


def _octal(value: str) -> int:
    try:
        return int(value, 8)
    except ValueError:
        raise OptionError(f"expected an octal permission like \"644\", got {value!r}") from None


@register
class FileOutput(Output):
    """Appends each encoded message to `path`; acknowledges after the data reached the
    file (and the disk, with `fsync = true`).

    Keys: path (required; strftime patterns allowed when rotating), perm ("644"),
    folder_perm ("700"), flush_interval (1000 ms; 0 = off), flush_count (1),
    flush_operator ("AND" | "OR"), rotation_interval (0, 1, 4, 12 or 24 hours, aligned
    to midnight UTC), encoder (required), use_framing (Heka stream frames around each
    record; by default only with the ProtobufEncoder), fsync (false; hekapy).

        [decoded_file]
        type = "FileOutput"
        message_matcher = "Type == 'logfile'"
        path = "/var/log/hekapy/decoded.json"
        encoder = "JsonEncoder"
        flush_interval = 1000
        flush_count = 100
        flush_operator = "OR"
    """

    options = {
        "path": Option("str", required=True),
        "perm": Option("str", "644", check=_octal),
        "folder_perm": Option("str", "700", check=_octal),
        "flush_interval": Option("duration", 1000, unit=1e-3, doc="ms"),
        "flush_count": Option("int", 1),
        "flush_operator": Option("str", "AND", check=str.upper,
                                 choices=("AND", "OR", "and", "or")),
        "rotation_interval": Option("int", 0, choices=_ROTATION_HOURS),
        "fsync": Option("bool", False, doc="fsync after each flush"),
    }

    def __init__(self, name: str, cfg: SimpleNamespace) -> None:
        super().__init__(name, cfg)
        if not cfg.encoder:
            raise OptionError("FileOutput needs an encoder", key="encoder")
        self._file: BinaryIO | None = None
        self._file_path = ""
        self._period_end = 0.0

    def _current_path(self, now: float) -> str:
        hours = self.cfg.rotation_interval
        if not hours:
            return self.cfg.path
        period = hours * 3600
        start = now - now % period
        self._period_end = start + period
        return time.strftime(self.cfg.path, time.gmtime(start))

    def _open(self, now: float) -> BinaryIO:
        path = self._current_path(now)
        if self._file is not None and path == self._file_path:
            return self._file
        self._close()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True, mode=self.cfg.folder_perm)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.cfg.perm)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._file_path = path
        return self._file

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    async def run(self, ctx: OutputContext) -> None:
        cfg = self.cfg
        framing = cfg.use_framing
        if framing is None:  # Heka: framed when the encoder is the ProtobufEncoder
            framing = default_use_framing(ctx.encoder)
        limit = ctx.hekad.max_message_size
        wrap = (lambda data: frame_record(data, limit)) if framing else None
        try:
            while True:
                batches = await ctx.collect(cfg.flush_count, cfg.flush_interval,
                                            require_both=cfg.flush_operator == "AND")
                if batches is None:
                    return
                chunks = []
                n = 0
                for b in batches:
                    chunks += ctx.encode_messages(b.messages, wrap)
                    n += len(b)
                now = time.time()
                f = self._open(now)
                f.write(b"".join(chunks))
                if cfg.fsync:
                    os.fsync(f.fileno())
                if cfg.rotation_interval and now >= self._period_end:
                    self._close()
                ctx.stats.messages_out += n
                for b in batches:
                    b.done()
        finally:
            self._close()
