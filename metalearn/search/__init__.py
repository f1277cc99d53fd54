"""The search on one dataset: evaluation of a configuration, the warm-started SMAC loop, the Python API.

- ``evaluation`` — K-fold / holdout evaluation of a configuration with every metric of its kind, each
  trial in a sandboxed child process with time and memory limits;
- ``loop`` — :class:`SearchSettings` and the ask/tell loop around SMAC3 (warm start, resume);
- ``automl`` — :func:`optimize` and the scikit-learn estimator.

May import: :mod:`metalearn.metalearning` and the layers below it.
"""
