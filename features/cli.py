"""`retain features ...`: build feature tables, apply the Feast repo, materialize, training sets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from features.build import build_directory
from features.labels import label_column
from features.lifecycle.validate import resolve_as_of
from features.sampling import WEIGHT
from features.settings import FeatureSettings
from features.store import apply, materialize, open_store
from features.training_set import churn_training_set
from retain.base.settings import load_settings

app = typer.Typer(
    help="Feature store: build, apply, materialize, training sets.", no_args_is_help=True
)
console = Console(stderr=True)

StoreYaml = Annotated[
    Path | None, typer.Option("--store-yaml", help="Environment's feature_store.yaml.")
]
CHURN_SERVICE = "churn_v2"  # the churn model's current FeatureService (configs/training.yaml)
FeatureServiceName = Annotated[
    str, typer.Option(help="The FeatureService (features/repo/feature_services.py).")
]


def _settings(**overrides: object) -> FeatureSettings:
    return load_settings(FeatureSettings, overrides)


def run_build(settings: FeatureSettings) -> dict[str, int]:
    started = time.perf_counter()
    with console.status("building feature tables"):
        as_of = resolve_as_of(settings.lifecycle_dir, None)
        counts = build_directory(
            settings.lifecycle_dir, settings.tables_dir, as_of, settings.offline_engine
        )
    summary = ", ".join(f"{name} {rows:,}" for name, rows in counts.items())
    typer.echo(
        f"built feature tables on {settings.offline_engine.kind} as of {as_of:%Y-%m-%d} "
        f"in {time.perf_counter() - started:.1f}s: "
        f"{summary} -> {settings.tables_dir}"
    )
    return counts


def run_apply(settings: FeatureSettings) -> None:
    started = time.perf_counter()
    with console.status("applying the Feast repository"):
        names = apply(open_store(settings))
    typer.echo(
        f"applied {len(names)} Feast objects in {time.perf_counter() - started:.1f}s "
        f"({settings.store_yaml_path})"
    )


def run_materialize(settings: FeatureSettings) -> None:
    started = time.perf_counter()
    until = resolve_as_of(settings.lifecycle_dir, None)
    with console.status("materializing the latest feature values"):
        results = materialize(
            open_store(settings), until, settings.offline_engine.duckdb_memory_limit
        )
    if not results:  # Feast's registry holds no feature view: nothing to materialize
        typer.echo(
            f"error: {settings.store_yaml_path}'s registry holds no feature views: "
            "run `retain features apply` first",
            err=True,
        )
        raise typer.Exit(1)
    seconds = time.perf_counter() - started
    written = sum(r.entities for r in results if r.entities > 0)
    views = ", ".join(f"{r.view} {r.entities:,}" if r.entities >= 0 else r.view for r in results)
    typer.echo(
        f"materialized {len(results)} feature views ({written:,} entity rows) in {seconds:.1f}s "
        f"up to {until:%Y-%m-%d}: {views}"
    )


@app.command("build")
def build_command(
    lifecycle_dir: Annotated[Path | None, typer.Option(help="Lifecycle tables.")] = None,
) -> None:
    """Turn lifecycle tables into point-in-time feature tables (month ends + latest day)."""
    run_build(_settings(lifecycle_dir=lifecycle_dir))


@app.command("apply")
def apply_command(store_yaml: StoreYaml = None) -> None:
    """Register entities, sources, feature views and services; create the online tables."""
    run_apply(_settings(store_yaml=store_yaml))


@app.command("materialize")
def materialize_command(store_yaml: StoreYaml = None) -> None:
    """Load the latest value of every online feature view into the online store."""
    run_materialize(_settings(store_yaml=store_yaml))


@app.command("training-set")
def training_set_command(
    model: Annotated[str, typer.Option(help="Model whose training set to build.")] = "churn",
    horizon_days: Annotated[
        int | None, typer.Option(help="Label: churned within this many days.")
    ] = None,
    store_yaml: StoreYaml = None,
    feature_service: FeatureServiceName = CHURN_SERVICE,
) -> None:
    """Point-in-time training rows for a model's FeatureService, labelled."""
    if model != "churn":
        typer.echo(
            f"error: no training set for model {model!r} "
            "(known: churn; the demand model reads its region weeks itself: retain train demand)",
            err=True,
        )
        raise typer.Exit(2)
    settings = _settings(label_horizon_days=horizon_days, store_yaml=store_yaml)
    started = time.perf_counter()
    with console.status("joining features point in time"):
        frame = churn_training_set(
            open_store(settings),
            settings.lifecycle_dir,
            settings.label_horizon_days,
            feature_service,
            settings.negative_sampling,
        )
    settings.training_dir.mkdir(parents=True, exist_ok=True)
    path = settings.training_dir / f"{feature_service}.parquet"
    frame.to_parquet(path, index=False)
    label = label_column(settings.label_horizon_days)
    weights = frame[WEIGHT] if WEIGHT in frame else pd.Series(1.0, index=frame.index)
    sampled = (
        f" (stayers of the older months sampled at {settings.negative_sampling.rate:g}, weighted)"
        if WEIGHT in frame
        else ""
    )
    typer.echo(
        f"training set {feature_service}: {len(frame):,} rows{sampled}, {frame.shape[1]} columns, "
        f"positive rate {(frame[label] * weights).sum() / weights.sum():.2%} ({label}), "
        f"{frame['event_timestamp'].nunique()} snapshots, "
        f"in {time.perf_counter() - started:.1f}s -> {path}"
    )


@app.command("online")
def online_command(
    customer_ids: Annotated[list[str], typer.Argument(help="Customer ids.")],
    store_yaml: StoreYaml = None,
    feature_service: FeatureServiceName = CHURN_SERVICE,
) -> None:
    """Read a customer's live churn features from the online store."""
    store = open_store(_settings(store_yaml=store_yaml))
    now = int(pd.Timestamp.now(tz="UTC").timestamp())
    rows = [{"customer_id": c, "request_epoch_s": now} for c in customer_ids]
    features = store.get_online_features(
        features=store.get_feature_service(feature_service), entity_rows=rows
    ).to_df()
    typer.echo(features.T.to_string())
