"""Benchmarks: each measures a figure against a baseline taken in the same run."""
