"""Where runs go: point MLflow at the configured backend and make sure an experiment exists.

Embedded by default (a SQLite backend and an artifact folder under data/mlflow), any team
server through MLFLOW_TRACKING_URI. Every job that logs runs (training, the demand
forecast, the daily list) opens its experiment here; reading the registry needs none of
this (`training.registry`).
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from training.registry import use_backend
from training.settings import TrackedSettings


def connect(settings: TrackedSettings) -> MlflowClient:
    """Point MLflow at the configured backend and make sure the experiment exists."""
    uri = settings.resolved_tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    use_backend(uri)
    client = MlflowClient()
    if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: log into the run it started
        return client
    if client.get_experiment_by_name(settings.experiment) is None:
        artifacts = (
            None
            if "://" in uri and not uri.startswith("sqlite")
            else settings.artifact_root.resolve().as_uri()
        )
        client.create_experiment(settings.experiment, artifact_location=artifacts)
    mlflow.set_experiment(settings.experiment)
    return client
