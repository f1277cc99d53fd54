"""Benchmarks of warm-start strategies on held-out datasets: cells, their result store, the runner
and the report (tables and plots). Resumable.

- ``settings`` — the strategies and :class:`~metalearn.benchmark.settings.BenchmarkSettings`;
- ``datasets`` — sources, the fixed train/test split, meta-features, leakage exclusions;
- ``cells`` — one search (or FLAML run) per (dataset, strategy, seed) and its test score;
- ``store`` — the results file (DuckDB + parquet) and its frames;
- ``runner`` — :func:`~metalearn.benchmark.runner.run_benchmark` (resume) and ``recompute_report``;
- ``report`` — the summary metrics, report.md and plots.

May import: :mod:`metalearn.offline` and the layers below it.
"""
