"""Benchmarks live apart from the tests: run them with ``pytest bench/ --benchmark-only``."""
