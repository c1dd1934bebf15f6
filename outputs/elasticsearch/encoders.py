"""Placeholder: Elasticsearch output (issue 5)."""
