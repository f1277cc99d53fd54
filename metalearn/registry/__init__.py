"""The model registry: named models with immutable versions (a search's final model: a pipeline or an
ensemble), aliases (``live``, ``candidate``) with promote and rollback, safe artifacts (skops) checked
against their hash, input validation against the training schema, compression (ONNX, pruned
ensembles), prediction logging and retraining.

May import: :mod:`metalearn.monitoring`, :mod:`metalearn.search`, :mod:`metalearn.metalearning`,
:mod:`metalearn.pipelines`, :mod:`metalearn.kb`, :mod:`metalearn.runtime`, :mod:`metalearn.data`.
"""

#: what registering a search's final model means, said by ``optimize --register`` and ``POST /searches``'s
#: ``register`` field (a job option beside the data, not a search parameter)
REGISTER_HELP = (
    "Register the final model (refit; the ensemble when it wins) as a new version of this model name in the "
    "KB's registry when the search finishes; it is not promoted (`metalearn models promote`)."
)
