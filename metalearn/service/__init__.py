"""The HTTP service (FastAPI): one router per resource under ``routers/`` (add an endpoint there),
dependencies in ``deps``, request/response models in ``schemas``, settings, limits, metrics, and the
mapping of the product's errors to HTTP statuses.

May import: :mod:`metalearn.benchmark` and every layer below it; never :mod:`metalearn.cli`.
"""
