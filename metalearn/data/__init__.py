"""The data layer (bottom): what a task and a dataset are, and everything read from outside.

- ``task`` — :class:`TaskKind` (the six kinds; add a kind here first), :class:`Task`, default metrics;
- ``kinds`` — inferring the kind of each target; ``validation`` — a frame checked and prepared for a task;
- ``dataset`` — :class:`Dataset`; ``prediction`` — what a model returns;
- ``metrics`` — every metric of every kind, normalised regret; ``splits`` — CV / holdout plans;
- ``loading`` — files, ``sklearn:``, ``corpus:`` and OpenML specs; ``openml_io`` — openml-python access;
  ``suites`` — OpenML-CC18 and AutoML-Benchmark definitions;
- ``errors`` — the exception tree rooted in :class:`MetaLearnError` (no exit codes or HTTP statuses:
  the interfaces map them); ``numbers`` — JSON-safe numbers.

May import: nothing of metalearn (third-party libraries only).
"""
