"""The exception tree of metalearn.

Every error the product raises on purpose derives from :class:`MetaLearnError`, and each
subclass also inherits the builtin exception a caller would naturally catch (``ValueError``,
``FileNotFoundError``, ``KeyError`` ...). Messages say what was wrong *and* how to fix it, in one
line, so the CLI and the API can show them to a user as they are (no traceback).

The tree lives in the bottom layer so every layer can raise and catch it. What an error means to an
interface (the CLI's exit code, the service's HTTP status) is decided there: ``metalearn.cli.errors``
and ``metalearn.service.errors`` map classes to codes with :func:`most_specific`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

_V = TypeVar("_V")


def option(name: str, value: str = "") -> str:
    """How a message names a setting every interface has: the CLI's flag, and the keyword the Python API and the
    service's fields take (``option("target", "NAME")`` -> ``--target NAME (target= in Python and over HTTP)``),
    so that an error cites what the user at hand can type."""
    flag = f"--{name.replace('_', '-')}" + (f" {value}" if value else "")
    return f"{flag} ({name}= in Python and over HTTP)"


def most_specific(table: Mapping[type[BaseException], _V], exc: BaseException, default: _V) -> _V:
    """``table``'s value for the most specific class of ``exc`` (the first along its MRO), else ``default``."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return default


class MetaLearnError(Exception):
    """Root of every deliberate metalearn error. ``str(err)`` is a one-line user-facing message."""


class InputError(MetaLearnError, ValueError):
    """User input (data, arguments, configuration) is invalid."""


class DataError(InputError):
    """A dataset is unusable: empty, all-NaN, a single class, inf values, duplicate columns..."""


class TargetError(InputError, KeyError):
    """A target column is missing, unknown, or unusable for the requested task kind."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class TaskKindError(InputError):
    """The task kind cannot be inferred or does not fit the targets."""


class DataFileNotFoundError(MetaLearnError, FileNotFoundError):
    """A data file, corpus directory or snapshot directory does not exist."""


class FileFormatError(InputError):
    """A file exists but cannot be parsed (malformed CSV, unreadable ARFF, bad parquet...)."""


class ConfigurationError(InputError):
    """A configuration is not valid in the search space it claims to belong to."""


class NotFoundError(MetaLearnError, LookupError):
    """A record (dataset, configuration, run, search) does not exist in the knowledge base."""


class MissingReferenceError(NotFoundError):
    """Records name records of another table (``noun``: dataset, configuration) that are not stored."""

    def __init__(self, what: str, noun: str, keys: list[str]) -> None:
        self.what, self.noun, self.keys = what, noun, keys
        super().__init__(
            f"{what} name {noun}(s) {', '.join(keys)} not stored in the knowledge base: "
            f"put_{noun} them first; nothing was written"
        )


class ConflictError(MetaLearnError, ValueError):
    """A write would replace something immutable (an existing model version) or contradict the stored
    state (promoting a deleted version)."""


class ArtifactError(MetaLearnError, ValueError):
    """A model artifact is missing, tampered with (its hash differs from the registry's) or unsafe to load."""


class KnowledgeBaseError(MetaLearnError, RuntimeError):
    """The knowledge base cannot be opened or written (locked, corrupt...)."""


class SchemaVersionError(KnowledgeBaseError):
    """The knowledge-base file has a schema version this code cannot use."""


class OpenMLUnavailableError(MetaLearnError, ConnectionError):
    """OpenML cannot be reached and the item is not in the local cache."""


class SearchError(MetaLearnError, RuntimeError):
    """A search could not run (not a failed trial: those are recorded, never raised)."""


class CancelledError(MetaLearnError, RuntimeError):
    """A search was cancelled by its user."""


class CompressionError(MetaLearnError, ValueError):
    """A model has no compressed variant (an estimator without an ONNX conversion, a variant that
    differs from the original, an ensemble with nothing to prune): keep the original version."""
