"""Compressed variants of a registered version, registered as versions of their own (never promoted):
``onnx`` (the estimators served through onnxruntime, see :mod:`metalearn.registry.compress`) and
``prune`` (an ensemble with fewer members). Each is measured against the original on the same rows —
artifact size, single-row p50/p99 latency, rows/s on a 10k-row batch, validation score — so the user
chooses knowingly.

The rows are a validation set the user gives, else the sample of the training data kept with the version
(then the score is in-sample: it shows what the variant loses against the original, not how either
generalises).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from metalearn.data.dataset import Dataset
from metalearn.data.errors import CompressionError, InputError
from metalearn.kb.model_store import ModelVersionRecord
from metalearn.registry.compress import compare, prune_ensemble, to_onnx, variant_report
from metalearn.registry.registry import ModelRegistry, check_name

#: compression method -> the variant name its versions carry
METHODS: dict[str, str] = {"onnx": "onnx", "prune": "pruned"}
#: rows the ONNX variant is checked on against the original
CHECK_ROWS = 1000


def compressible_version(registry: ModelRegistry, name: str, version: int | None = None) -> ModelVersionRecord:
    """The version to compress: ``version``, else the live one, else the latest (:class:`NotFoundError`
    for an unknown model or a deleted version); :class:`CompressionError` when it is itself a variant."""
    base = registry.working_version(name, version)
    if base.variant in METHODS.values():
        raise CompressionError(
            f"model {name!r} version {base.version} is already a compressed ({base.variant}) variant: "
            f"compress its original, version {base.parent_version}"
        )
    return base


def compress(
    registry: ModelRegistry,
    name: str,
    version: int | None = None,
    *,
    methods: Sequence[str] = ("onnx", "prune"),
    validation: Dataset | None = None,
    batch_rows: int = 10_000,
    on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Make each compressed variant of ``name`` (``version``, default the live one, else the latest), register
    it and report it beside the original. A method that does not apply (a single pipeline cannot be pruned;
    an estimator without an ONNX converter) is reported with its reason, and registers nothing."""
    check_name(name)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"unknown compression method(s) {unknown or list(methods)}: choose from {', '.join(METHODS)}")
    status = on_status or (lambda _t: None)
    base = compressible_version(registry, name, version)
    task = registry.task(base)
    signature = registry.signature(base)
    if validation is not None:
        X_val, _ = signature.validate(validation.X, what="the validation data")
        y_val = validation.y
        if list(y_val.columns) != list(task.targets):
            raise InputError(f"the validation data must have the target(s) {list(task.targets)}")
        rows_from = f"the validation data ({len(X_val)} rows)"
    else:
        X_val, y_val = registry.reference(base), registry.reference(base, labels=True)
        X_val, _ = signature.validate(X_val, what="the reference sample")
        rows_from = f"the training sample kept with version {base.version} ({len(X_val)} rows, in-sample)"
    model = registry.load(base)
    status(f"measuring version {base.version} on {rows_from}")
    original = variant_report(model, X_val, y_val, task, batch_rows=batch_rows)
    rows: list[dict[str, Any]] = [{"method": "original", "version": base.version, **original}]
    data = Dataset(
        name=f"{name} v{base.version} reference", X=X_val, y=y_val, task=task,
        categorical=tuple(c.kind == "categorical" for c in signature.columns), origin=f"registry:{name}/{base.version}",
        fingerprint=base.dataset_id or "",
        dates=signature.dates,
    )
    for method in methods:
        status(f"making the {method} variant")
        variant: Any
        try:
            if method == "onnx":
                variant = to_onnx(model, X_val.iloc[:CHECK_ROWS])
                detail: dict[str, Any] = {"check": getattr(variant, "check", None)}
            else:
                if not hasattr(model, "members"):
                    raise CompressionError(f"version {base.version} is a single pipeline, not an ensemble: nothing to prune")
                variant = prune_ensemble(model, X_val, y_val, task)
                if variant is model:
                    raise CompressionError("no member can be dropped without losing validation score")
                detail = {"members": len(variant.members), "of": len(model.members)}
            report = variant_report(variant, X_val, y_val, task, batch_rows=batch_rows)
            versus = compare(original, report)
            info = {"compression": {"method": method, "from_version": base.version, "rows": rows_from,
                                    "original": original, "variant": report, "compare": versus, **detail},
                    "search": base.info.get("search"), "cv_score": base.info.get("cv_score")}
            rec = registry.register(name, variant, data, variant=METHODS[method], search_id=base.search_id,
                                    parent_version=base.version, info=info, signature=signature,
                                    cv_metrics=(base.info.get("metrics") or {}).get("cv"))
            rows.append({"method": method, "version": rec.version, **report, "compare": versus})
        except CompressionError as err:
            rows.append({"method": method, "version": None, "error": str(err)})
    return {"name": name, "base_version": base.version, "rows_from": rows_from, "variants": rows}
