"""Wake-ups when log files change: inotify on the directories that hold the streams'
files (asyncinotify), with polling as the fallback.

Directory watches, not file watches: one watch covers every file of a directory, reports
writes, creations, renames and deletions by name, and does not have to be moved when a
file is rotated. A write to a file that was deleted or renamed out of the watched
directories is not reported; the plugin's safety poll finds it.

When inotify is unavailable (no asyncinotify, a non-Linux system, the per-user instance
or watch limit reached, a file system without events such as NFS), `available` is
False and the plugin polls every stream at `check_data_interval`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any


class Watcher:
    """Calls `on_change(path, names_changed)` for every event under a watched directory
    (`names_changed`: a file appeared, disappeared or was renamed), and
    `on_overflow()` when the kernel dropped events (then everything must be checked)."""

    def __init__(self, on_change: Callable[[str, bool], None],
                 on_overflow: Callable[[], None], log: logging.Logger | None = None) -> None:
        self.on_change = on_change
        self.on_overflow = on_overflow
        self.log = log or logging.getLogger("hekapy.logstreamer")
        self.available = False
        self._ino: Any = None
        self._mask: Any = None
        self._names_mask: Any = None
        self._overflow: Any = None
        self._watches: dict[str, Any] = {}
        self._task: asyncio.Task | None = None
        self._failed_dirs: set[str] = set()

    def start(self) -> bool:
        """Set up inotify; False (and polling) when it is not available."""
        try:
            from asyncinotify import Inotify, Mask
        except ImportError:
            self.log.info("asyncinotify is not installed; polling for changes")
            return False
        try:
            # A large cache: one read() takes many events (the default is 10).
            self._ino = Inotify(cache_size=256)
        except OSError as e:
            self.log.warning("inotify unavailable (%s); polling for changes", e)
            return False
        self._names_mask = (Mask.CREATE | Mask.MOVED_TO | Mask.MOVED_FROM | Mask.DELETE
                            | Mask.DELETE_SELF | Mask.MOVE_SELF)
        self._mask = self._names_mask | Mask.MODIFY | Mask.CLOSE_WRITE | Mask.ONLYDIR
        self._overflow = Mask.Q_OVERFLOW
        self.available = True
        self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                            name="logstreamer-inotify")
        return True

    def watch(self, directories: set[str]) -> None:
        """Watch exactly `directories` (adds the new ones, drops the gone ones)."""
        if not self.available:
            return
        for d in list(self._watches):
            if d not in directories:
                w = self._watches.pop(d)
                with contextlib.suppress(OSError, ValueError):
                    self._ino.rm_watch(w)
        for d in directories:
            if d in self._watches:
                continue
            try:
                self._watches[d] = self._ino.add_watch(d, self._mask)
            except OSError as e:
                # Out of watches (fs.inotify.max_user_watches) or gone: the poll covers it.
                if d not in self._failed_dirs:
                    self._failed_dirs.add(d)
                    self.log.warning("cannot watch %s (%s); polling it", d, e)

    @property
    def watched(self) -> int:
        return len(self._watches)

    async def _loop(self) -> None:
        names_mask = self._names_mask
        overflow = self._overflow
        try:
            async for ev in self._ino:
                if ev.mask & overflow:
                    self.on_overflow()
                    continue
                path = ev.path
                if path is None:
                    continue
                self.on_change(str(path), bool(ev.mask & names_mask))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a broken watcher must not stop the input: poll instead
            self.log.error("inotify failed (%s: %s); polling for changes", type(e).__name__, e)
            self.available = False
            self.on_overflow()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._ino is not None:
            with contextlib.suppress(Exception):
                self._ino.close()
            self._ino = None
        self._watches.clear()
        self.available = False
