"""What a problem is: its kind, its target column(s) and the metric it is judged by."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from metalearn.data.errors import TaskKindError, option


class TaskKind(StrEnum):
    """Kinds of supervised problem. Single-target words follow scikit-learn's ``type_of_target``."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"
    MULTILABEL = "multilabel"  # several 0/1 targets
    MULTITARGET = "multitarget"  # several continuous targets
    MULTITASK = "multitask"  # several targets of mixed kinds

    @property
    def is_classification(self) -> bool:
        return self in (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.MULTILABEL)

    @property
    def is_multi_output(self) -> bool:
        return self in (TaskKind.MULTILABEL, TaskKind.MULTITARGET, TaskKind.MULTITASK)


SINGLE_KINDS = (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.REGRESSION)

#: Default metric per kind, following the AutoML Benchmark.
DEFAULT_METRIC: dict[TaskKind, str] = {
    TaskKind.BINARY: "roc_auc",
    TaskKind.MULTICLASS: "log_loss",
    TaskKind.REGRESSION: "rmse",
    TaskKind.MULTILABEL: "roc_auc_macro",
    TaskKind.MULTITARGET: "r2_mean",
    TaskKind.MULTITASK: "multitask_mean",
}


@dataclass(frozen=True)
class Task:
    """One supervised problem.

    ``target_kinds`` gives the kind of each target (one of binary/multiclass/regression), in the
    order of ``targets``. For single-target tasks it is ``(kind,)``; for multilabel every entry is
    binary, for multitarget every entry is regression; multitask mixes them.

    ``kind_reasons`` says, per target and in the order of ``targets``, why the target has its kind
    (one human-readable sentence each, e.g. ``"9 non-negative integer values 0..8 whose frequencies
    fall off in a long thin tail ...: a count"``); :func:`metalearn.data.kinds.infer_task` fills it,
    :meth:`kind_report` prints it with the target names. It is empty for tasks built by hand or read
    back with :meth:`from_dict`, and, like ``extra``, takes no part in equality, hashing or
    :meth:`to_dict`.
    """

    kind: TaskKind
    targets: tuple[str, ...]
    target_kinds: tuple[TaskKind, ...] = ()
    metric: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    kind_reasons: tuple[str, ...] = field(default=(), compare=False, hash=False)

    def __post_init__(self) -> None:
        kind = TaskKind(self.kind)
        object.__setattr__(self, "kind", kind)
        targets = tuple(self.targets)
        object.__setattr__(self, "targets", targets)
        if not targets:
            raise TaskKindError(f"a task needs at least one target column; pass {option('target', 'NAME')}")
        if len(set(targets)) != len(targets):
            raise TaskKindError(f"target columns repeat: {list(targets)}; name each target once")
        tk = tuple(TaskKind(k) for k in self.target_kinds)
        if not tk:
            if kind in SINGLE_KINDS:
                tk = (kind,)
            elif kind is TaskKind.MULTILABEL:
                tk = (TaskKind.BINARY,) * len(targets)
            elif kind is TaskKind.MULTITARGET:
                tk = (TaskKind.REGRESSION,) * len(targets)
            else:
                raise TaskKindError("a multitask task needs target_kinds, one per target")
        object.__setattr__(self, "target_kinds", tk)
        if len(tk) != len(targets):
            raise TaskKindError(
                f"{len(targets)} targets but {len(tk)} target kinds; give one kind per target"
            )
        if any(k not in SINGLE_KINDS for k in tk):
            raise TaskKindError(
                f"target kinds must be binary, multiclass or regression, got {[str(k) for k in tk]}"
            )
        if kind in SINGLE_KINDS and len(targets) != 1:
            raise TaskKindError(
                f"a {kind} task has exactly one target, got {len(targets)}; "
                "use multilabel, multitarget or multitask for several targets"
            )
        if kind.is_multi_output and len(targets) < 2:
            raise TaskKindError(f"a {kind} task needs at least two targets, got {list(targets)}")
        if kind is TaskKind.MULTILABEL and any(k is not TaskKind.BINARY for k in tk):
            raise TaskKindError(
                "multilabel targets must all be binary (0/1); use multitask for mixed targets"
            )
        if kind is TaskKind.MULTITARGET and any(k is not TaskKind.REGRESSION for k in tk):
            raise TaskKindError("multitarget targets must all be continuous; use multitask for mixed targets")
        if not self.metric:
            object.__setattr__(self, "metric", DEFAULT_METRIC[kind])
        elif kind is TaskKind.MULTITASK and ":" in self.metric:  # one target's metric: checked against it
            from metalearn.data.metrics import check_task_metric

            object.__setattr__(self, "metric", check_task_metric(self, self.metric))
        reasons = tuple(str(r) for r in self.kind_reasons)
        if reasons and len(reasons) != len(targets):
            raise TaskKindError(
                f"{len(targets)} targets but {len(reasons)} kind reasons; give one per target"
            )
        object.__setattr__(self, "kind_reasons", reasons)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A task read back from a model file (skops, pickle): its attributes, with the kinds as
        :class:`TaskKind` again — skops keeps a ``StrEnum`` as plain text, and code that compares kinds
        by identity (``kind is TaskKind.REGRESSION``) would take ``"regression"`` for another kind."""
        state = dict(state)
        if "kind" in state:
            state["kind"] = TaskKind(state["kind"])
        if "target_kinds" in state:
            state["target_kinds"] = tuple(TaskKind(k) for k in state["target_kinds"])
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    def target_keys(self) -> dict[str, str]:
        """A multitask task's per-target metric prefixes -> target names (``{"t0": "religion", ...}``: its runs
        store ``t0:accuracy``); empty for other kinds."""
        if self.kind is not TaskKind.MULTITASK:
            return {}
        return {f"t{i}": t for i, t in enumerate(self.targets)}

    def kind_report(self) -> list[str]:
        """One line per target: ``"'name': kind - reason"`` (the reason omitted when unknown)."""
        reasons = self.kind_reasons or ("",) * len(self.targets)
        # a multitask task's per-target metrics are named t<i>:<metric>
        index = [f" (t{i})" if self.kind is TaskKind.MULTITASK else "" for i in range(len(self.targets))]
        return [
            f"{t!r}{i}: {k}" + (f" - {r}" if r else "")
            for t, i, k, r in zip(self.targets, index, self.target_kinds, reasons, strict=True)
        ]

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": str(self.kind),
            "targets": list(self.targets),
            "target_kinds": [str(k) for k in self.target_kinds],
            "metric": self.metric,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Task:
        targets: Any = d["targets"]
        target_kinds: Any = d.get("target_kinds") or ()
        return cls(
            kind=TaskKind(str(d["kind"])),
            targets=tuple(str(t) for t in targets),
            target_kinds=tuple(TaskKind(str(k)) for k in target_kinds),
            metric=str(d.get("metric") or ""),
        )
