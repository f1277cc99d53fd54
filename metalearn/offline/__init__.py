"""Offline knowledge-base building: the corpus build on Dask, and the OpenML run importer.

- ``build`` — meta-features, a short SMAC exploration per dataset, a common candidate set on every
  dataset (a dense performance matrix); resumable;
- ``openml_import`` — past OpenML runs translated into the search spaces.

May import: :mod:`metalearn.search` and the layers below it.
"""
