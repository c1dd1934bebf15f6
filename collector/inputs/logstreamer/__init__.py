"""LogstreamerInput, one concern per module: discovery (walk, match, order), journal
(Heka's position files), reader (one stream's open file, resume, rotation), watcher
(inotify wake-ups) and plugin (options, scheduling, splitting, delivery)."""

from .plugin import LogstreamerInput

__all__ = ["LogstreamerInput"]
