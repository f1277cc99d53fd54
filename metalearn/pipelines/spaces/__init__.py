"""Search spaces: one named, versioned ConfigSpace per task kind, each building scikit-learn task models.

>>> from metalearn.pipelines.spaces import get_space
>>> space = get_space("binary")
>>> values = space.default()
>>> model = space.build(values, task, categorical=dataset.categorical, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from metalearn.data.errors import ConfigurationError, TaskKindError
from metalearn.data.task import Task, TaskKind
from metalearn.pipelines.spaces.base import SearchSpace, TaskModel
from metalearn.pipelines.spaces.by_kind import (
    SPACE_VERSION,
    ConfigSpaceSearchSpace,
    describe_hyperparameter,
    make_spaces,
)

#: Every search space of this build, by name (one per task kind; the name equals the kind).
SPACES: dict[str, ConfigSpaceSearchSpace] = make_spaces()

#: The space used for each task kind.
SPACE_FOR_KIND: dict[TaskKind, str] = {TaskKind(s.kind): name for name, s in SPACES.items()}


def get_space(task_or_kind: Task | TaskKind | str) -> ConfigSpaceSearchSpace:
    """The search space for a task (or a task kind, given as ``TaskKind`` or its string)."""
    raw = task_or_kind.kind if isinstance(task_or_kind, Task) else task_or_kind
    try:
        kind = TaskKind(str(raw))
    except ValueError:
        raise TaskKindError(
            f"unknown task kind {raw!r}; use one of {', '.join(str(k) for k in TaskKind)}"
        ) from None
    return SPACES[SPACE_FOR_KIND[kind]]


def space_by_name(name: str, version: str | None = None) -> ConfigSpaceSearchSpace:
    """The search space called ``name``; with ``version``, it must be the version this build has."""
    space = SPACES.get(str(name))
    if space is None:
        raise ConfigurationError(f"unknown search space {name!r}; use one of {', '.join(SPACES)}")
    if version is not None and str(version) != space.version:
        raise ConfigurationError(
            f"search space {name!r} version {version!r} is not available (this build has version "
            f"{space.version!r}); re-run the configuration in the current version"
        )
    return space


__all__ = [
    "SPACES",
    "SPACE_FOR_KIND",
    "SPACE_VERSION",
    "ConfigSpaceSearchSpace",
    "SearchSpace",
    "TaskModel",
    "describe_hyperparameter",
    "get_space",
    "space_by_name",
]
