"""Archway benchmarks: figures, never pass/fail. Run ``python -m bench.run`` (see README.md)."""
