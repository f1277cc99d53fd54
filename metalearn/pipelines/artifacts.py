"""Model files on disk: written with ``skops.io`` (never pickle), loaded only when their SHA-256 equals
the recorded one (the registry's, or the ``summary.json`` beside an ``optimize --out`` model) and with an
explicit list of trusted types.

The trusted types of an artifact are listed when it is written (``skops.io.get_untrusted_types``: every
type skops does not trust by default) and checked against :data:`TRUSTED_MODULES`: a model holding a type
from another module is refused at registration. The list is stored with the version; at load time the
artifact may not name any type beyond it, so a file swapped on disk is refused twice (hash, types).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from metalearn.data.errors import ArtifactError

#: The modules whose types a registered model may hold (the libraries the search's pipelines use).
TRUSTED_MODULES: tuple[str, ...] = (
    "metalearn.", "sklearn.", "numpy.", "scipy.", "lightgbm.", "xgboost.", "catboost.", "pandas.",
    "collections.", "builtins.", "onnx.", "onnxruntime.",
)

#: The artifact format this module writes.
FORMAT = "skops"
MODEL_FILE = "model.skops"


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

    types = sorted(sio.get_untrusted_types(data=data))
    bad = [t for t in types if not t.startswith(TRUSTED_MODULES)]
    if bad:
        raise ArtifactError(
            f"the model holds type(s) {', '.join(bad[:5])} outside the trusted libraries "
            f"({', '.join(m.rstrip('.') for m in TRUSTED_MODULES)}), so it cannot be registered safely"
        )
    return types


def write_artifact(model: Any, directory: Path) -> dict[str, Any]:
    """Write ``model`` into ``directory`` (created); returns file name, format, sha256, bytes, trusted types.

    The file is written to a temporary name and renamed, so a crash never leaves half a model under the
    final name."""
    import skops.io as sio

    try:
        data = sio.dumps(model)
    except Exception as err:  # skops cannot represent some object in the model
        raise ArtifactError(
            f"the model cannot be saved in the safe skops format ({type(err).__name__}: {str(err)[:200]})"
        ) from err
    types = trusted_types(data)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MODEL_FILE
    tmp = directory / f".{MODEL_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
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
    import skops.io as sio

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
    try:
        found = sio.get_untrusted_types(data=data)
        beyond = sorted(set(found) - set(trusted))
        if beyond:
            raise ArtifactError(
                f"the artifact of {what} names type(s) {', '.join(beyond[:5])} not registered with it, so it is not "
                "loaded: delete this version and register the model again"
            )
        return sio.loads(data, trusted=sorted(found))
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
    ``model.sha256`` of the ``summary.json`` beside it)."""

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ArtifactError(f"cannot read the model file {path} ({err.strerror}): check the path") from err
    types = trusted_types(data)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError(f"the model file {path} differs from the one the search wrote (SHA-256): rerun the search")
    return read_artifact(path, hashlib.sha256(data).hexdigest(), types, f"model file {path}")
