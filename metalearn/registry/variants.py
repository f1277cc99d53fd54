"""Compressed variants of a registered version, registered as versions of their own (never promoted):
``onnx`` (the estimators served through onnxruntime, see :mod:`metalearn.registry.compress`),
``prune`` (an ensemble with fewer members) and ``distill`` (one LightGBM or MLP pipeline fit to imitate the
version on its training sample and rows augmented from it, see :mod:`metalearn.registry.distill`). Each is
measured against the original on the same rows — artifact size, single-row p50/p99 latency, rows/s on a 10k-row batch, validation score — so the user
chooses knowingly.

The rows are a validation set the user gives, else the sample of the training data kept with the version
(then the score is in-sample: it shows what the variant loses against the original, not how either
generalises). Pruning scores members on the validation rows given; without them it keeps the members of largest
ensemble weight (:func:`~metalearn.registry.compress.prune_by_weights`): on the training rows the members that
memorise them would look best.

A variant is not cross-validated: its ``cv_score`` is that of the version its chain of variants starts from, and it
says so (``cv_basis`` ``"inherited"``; ``compression.cv_inherited``: that version and how its score was estimated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from metalearn.data.dataset import Dataset
from metalearn.data.errors import CompressionError, InputError, NotFoundError
from metalearn.kb.model_store import ModelVersionRecord
from metalearn.pipelines.signature import Signature
from metalearn.registry.compress import compare, prune_by_weights, prune_ensemble, to_onnx, variant_report
from metalearn.registry.distill import augmented_rows, distill
from metalearn.registry.registry import ModelRegistry, check_name

#: compression method -> the variant name its versions carry
METHODS: dict[str, str] = {"onnx": "onnx", "prune": "pruned", "distill": "distilled"}
#: the variants not compressed again (a distilled pipeline may be: to ONNX, say)
FINAL_VARIANTS = (METHODS["onnx"], METHODS["prune"])
#: the largest relative loss of score (on the rows measured) a distilled variant is registered with
DISTILL_TOLERANCE = 0.02
#: a distilled variant is registered only when it is at least this many times smaller or faster (one row, p50)
#: than the original: a student of a small model can be larger and slower than it (uci_skillcraft's 0.12 MB
#: linear model got a 1.0 MB LightGBM)
DISTILL_MIN_GAIN = 1.2
#: rows the ONNX variant is checked on against the original
CHECK_ROWS = 1000
#: the ``cv_basis`` of a variant: its ``cv_score`` is the one of the version ``compression.cv_inherited`` names
INHERITED = "inherited"


def cv_origin(registry: ModelRegistry, record: ModelVersionRecord) -> dict[str, Any]:
    """The version whose cross-validation score ``record`` carries: ``record`` itself, or, for a compressed variant,
    the first version up its chain of parents that is not one (``{"version", "basis"}``: its number and its
    ``cv_basis``). A parent deleted is still read; a chain whose start is unknown ends at the last version known."""
    compressed = set(METHODS.values())
    seen = {record.version}
    while record.variant in compressed and record.parent_version is not None and record.parent_version not in seen:
        try:
            record = registry.store.get_version(record.name, record.parent_version)
        except NotFoundError:
            break
        seen.add(record.version)
    return {"version": record.version, "basis": record.info.get("cv_basis")}


def check_validation_labels(signature: Signature, y: pd.DataFrame, what: str = "the validation data") -> pd.DataFrame:
    """The labels ``y`` of validation rows in the form the model was trained on (:meth:`Signature.labels_as_trained`).
    :class:`InputError` for a label the model does not know (:meth:`Signature.labels_problem`), or a class target
    whose rows hold one class (a score needs at least two)."""
    labels = signature.labels_as_trained(y)
    if (problem := signature.labels_problem(labels)) is not None:
        raise InputError(f"{what}: {problem}")
    for spec in signature.targets:
        if spec.classes is None or spec.name not in labels.columns:
            continue
        present = pd.unique(labels[spec.name].dropna())
        if len(present) < 2:
            held = f"one class of {spec.name!r} ({present[0]})" if len(present) else f"no label of {spec.name!r}"
            both = "both classes" if len(spec.classes) == 2 else "at least two classes"
            raise InputError(f"{what} holds {held}: a score needs rows of {both}; give validation rows of {both}")
    return labels


def validation_data(
    registry: ModelRegistry, record: ModelVersionRecord, frame: pd.DataFrame, targets: Sequence[str] | None = None,
    *, name: str = "the validation data", origin: str | None = None,
) -> Dataset:
    """Labelled rows to measure the variants of ``record`` on (:func:`compress`'s ``validation``): ``frame`` — the
    features and the labels of ``targets`` (default: the version's), read once — as a dataset of the version's kind
    (``name`` and ``origin`` as its reader calls it). The labels are checked against the model's first
    (:func:`check_validation_labels`): a class the model does not know is named as such, not as data of another
    kind; a missing target column is :func:`~metalearn.data.validation.prepare_frame`'s error."""
    from metalearn.data.validation import prepare_frame

    task = registry.task(record)
    names = [str(t) for t in targets] if targets else [str(t) for t in task.targets]
    if all(t in frame.columns for t in names):
        check_validation_labels(registry.signature(record), frame[names])
    return prepare_frame(frame, names, kind=task.kind, name=name, origin=origin)


def compressible_version(registry: ModelRegistry, name: str, version: int | None = None) -> ModelVersionRecord:
    """The version to compress: ``version``, else the live one, else the latest (:class:`NotFoundError`
    for an unknown model or a deleted version); :class:`CompressionError` when it is an ONNX or pruned
    variant (:data:`FINAL_VARIANTS`)."""
    base = registry.working_version(name, version)
    if base.variant in FINAL_VARIANTS:
        live = {v.version for v in registry.store.list_versions(name)}
        original = (f"compress its original, version {base.parent_version}" if base.parent_version in live
                    else f"its original, version {base.parent_version}, was deleted: compress another version")
        raise CompressionError(
            f"model {name!r} version {base.version} is already a compressed ({base.variant}) variant: {original}"
        )
    return base


def compress(
    registry: ModelRegistry,
    name: str,
    version: int | None = None,
    *,
    methods: Sequence[str] | None = None,
    validation: Dataset | None = None,
    batch_rows: int = 10_000,
    on_status: Callable[[str], None] | None = None,
    distill_tolerance: float = DISTILL_TOLERANCE,
    distill_min_gain: float = DISTILL_MIN_GAIN,
) -> dict[str, Any]:
    """Make each compressed variant of ``name`` (``version``, default the live one, else the latest;
    ``methods``, default every one of :data:`METHODS`), register it and report it beside the original. A
    method that does not apply (a single pipeline cannot be pruned; an estimator without an ONNX converter; a
    distilled student whose score on the rows measured is more than ``distill_tolerance`` (relative) worse
    than the original's, or that is less than ``distill_min_gain`` times smaller or faster than it) is reported
    with its reason, and registers nothing."""
    check_name(name)
    methods = list(METHODS) if methods is None else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"unknown compression method(s) {unknown or list(methods)}: choose from {', '.join(METHODS)}")
    status = on_status or (lambda _t: None)
    base = compressible_version(registry, name, version)
    task = registry.task(base)
    signature = registry.signature(base)
    if validation is not None:
        X_val, _ = signature.validate(validation.X, what="the validation data")
        if list(validation.y.columns) != list(task.targets):
            raise InputError(f"the validation data must have the target(s) {list(task.targets)}")
        y_val = check_validation_labels(signature, validation.y)
        rows_from = f"the validation data ({len(X_val)} rows)"

    # the training sample kept with the version: a variant is registered with it (its reference for drift checks
    # and its in-sample metrics, as the version's), and a student learns from it
    X_ref, _ = signature.validate(registry.reference(base), what="the reference sample")
    y_ref = registry.reference(base, labels=True)
    if validation is None:
        X_val, y_val = X_ref, y_ref
        rows_from = f"the training sample kept with version {base.version} ({len(X_val)} rows, in-sample)"
    model = registry.load(base)
    status(f"measuring version {base.version} on {rows_from}")
    original = variant_report(model, X_val, y_val, task, batch_rows=batch_rows)
    rows: list[dict[str, Any]] = [{"method": "original", "version": base.version, **original}]
    data = Dataset(
        name=f"{name} v{base.version} reference", X=X_ref, y=y_ref, task=task,
        categorical=tuple(c.kind == "categorical" for c in signature.columns), origin=f"registry:{name}/{base.version}",
        fingerprint=base.dataset_id or "",
        dates=signature.dates,
    )
    # an ONNX or pruned variant of this version made earlier (a compression killed after some variants, run again) is
    # not made twice: they are conversions of the same model (a distilled student may differ: one is made each time)
    inherited = cv_origin(registry, base)  # the version a variant's cv_score was measured on
    made = {v.variant: v.version for v in registry.store.list_versions(name)
            if v.parent_version == base.version and v.variant in FINAL_VARIANTS}
    for method in methods:
        if METHODS[method] in made:
            rows.append({"method": method, "version": None, "error": (
                f"version {made[METHODS[method]]} is already the {method} variant of version {base.version}: "
                "delete it first to make it again")})
            continue
        status(f"making the {method} variant")
        variant: Any
        try:
            if method == "onnx":
                variant = to_onnx(model, X_val.iloc[:CHECK_ROWS])
                detail: dict[str, Any] = {"check": getattr(variant, "check", None)}
            elif method == "distill":
                student = distill(model, X_ref, y_ref, task, data.categorical)
                variant = student.model
                detail = {"student": student.name, "misfits": student.misfits, "sample_rows": len(X_ref),
                          "augmented_rows": augmented_rows(len(X_ref))}
            else:
                if not hasattr(model, "members"):
                    raise CompressionError(f"version {base.version} is a single pipeline, not an ensemble: nothing to prune")
                if validation is None:  # the training rows would favour the members that memorise them
                    variant = prune_by_weights(model)
                    chosen_by = "ensemble weights (fit on the search's out-of-fold predictions)"
                else:
                    variant = prune_ensemble(model, X_val, y_val, task)
                    if variant is model:
                        raise CompressionError("no member can be dropped without losing validation score")
                    chosen_by = f"score on {rows_from}"
                scaled = getattr(model, "temperature", 1.0) != 1.0 or getattr(model, "biases", None) is not None
                detail = {"members": len(variant.members), "of": len(model.members), "chosen_by": chosen_by,
                          "kept_config_ids": list(variant.config_ids),
                          "calibration": ("none" if not scaled else "kept (the ensemble's temperature / class biases)"
                                          if len(variant.members) > 1 else "dropped (the ensemble's temperature / "
                                          "class biases were fit to its out-of-fold probabilities, not to one member's)")}
            report = variant_report(variant, X_val, y_val, task, batch_rows=batch_rows)
            versus = compare(original, report)
            if method == "distill" and versus["score_loss"] > distill_tolerance:
                raise CompressionError(
                    f"the distilled student ({detail['student']}) scores {report['score']:.4g} against the original's {original['score']:.4g} "
                    f"({report['metric']}, {100 * versus['score_loss']:.1f} % worse, over the "
                    f"{100 * distill_tolerance:g} % allowed) on {rows_from}: not registered; keep the original"
                    + ("" if validation is not None else " (in-sample, the original scores the rows it was fit on: "
                       "give held-out labelled rows with --data to compare them on unseen data)"))
            if method == "distill" and max(versus["size_ratio"], versus["speedup_p50"]) < distill_min_gain:
                raise CompressionError(
                    f"the distilled student ({detail['student']}) is {versus['size_ratio']:.2f}x smaller and "
                    f"{versus['speedup_p50']:.2f}x faster (one row) than the original, under the {distill_min_gain:g}x "
                    "gain it must bring in one of them: not registered; keep the original")
            info = {"compression": {"method": method, "from_version": base.version, "rows": rows_from,
                                    "in_sample": validation is None, "cv_inherited": inherited,
                                    "original": original, "variant": report, "compare": versus, **detail},
                    "search": base.info.get("search"), "cv_score": base.info.get("cv_score"), "cv_basis": INHERITED}
            rec = registry.register(name, variant, data, variant=METHODS[method], search_id=base.search_id,
                                    parent_version=base.version, info=info, signature=signature,
                                    cv_metrics=(base.info.get("metrics") or {}).get("cv"))
            named = {"student": detail["student"]} if method == "distill" else {}
            if method == "prune":
                named = {k: detail[k] for k in ("members", "of", "chosen_by", "calibration")}
            rows.append({"method": method, "version": rec.version, **named, **report, "compare": versus})
        except CompressionError as err:
            rows.append({"method": method, "version": None, "error": str(err)})
    return {"name": name, "base_version": base.version, "rows_from": rows_from, "in_sample": validation is None,
            "variants": rows}
