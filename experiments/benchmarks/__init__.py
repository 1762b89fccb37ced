"""Benchmarks: scripts that time or count pdekit against classical baselines and print tables."""
