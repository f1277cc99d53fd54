"""Model files on disk: written with ``skops.io`` (never pickle), loaded only when their SHA-256 equals
the recorded one (the registry's, or the ``summary.json`` beside an ``optimize --out`` model) and with an
explicit list of trusted types.

The trusted types of an artifact are listed when it is written (``skops.io.get_untrusted_types``: every
type skops does not trust by default) and checked against :data:`TRUSTED_MODULES`: a model holding a type
from another module is refused at registration. The list is stored with the version; at load time the
artifact may not name any type beyond it, so a file swapped on disk is refused twice (hash, types).

The trees of each random / extra-trees forest are written as one :class:`PackedTrees` (their node arrays
concatenated field by field and narrowed without loss, their value arrays concatenated, the parameters they
share written once) instead of one skops object per tree,
whose JSON schema repeats every tree estimator's parameters: smaller files, written and loaded several
times faster (``benchmarks/model_files.py``). A forest is unpacked when the file is loaded: the model read
back predicts exactly as the one written. The zip entries are stored, not deflated: deflating halves a
forest's file again but takes longer than the write itself (zlib's quickest level: ~230 MB/s).

A model file written with its training schema (``write_artifact(model, directory, signature)``: the file of
``optimize --out``) holds a :class:`SignedModel`, the model beside the schema, and :func:`load_model_file` gives it
back: its rows are checked as ``metalearn predict`` checks them (:meth:`~metalearn.pipelines.signature.Signature.validate`).
A file written without one (the registry's, whose schema is the version's; an ``optimize --out`` file of an older
release) holds the model alone, which checks only that numeric columns hold numbers.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metalearn.data.errors import ArtifactError

if TYPE_CHECKING:
    import pandas as pd

    from metalearn.pipelines.signature import Signature

#: The modules whose types a registered model may hold (the libraries the search's pipelines use).
TRUSTED_MODULES: tuple[str, ...] = (
    "metalearn.", "sklearn.", "numpy.", "scipy.", "lightgbm.", "xgboost.", "catboost.", "pandas.",
    "collections.", "builtins.", "onnx.", "onnxruntime.",
)

#: The artifact format this module writes.
FORMAT = "skops"
MODEL_FILE = "model.skops"

#: the tree estimators a forest's ``estimators_`` may hold to be packed (a packed file names one of them)
_TREE_CLASSES = ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor")
#: the state of a fitted ``sklearn.tree._tree.Tree`` (its ``__reduce__``) that :class:`PackedTrees` packs
_TREE_STATE = ("max_depth", "node_count", "nodes", "values")


class PackedTrees:
    """The fitted trees of one forest, written as a few arrays (see the module docstring).

    Built from a forest's list of trees when a model is written (:func:`dumps_model`); its state holds the
    tree class's name, the estimator state every tree shares (written once), each tree's ``random_state``,
    the arguments of the trees' ``Tree`` objects, their node arrays concatenated as columns
    (:func:`_node_columns`) and their value arrays concatenated.
    :meth:`__setstate__` rebuilds the trees, and :func:`loads_model` puts the list back into the forest.
    It iterates, indexes and counts as the list does, so a forest predicts while it is packed for a write.
    """

    def __init__(self, trees: list[Any]) -> None:
        self.trees = trees
        self._state: dict[str, Any] | None = None  # made once: skops asks twice (``__reduce__`` asks too)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.trees)

    def __len__(self) -> int:
        return len(self.trees)

    def __getitem__(self, i: Any) -> Any:
        return self.trees[i]

    @classmethod
    def of(cls, trees: Any) -> PackedTrees | None:
        """The packed form of ``trees`` (a fitted forest's ``estimators_``), or None when they are not all
        fitted trees of one class with the same parameters and ``Tree`` layout (then written as they are)."""
        if not isinstance(trees, list) or len(trees) < 2:
            return None
        kind = type(trees[0])
        if kind.__name__ not in _TREE_CLASSES or not kind.__module__.startswith("sklearn.tree"):
            return None
        first = _tree_parts(trees[0])  # (the one whose Tree's state is checked: the layout is the library's)
        if first is None:
            return None
        for tree in trees[1:]:
            parts = _tree_parts(tree, arrays=False) if type(tree) is kind else None
            if parts is None or not _same(parts[0], first[0]) or not _same(parts[1], first[1]):
                return None
        return cls(trees)

    def __getstate__(self) -> dict[str, Any]:
        if self._state is None:
            self._state = self._packed_state()
        return self._state

    def _packed_state(self) -> dict[str, Any]:
        parts = [_tree_parts(t) for t in self.trees]
        if any(p is None for p in parts):
            raise ValueError("a packed forest holds a tree that is not fitted")
        shared, args, _ = parts[0]  # type: ignore[misc]
        states = [p[2] for p in parts]  # type: ignore[index]
        return {
            "tree_class": type(self.trees[0]).__name__,
            "shared": shared,
            "random_state": np.array([t.random_state for t in self.trees], dtype=np.int64),
            "tree_args": [args[0], args[1].astype(np.int64), args[2]],
            "max_depth": np.array([s["max_depth"] for s in states], dtype=np.int64),
            "node_count": np.array([s["node_count"] for s in states], dtype=np.int64),
            "nodes": _node_columns([s["nodes"] for s in states]),
            "values": np.concatenate([s["values"] for s in states]),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        import sklearn.tree
        from sklearn.tree._tree import Tree

        name = state["tree_class"]
        if name not in _TREE_CLASSES:
            raise ValueError(f"a packed forest names the tree class {name!r}, not one of {', '.join(_TREE_CLASSES)}")
        cls = getattr(sklearn.tree, name)
        counts = np.asarray(state["node_count"], dtype=np.int64)
        ends = np.cumsum(counts)
        n_features, n_classes, n_outputs = state["tree_args"]
        nodes, values = _node_array(state["nodes"], _node_dtype()), state["values"]
        seeds, depths = state["random_state"], state["max_depth"]
        if not len(seeds) == len(depths) == len(counts) or not len(nodes) == len(values) == int(counts.sum()):
            raise ValueError("a packed forest's arrays disagree in length: the file is damaged")
        trees = []
        for i, end in enumerate(ends):
            start = end - counts[i]
            tree = Tree(int(n_features), np.asarray(n_classes, dtype=np.intp), int(n_outputs))
            tree.__setstate__({
                "max_depth": int(depths[i]), "node_count": int(counts[i]),
                "nodes": np.ascontiguousarray(nodes[start:end]), "values": np.ascontiguousarray(values[start:end]),
            })
            est = cls.__new__(cls)
            est.__setstate__({**state["shared"], "random_state": int(seeds[i]), "tree_": tree})
            trees.append(est)
        self.trees = trees
        self._state = None


def _node_dtype() -> np.dtype[Any]:
    """The structured dtype of this scikit-learn's tree nodes (an empty ``Tree``'s)."""
    from sklearn.tree._tree import Tree

    return Tree(1, np.ones(1, dtype=np.intp), 1).__getstate__()["nodes"].dtype  # type: ignore[no-any-return]


def _node_columns(blocks: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The fields of the trees' structured node arrays ``blocks`` as columns, one tree after the other, written
    smaller without a bit lost: integer fields as 32-bit integers when their values fit (node indices, features and
    row counts always do), and ``weighted_n_node_samples`` not at all when it equals ``n_node_samples`` (no sample
    weights, and no bootstrap sample: its draws count as weights). A regression tree's node: 64 + 8 bytes -> 41 (49
    with the weighted counts). Each column is filled from the trees' arrays in place: no concatenated copy of
    them first (a 5.9-million-node forest's nodes are 375 MB, and a fresh copy of that took 2-3 s here)."""
    columns: dict[str, np.ndarray] = {}
    names = (blocks[0].dtype.names or ()) if blocks else ()
    n = sum(len(b) for b in blocks)
    int32 = np.iinfo(np.int32)
    for name in names:
        if name == "weighted_n_node_samples" and "n_node_samples" in names and all(
            np.array_equal(b[name], b["n_node_samples"]) for b in blocks
        ):
            continue
        dtype = blocks[0].dtype.fields[name][0]  # type: ignore[index]
        if dtype.kind == "i" and n and all(not len(b) or (int32.min <= b[name].min() and b[name].max() <= int32.max) for b in blocks):
            dtype = np.dtype(np.int32)
        column = np.empty(n, dtype=dtype)
        start = 0
        for b in blocks:
            column[start:start + len(b)] = b[name]
            start += len(b)
        columns[name] = column
    return columns


