"""``metalearn serve``: the HTTP service (:mod:`metalearn.service`) under uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from metalearn.cli.commands import KbOpt, app, console


@app.command()
def serve(
    kb: KbOpt = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes. With more than one, every process opens the KB read-only and searches are disabled.",
        ),
    ] = 1,
    log_level: Annotated[
        str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")
    ] = "info",
) -> None:
    """Serve recommendations, meta-feature extraction, searches and the KB over HTTP (docs at /docs).

    Write endpoints need an API key: set METALEARN_API_KEYS=key1,key2 (see METALEARN_* settings in metalearn.service.settings).
    """
    import uvicorn

    from metalearn.kb.shipped import open_default_kb
    from metalearn.service.settings import Settings

    if kb:
        os.environ["METALEARN_KB"] = kb
    # the METALEARN_* settings, read once before anything starts: a bad one stops here with its one-line error
    settings = Settings()
    # create (and seed) the KB file once, so every worker can open it read-only; before the server starts, so a KB
    # another process holds is the one-line error every command gives (it was an 88-line traceback, exit 3)
    open_default_kb(kb, read_only=settings.kb_read_only and workers == 1).close()
    if workers > 1:
        os.environ["METALEARN_KB_READ_ONLY"] = "1"
        console.print(
            f"{workers} workers share the KB read-only: searches are disabled (use --workers 1 for them)"
        )

    if not settings.api_keys and not settings.allow_anonymous_writes:
        console.print("no METALEARN_API_KEYS set: uploads and searches will be refused (reads work)")
    uvicorn.run(
        "metalearn.service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level.lower(),
    )
