"""Benchmarks: what kimi-agent itself costs, against a hand-written loop and peer frameworks.

Run everything with `python -m bench` (see bench/README.md).
"""