def _node_array(columns: dict[str, np.ndarray], dtype: np.dtype[Any]) -> np.ndarray:
    """The structured node array of ``dtype`` that :func:`_node_columns` made ``columns`` of."""
    names = dtype.names or ()
    if set(columns) | {"weighted_n_node_samples"} != set(names) or "n_node_samples" not in columns:
        raise ValueError(
            f"a packed forest's tree nodes hold the fields {', '.join(sorted(columns))}, this scikit-learn's "
            f"{', '.join(names)}: load the model with the scikit-learn version it was written with"
        )
    n = len(columns["n_node_samples"])
    if any(len(c) != n for c in columns.values()):
        raise ValueError("a packed forest's arrays disagree in length: the file is damaged")
    out = np.zeros(n, dtype=dtype)
    for name in names:
        out[name] = columns.get(name, columns["n_node_samples"])
    return out


def _tree_parts(tree: Any, arrays: bool = True) -> tuple[dict[str, Any], tuple[Any, ...], dict[str, Any]] | None:
    """A fitted tree estimator's state without its seed and ``tree_``, its ``Tree``'s constructor arguments
    and (with ``arrays``) its ``Tree``'s state — a copy of its node and value arrays; None when it is not the
    layout :class:`PackedTrees` knows."""
    state = dict(tree.__getstate__())
    inner = state.pop("tree_", None)
    if inner is None or not isinstance(state.pop("random_state", None), int | np.integer):
        return None
    args = (int(inner.n_features), np.asarray(inner.n_classes, dtype=np.intp), int(inner.n_outputs))
    if not arrays:
        return state, args, {}
    reduced = inner.__reduce__()  # (Tree, (n_features, n_classes, n_outputs), its state)
    if len(reduced) != 3 or not isinstance(reduced[2], dict) or sorted(reduced[2]) != sorted(_TREE_STATE):
        return None
    return state, args, reduced[2]


