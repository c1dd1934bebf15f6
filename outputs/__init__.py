"""Outputs and their encoders; each output owns its batching and retry policy."""
