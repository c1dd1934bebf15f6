"""hekapy runtime: message model, config, matcher, router, queues, acks, inputs, CLI."""

# First, so that HEKAPY_PURE=1 is applied before any hot module is imported.
from hekapy.collector import compiled  # noqa: F401

__version__ = "0.1.0"
