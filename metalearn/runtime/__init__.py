"""How long work runs: progress displays and executors (inline, process pool, Dask).

Used by the offline KB build and the benchmark (and the CLI's displays).

May import: :mod:`metalearn.data`.
"""
