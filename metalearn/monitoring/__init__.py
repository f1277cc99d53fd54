"""Monitoring of served models: data drift (recent inputs against the training reference, per feature and
as a meta-feature distance), concept drift (labelled feedback against the training metric) and the
human drift report. Pure functions over DataFrames; the registry stores what they compute.

May import: :mod:`metalearn.search`, :mod:`metalearn.metalearning`, :mod:`metalearn.pipelines`,
:mod:`metalearn.kb`, :mod:`metalearn.runtime`, :mod:`metalearn.data`.
"""
