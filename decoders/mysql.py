"""Placeholder: filled by the decoder work of issue 4."""
