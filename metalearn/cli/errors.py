"""The exit code of each of the product's errors, for :func:`metalearn.cli.commands.main`, the checks of
output paths that every command makes before its work (so that a path it cannot write fails first), and the
reading of comma-separated name options.

The most specific class of an error that has an entry in :data:`EXIT_CODES` decides (its MRO is
walked); every deliberate error is a usage or input problem today, so all of them exit with 2.
"""

from __future__ import annotations

import os
from pathlib import Path

from metalearn.data.errors import InputError, MetaLearnError, most_specific

#: exit code of an error class (and of its subclasses without an entry of their own)
EXIT_CODES: dict[type[BaseException], int] = {
    MetaLearnError: 2,
}


def exit_code(exc: BaseException) -> int:
    """The exit code of ``exc`` (2 for a class without an entry)."""
    return most_specific(EXIT_CODES, exc, 2)


def _nearest_existing(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_output(path: Path, option: str, *, directory: bool = False) -> None:
    """``path`` can be written as the ``option``'s output (a file, or with ``directory`` a directory, made if it
    is missing); :class:`InputError` naming the option and the problem otherwise."""
    if path.exists():
        if directory and not path.is_dir():
            raise InputError(f"{option} {str(path)!r} is a file: give a directory")
        if not directory and path.is_dir():
            raise InputError(f"{option} {str(path)!r} is a directory: give a file name")
        target = path if directory else path.parent
    else:
        target = _nearest_existing(path)
        if not target.is_dir():
            raise InputError(f"{option} {str(path)!r}: {str(target)!r} is a file, not a directory")
    if not os.access(target, os.W_OK | os.X_OK):
        raise InputError(f"{option} {str(path)!r}: {str(target)!r} is not writable")
    try:  # the directories the output needs (made now: the command writes there at its end)
        (path if directory else path.parent).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{option} {str(path)!r}: cannot make its directory ({err.strerror})") from None


def comma_names(text: str | None, option: str, noun: str) -> list[str] | None:
    """A comma-separated option (``--datasets "a, b"``) as its names; None when not given (every one). An empty or
    blank list, e.g. an unset shell variable, is an :class:`InputError`, not "every one" (``--datasets ""`` ran a
    benchmark or a build on all 263 corpus datasets)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(f"{option} is empty: name one or more {noun} (comma-separated), or leave it out for all")
    return names
