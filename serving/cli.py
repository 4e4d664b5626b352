"""`retain serve`: the scoring API under uvicorn."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
import uvicorn

from features.settings import FeatureSettings
from features.store import open_store
from retain.settings import load_settings
from serving.actions import ActionLog, open_engine
from serving.auth import KeyConfigError, load_keys
from serving.engine import action_engine
from serving.scoring import ModelLoadError, Scorer, load_champion
from serving.settings import ServingSettings
from training.settings import TrainingSettings


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


def campaign_command(
    package: Annotated[
        str | None, typer.Option(help="Only this package's campaign (default: every one due).")
    ] = None,
) -> None:
    """Notify the candidates of the seasonal-package campaigns due now, under the contact
    policy (`retain forecast` ranks the candidates). Nobody is notified twice per campaign;
    the API's delivery worker sends what is queued."""
    settings = load_settings(ServingSettings)
    features = load_settings(FeatureSettings)
    tracking = load_settings(TrainingSettings)
    try:
        scorer = Scorer(load_champion(settings, tracking), open_store(features), settings)
    except ModelLoadError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    log = ActionLog(open_engine(settings.action_db_url))
    engine = action_engine(scorer, log, settings, features.tables_dir)
    counts = engine.campaign(datetime.now(UTC), package)
    typer.echo(", ".join(f"{name} {count}" for name, count in counts.items()))