def _same(a: Any, b: Any) -> bool:
    """Equal values, arrays (dtype included) and containers of them."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(type(a) is type(b) and a == b)
    except (TypeError, ValueError):
        return False


class SignedModel:
    """A fitted model and the training schema its rows are checked against (see the module docstring).

    ``predict_task``, ``predict`` and ``predict_proba`` check the rows with
    :meth:`~metalearn.pipelines.signature.Signature.validate` — a missing, extra or mistyped column is a
    :class:`~metalearn.pipelines.signature.SchemaError` naming it, as ``metalearn predict`` says it; an unseen
    category, a target column sent along, a ``UserWarning`` — and give the model the checked rows (the training
    order and types, date columns turned into its numbers); every other attribute is the model's (``classes_``: the
    order of ``predict_proba``'s columns, see :mod:`metalearn.pipelines.models.task_models`). The file holds
    the schema as :meth:`~metalearn.pipelines.signature.Signature.to_dict` writes it (plain values)."""

    #: where the error of rows that do not fit says the schema is
    HINT = "the loaded model's `.signature.to_dict()` shows its schema"

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self.signature = signature

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "schema": self.signature.to_dict()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from metalearn.pipelines.signature import Signature

        self.model = state["model"]
        self.signature = Signature.from_dict(state["schema"])

    def __getattr__(self, name: str) -> Any:
        model = self.__dict__.get("model")  # (not set while skops or copy builds the object)
        if model is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(model, name)

    def checked(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` checked against the training schema, as the model takes it; its notes as warnings."""
        from metalearn.pipelines.signature import checked_rows

        return checked_rows(self.signature, X, hint=self.HINT)

    def predict_task(self, X: pd.DataFrame) -> Any:
        return self.model.predict_task(self.checked(X))

    def predict(self, X: pd.DataFrame) -> Any:
        return self.model.predict(self.checked(X))

    @property
    def predict_proba(self) -> Callable[[pd.DataFrame], Any]:
        proba = self.model.predict_proba  # (a model without probabilities: no attribute, as the model itself)
        return lambda X: proba(self.checked(X))

    def __repr__(self) -> str:
        return f"SignedModel({self.model!r}, inputs={self.signature.inputs!r})"


