"""Decoders: one module per log family."""
