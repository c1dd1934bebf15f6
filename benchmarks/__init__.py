"""Benchmark harness: corpus generator, scenarios, peers, results."""
