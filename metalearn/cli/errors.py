"""The exit code of each of the product's errors, for :func:`metalearn.cli.commands.main`.

The most specific class of an error that has an entry in :data:`EXIT_CODES` decides (its MRO is
walked); every deliberate error is a usage or input problem today, so all of them exit with 2.
"""

from __future__ import annotations

from metalearn.data.errors import MetaLearnError, most_specific

#: exit code of an error class (and of its subclasses without an entry of their own)
EXIT_CODES: dict[type[BaseException], int] = {
    MetaLearnError: 2,
}


def exit_code(exc: BaseException) -> int:
    """The exit code of ``exc`` (2 for a class without an entry)."""
    return most_specific(EXIT_CODES, exc, 2)
