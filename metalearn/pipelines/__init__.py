"""What a configuration means: the search spaces and the models they build.

- ``spaces`` — one named, versioned ConfigSpace per task kind (``spaces.by_kind``); model families and
  preprocessing steps are declared in ``spaces.components`` (add a model family there);
- ``models`` — the scikit-learn estimators the spaces build: preprocessing, multi-output strategies,
  the shared-trunk multi-task network, fit-time adaptation to data-subset budgets.

May import: :mod:`metalearn.kb`, :mod:`metalearn.runtime`, :mod:`metalearn.data`.
"""