def parts(model: Any, kind: type | tuple[type, ...]) -> Iterator[Any]:
    """Every object of type ``kind`` inside ``model`` (through the attributes of the trusted libraries'
    objects, lists, tuples and dicts; not inside a found one), each once: fitted ones and the unfitted
    templates they were cloned from alike."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen or isinstance(obj, str | bytes | bytearray | int | float | np.ndarray):
            continue
        seen.add(id(obj))
        if isinstance(obj, kind):
            yield obj
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif type(obj).__module__.startswith(TRUSTED_MODULES) and hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())


def forests(model: Any) -> Iterator[Any]:
    """Every random / extra-trees forest inside ``model``, each once (:func:`parts`)."""
    from sklearn.ensemble._forest import BaseForest

    return parts(model, BaseForest)


def forest_size(model: Any) -> tuple[int, int]:
    """The trees and the tree nodes of the fitted random / extra-trees forests inside ``model``."""
    trees = [t for f in forests(model) for t in vars(f).get("estimators_", ())]
    return len(trees), sum(int(t.tree_.node_count) for t in trees)


@contextmanager
def _packed(model: Any) -> Iterator[None]:
    """Each forest of ``model`` holding a :class:`PackedTrees` in place of its list of trees, for a write."""
    swapped = []
    try:
        for forest in list(forests(model)):
            packed = PackedTrees.of(forest.__dict__.get("estimators_"))
            if packed is not None:
                forest.estimators_ = packed
                swapped.append((forest, packed.trees))
        yield
    finally:
        for forest, trees in swapped:
            forest.estimators_ = trees


def dumps_model(model: Any) -> bytes:
    """``model`` as the bytes of a skops file, its forests packed."""
    import skops.io as sio

    with _packed(model):
        return sio.dumps(model)


def loads_model(data: bytes, trusted: list[str]) -> Any:
    """The model in the skops file ``data`` (naming the types ``trusted``), its packed forests unpacked."""
    import skops.io as sio

    model = sio.loads(data, trusted=trusted)
    for forest in list(forests(model)):
        packed = forest.__dict__.get("estimators_")
        if isinstance(packed, PackedTrees):
            forest.estimators_ = list(packed.trees)
    return model


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def trusted_types(data: bytes) -> list[str]:
    """The non-default types ``data`` (a skops file's bytes) holds, all from :data:`TRUSTED_MODULES`;
    :class:`ArtifactError` naming the others."""
    import skops.io as sio

    try:
        types = sorted(sio.get_untrusted_types(data=data))
    except Exception as err:  # not a zip, a damaged one, no schema
        raise ArtifactError(
            f"the file is not a readable skops model ({type(err).__name__}: {str(err)[:200]}): it is damaged or "
            "not a model file; write the model again"
        ) from err
    bad = [t for t in types if not t.startswith(TRUSTED_MODULES)]
    if bad:
        raise ArtifactError(
            f"the model holds type(s) {', '.join(bad[:5])} outside the trusted libraries "
            f"({', '.join(m.rstrip('.') for m in TRUSTED_MODULES)}), so it cannot be registered safely"
        )
    return types


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector off for a block that makes many objects (a model's state for skops): its full
    passes walk every object alive, a search's pools and a large forest's trees too — the write of a 100-tree,
    5.9-million-node forest took 5.1 s right after a search, 1.4 s on its own, and ended a 10 s job at 15 s."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_artifact(model: Any, directory: Path, signature: Signature | None = None) -> dict[str, Any]:
    """Write ``model`` into ``directory`` (created); returns file name, format, sha256, bytes, trusted types.
    With ``signature`` (its training schema) the file holds a :class:`SignedModel`, which checks the rows it is
    given against it.

    The file is written to a temporary name and renamed, so a crash never leaves half a model under the
    final name."""
    if signature is not None:
        model = SignedModel(model, signature)
    try:
        with _no_gc():
            data = dumps_model(model)
    except Exception as err:  # skops cannot represent some object in the model
        raise ArtifactError(
            f"the model cannot be saved in the safe skops format ({type(err).__name__}: {str(err)[:200]})"
        ) from err
    types = trusted_types(data)
    path = directory / MODEL_FILE
    tmp = directory / f".{MODEL_FILE}.{os.getpid()}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:  # a full disk, no permission: named, and no temporary file left behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ArtifactError(
            f"cannot write the model file {path} ({err.strerror or err}; {len(data) / 2**20:.1f} MiB): free space "
            "there or write elsewhere"
        ) from err
    return {
        "file": MODEL_FILE,
        "format": FORMAT,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "trusted_types": types,
    }


def read_artifact(path: Path, sha256: str, trusted: list[str], what: str) -> Any:
    """The model in ``path`` when its hash is ``sha256`` and it names no type beyond ``trusted``;
    :class:`ArtifactError` (saying what to do) otherwise."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArtifactError(
            f"the artifact of {what} cannot be read ({path}: {err.strerror}): restore the file or delete the version"
        ) from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ArtifactError(
            f"the artifact of {what} was modified on disk (SHA-256 {digest[:12]}…, registered {sha256[:12]}…), so it "
            "is not loaded: restore the original file, or delete this version and register the model again"
        )
    return _loaded(data, trusted, what)


