"""`retain serve`: the scoring API under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from retain.settings import load_settings
from serving.auth import KeyConfigError, load_keys
from serving.settings import ServingSettings


def serve_command(
    host: Annotated[str | None, typer.Option(help="Interface (default: loopback).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Start the scoring API (OpenAPI docs at /docs)."""
    settings = load_settings(ServingSettings, {"host": host, "port": port, "workers": workers})
    try:
        load_keys(settings.api_keys_file, settings.dev_mode)  # refuse before binding a port
    except (KeyConfigError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(f"serving on http://{settings.host}:{settings.port} (docs at /docs)")
    # no access log: request paths can carry customer ids, which are never logged in clear
    uvicorn.run(
        "serving.main:build_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # uvicorn's default (5 s) kills workers still importing MLflow and Feast on a
        # busy 2-core machine, over and over
        timeout_worker_healthcheck=settings.worker_start_timeout_s,
        access_log=False,
    )
