"""The installed version of the service."""

from __future__ import annotations

import functools
from importlib import metadata


@functools.cache
def service_version() -> str:
    try:
        return metadata.version("metalearn")
    except metadata.PackageNotFoundError:
        return "0+unknown"