def _loaded(data: bytes, trusted: list[str], what: str) -> Any:
    """The model in the skops bytes ``data`` when they name no type beyond ``trusted``."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(data=data)
        beyond = sorted(set(found) - set(trusted))
        if beyond:
            raise ArtifactError(
                f"the artifact of {what} names type(s) {', '.join(beyond[:5])} not registered with it, so it is not "
                "loaded: delete this version and register the model again"
            )
        return loads_model(data, sorted(found))
    except ArtifactError:
        raise
    except Exception as err:
        raise ArtifactError(
            f"the artifact of {what} cannot be loaded ({type(err).__name__}: {str(err)[:200]}): it may need the "
            "library versions it was registered with (see `metalearn models show`)"
        ) from err


def load_model_file(path: str | Path, sha256: str | None = None) -> Any:
    """A model written by ``optimize(out_dir=...)`` / ``metalearn optimize --out`` (``model.skops``): loaded
    when it names only types of the trusted libraries (and, given ``sha256``, when its hash matches, e.g. the
    ``model.sha256`` of the ``summary.json`` beside it). A file written with its training schema gives a
    :class:`SignedModel`, which checks its rows against the schema; an older one the model alone."""

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"cannot read the model file {path} ({err.strerror}): check the path") from err
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError(f"the model file {path} differs from the one the search wrote (SHA-256): rerun the search")
    return _loaded(data, trusted_types(data), f"model file {path}")
