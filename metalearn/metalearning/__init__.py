"""Meta-learning: from a dataset's meta-features and the KB to starting configurations.

- ``metafeatures`` — the fixed, versioned meta-feature vector of a dataset;
- ``strategies`` — the recommenders (pure functions over the regret matrix and meta-features; add a
  recommender there and register it in ``STRATEGIES``), and ``recommend``, their entry point;
- ``matrix`` — the performance and normalised regret matrices, prepared once as a ``RegretMatrix``;
- ``distances`` — meta-feature scaling and the distances of a query to the KB datasets;
- ``context`` — one query against a ``RegretMatrix`` (usable datasets and configurations, cached values);
- ``explain`` — what a recommender returns (``Recommendation``, ``Source``) and its explanation helpers;
- ``loo`` — leave-one-dataset-out evaluation of the strategies;
- ``advisor`` — the strategies over a live KB, for the Python API and the service alike.

May import: :mod:`metalearn.pipelines`, :mod:`metalearn.kb`, :mod:`metalearn.runtime`, :mod:`metalearn.data`.
"""
