"""Helpers the tests share, and the benchmarks reuse (benchmarks import these; tests never import benchmarks)."""
