"""Benchmarks: each module is one command, prints its figures and saves them as JSON.

Run one with ``bash scripts/bench.sh NAME [ARGS]`` (set-up included) or
``.venv/bin/python -m benchmarks.NAME``; ``docs/benchmarks.md`` has the method and results.
"""
