"""LogstreamerInput, one concern per module: discovery (walk, match, order), journal
(Heka's position files), reader (one stream's open file, resume, rotation), watcher
(inotify wake-ups) and plugin in logstreamer_input.py (options, scheduling, splitting, delivery)."""

from hekapy.collector.inputs.logstreamer.logstreamer_input import LogstreamerInput

__all__ = ["LogstreamerInput"]
