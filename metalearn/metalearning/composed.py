"""Multi-task warm start composed per target, for a KB that has no multitask runs.

A multitask dataset mixes class and numeric targets. The KB usually has none (the corpus has no
multitask datasets), so the plain advisor gives nothing and a search would start cold. What the KB
does know is each target's own kind: binary, multiclass and regression datasets. This module

1. splits the dataset into one single-target dataset per target (same features, that target, its
   kind; :func:`target_datasets`);
2. extracts each one's meta-features. They cannot be derived from the multitask vector: its
   supervised blocks describe only the *representative* target (the first class target), so the
   regression block and the other targets' class statistics are NaN there, and its simple and label
   blocks say ``is_multitask`` / ``n_targets > 1``, which no single-kind KB dataset has. The
   per-target extraction costs one meta-feature extraction per target (median 0.13 s on the corpus);
3. recommends per target from that target's kind (the advisor, any strategy);
4. maps each recommendation into the multitask space's ``independent`` strategy: the preprocessing,
   the model family and its shared hyperparameters come from that target's recommendation (the
   *lead*); the hyperparameters that exist for one side only (``linear:C`` for classification,
   ``linear:alpha``/``svm:epsilon`` for regression) come, when the family matches, from the best
   recommendation of a target of the other side, else their defaults. Every result is checked
   with ``space.validate``; duplicates are dropped;
5. ranks them round-robin over the targets: target 1's first, target 2's first, target 1's second...

The ``independent`` strategy fits one model per target with the same family and hyperparameters, so
a composed configuration cannot give each target a different family: round-robin gives each target's
favourite an early trial. ``expected_regret``/``expected_score`` are those of the lead target's
recommendation (on that target), as the explanation says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from metalearn.data.dataset import Dataset
from metalearn.data.errors import ConfigurationError
from metalearn.data.task import Task, TaskKind
from metalearn.kb.records import ConfigurationRecord
from metalearn.pipelines.spaces import get_space

if TYPE_CHECKING:
    from metalearn.metalearning.advisor import Advisor, RecommendedConfig

__all__ = ["COMPOSED_NOTE", "compose_multitask", "side_only_hyperparameters", "target_datasets"]

#: Said wherever a composed warm start is used (search output, CLI).
COMPOSED_NOTE = (
    "the knowledge base has no multitask datasets: warm start composed per target from the "
    "recommendations for each target's own kind"
)

_SINGLE = (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION)


def target_datasets(dataset: Dataset) -> list[tuple[str, TaskKind, Dataset]]:
    """One single-target dataset per target of ``dataset`` (same features): (target, kind, dataset).

    Each gets its own fingerprint (it is a different dataset from the multitask one)."""
    task = dataset.task
    kinds = task.target_kinds or (task.kind,) * task.n_targets
    out = []
    for target, kind in zip(task.targets, kinds, strict=True):
        if TaskKind(kind) not in _SINGLE:
            continue
        sub = Dataset(
            name=f"{dataset.name}[{target}]",
            X=dataset.X,
            y=dataset.y[[target]],
            task=Task(kind=TaskKind(kind), targets=(target,)),
            categorical=dataset.categorical,
            origin=dataset.origin,
            dates=dataset.dates,
        )
        out.append((str(target), TaskKind(kind), sub))
    return out


def side_only_hyperparameters() -> tuple[frozenset[str], frozenset[str]]:
    """(classification-only, regression-only) hyperparameter names of the multitask space."""
    mt = set(get_space(TaskKind.MULTITASK).hyperparameter_names)
    cls = set(get_space(TaskKind.BINARY).hyperparameter_names)
    reg = set(get_space(TaskKind.REGRESSION).hyperparameter_names)
    return frozenset((cls - reg) & mt), frozenset((reg - cls) & mt)


def _is_class(kind: TaskKind) -> bool:
    return kind is not TaskKind.REGRESSION


def compose_multitask(
    advisor: Advisor,
    dataset: Dataset,
    strategy: str | None = None,
    k: int = 10,
    exclude_ids: Iterable[str] = (),
    seed: int = 0,
    target_metafeatures: Mapping[str, Mapping[str, Any]] | None = None,
    check_fresh: bool = True,
) -> list[RecommendedConfig]:
    """Up to ``k`` multitask configurations (``mtl_strategy="independent"``) composed from per-target
    recommendations (see the module doc). ``target_metafeatures``: target -> meta-feature vector of
    its single-target dataset, when already extracted (else extracted here). Empty when the KB has
    nothing for any target's kind."""
    from metalearn.metalearning.metafeatures import metafeature_record

    if dataset.task.kind is not TaskKind.MULTITASK:
        raise ValueError(f"compose_multitask needs a multitask dataset, got {dataset.task.kind}")
    space = get_space(TaskKind.MULTITASK)
    names = set(space.hyperparameter_names)
    cls_only, reg_only = side_only_hyperparameters()
    name = advisor.resolve_strategy(strategy)
    exclude = set(exclude_ids)
    per_target: list[tuple[str, TaskKind, list[RecommendedConfig]]] = []
    for target, kind, sub in target_datasets(dataset):
        given = (target_metafeatures or {}).get(target)
        mf = dict(given) if given is not None else metafeature_record(sub, seed=seed).values
        recs = advisor.recommend(mf, kind, strategy=name, k=k, exclude_ids=exclude | {sub.dataset_id},
                                 check_fresh=check_fresh)  # fmt: skip
        if recs:
            per_target.append((target, kind, recs))
    if not per_target:
        return []

    def complement(family: str, lead_is_class: bool) -> tuple[dict[str, Any], str]:
        """The other side's own hyperparameters of ``family`` from its best such recommendation."""
        wanted = reg_only if lead_is_class else cls_only
        for target, kind, recs in per_target:
            if _is_class(kind) == lead_is_class:
                continue
            for r in recs:
                if r.values.get("model") == family:
                    extra = {h: v for h, v in r.values.items() if h in wanted}
                    return (
                        extra,
                        f"; {', '.join(sorted(extra))} from target {target!r} ({kind}) #{r.rank}"
                        if extra
                        else "",
                    )
        return {}, ""

    out: list[RecommendedConfig] = []
    seen: set[str] = set()
    depth = max(len(recs) for _, _, recs in per_target)
    for i in range(depth):
        for target, kind, recs in per_target:
            if len(out) >= k:
                return out
            if i >= len(recs):
                continue
            r = recs[i]
            values = {h: v for h, v in r.values.items() if h in names}
            values["mtl_strategy"] = "independent"
            extra, extra_text = complement(str(values.get("model")), _is_class(kind))
            values.update({h: v for h, v in extra.items() if h not in values})
            try:
                values = space.validate(values, fill_defaults=True)
            except ConfigurationError:
                continue
            if not space.is_valid(values):
                continue
            cid = ConfigurationRecord.create(space.name, space.version, values).config_id
            if cid in seen:
                continue
            seen.add(cid)
            out.append(
                dataclasses.replace(
                    r,
                    rank=len(out) + 1,
                    config_id=cid,
                    values=values,
                    space=space.name,
                    space_version=space.version,
                    composed=True,
                    explanation=(
                        f"composed per target (the KB has no multitask runs): target {target!r} ({kind}) "
                        f"recommendation #{r.rank} mapped into the multitask space's independent strategy"
                        f"{extra_text}; expected regret/score are for that target: {r.explanation}"
                    ),
                )
            )
    return out
