"""Filters: log-derived metrics and stat accumulation."""
