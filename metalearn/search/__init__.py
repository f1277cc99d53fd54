"""The search on one dataset: evaluation of a configuration, the warm-started SMAC loop, the Python API.

- ``evaluation`` — K-fold / holdout evaluation of a configuration with every metric of its kind, each
  trial in a sandboxed child process with time and memory limits;
- ``settings`` — :class:`SearchSettings`, every search parameter declared once (help, CLI flag, bounds,
  which interfaces expose it): the CLI, the HTTP API and the estimator derive theirs from it;
- ``loop`` — the ask/tell loop around SMAC3 (warm start, resume);
- ``automl`` — :func:`optimize` and the scikit-learn estimator.

May import: :mod:`metalearn.metalearning` and the layers below it.
"""
