"""The HTTP status of each of the product's errors, for the service's exception handler.

The most specific class of an error that has an entry in :data:`HTTP_STATUSES` decides (its MRO is
walked), so a subclass without an entry answers like its parent: a
:class:`~metalearn.data.errors.SchemaVersionError` is a 503 like every ``KnowledgeBaseError``, a
``DataError`` a 400 like every ``MetaLearnError``.
"""

from __future__ import annotations

from metalearn.data.errors import (
    ArtifactError,
    CancelledError,
    CompressionError,
    ConflictError,
    DataFileNotFoundError,
    KnowledgeBaseError,
    MetaLearnError,
    NotFoundError,
    OpenMLUnavailableError,
    SearchError,
    most_specific,
)
from metalearn.pipelines.signature import SchemaError
from metalearn.service.searches import SearchConflictError, SearchesDisabledError, TooManySearchesError

#: HTTP status of an error class (and of its subclasses without an entry of their own)
HTTP_STATUSES: dict[type[BaseException], int] = {
    MetaLearnError: 400,
    DataFileNotFoundError: 404,
    NotFoundError: 404,
    CancelledError: 409,
    SearchConflictError: 409,
    ConflictError: 409,
    ArtifactError: 422,
    SchemaError: 422,  # well-formed rows that do not fit the model's training schema
    CompressionError: 422,
    TooManySearchesError: 429,
    SearchError: 500,
    KnowledgeBaseError: 503,
    OpenMLUnavailableError: 503,
    SearchesDisabledError: 503,
}


def http_status(exc: BaseException) -> int:
    """The HTTP status of ``exc`` (400 for a class without an entry)."""
    return most_specific(HTTP_STATUSES, exc, 400)
