"""Splitters: cut a byte stream into records, one module per Heka type."""
