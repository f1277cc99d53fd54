"""Benchmarks of warm-start strategies on held-out datasets: cells, their result store, the runner
and the report (tables and plots). Resumable.

May import: :mod:`metalearn.offline` and the layers below it.
"""
