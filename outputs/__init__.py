"""Outputs and their encoders; each output owns its batching and retry policy."""

import hekapy.collector  # noqa: F401  (applies HEKAPY_PURE first)
