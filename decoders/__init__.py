"""Decoders: one module per log family."""

import hekapy.collector  # noqa: F401  (applies HEKAPY_PURE first)
