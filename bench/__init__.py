"""Benchmarks: scripts printing numbers (not timed tests)."""
