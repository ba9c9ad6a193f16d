"""Benchmarks: each prints its figure and the raw ceiling measured in the same run."""
