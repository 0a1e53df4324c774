"""Fixtures for the tests and the benchmarks, never shipped: pyproject.toml's package list
leaves this package out of the distribution, so nothing in contracts/, service/, trainer/,
serving/ or clients/ may import it."""
