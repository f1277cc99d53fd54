"""The ``metalearn`` command line: the top layer, beside :mod:`metalearn.service`.

- :mod:`metalearn.cli.commands` — every command but ``serve`` (a Typer app), and :func:`main`;
- :mod:`metalearn.cli.serve` — ``metalearn serve``, the HTTP service under uvicorn;
- :mod:`metalearn.cli.models` — ``metalearn models ...`` (the model registry) and ``metalearn predict``.

May import every other layer; nothing imports it.
"""

from __future__ import annotations

from metalearn.cli import models as _models  # noqa: F401  (registers ``metalearn models`` and ``predict``)
from metalearn.cli import serve as _serve  # noqa: F401  (registers ``metalearn serve`` on the app)
from metalearn.cli.commands import app, main

__all__ = ["app", "main"]
