"""Benchmarks: every number is reported against a baseline measured in the same run."""
