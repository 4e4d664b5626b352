"""What MLflow holds for a run, as text to search: for the tests that customer ids stay
out of it unless a setting lets them in."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pandas as pd

WORD = re.compile(r"\w+")


def run_files(run_id: str, folder: Path) -> list[Path]:
    """Every artifact file of the run, downloaded through the MLflow client."""
    client = mlflow.MlflowClient()
    paths, pending = [], [""]
    while pending:  # walk the run's artifact tree as MLflow lists it
        for item in client.list_artifacts(run_id, pending.pop() or None):
            if item.is_dir:
                pending.append(item.path)
            else:
                paths.append(item.path)
    return [
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=p, dst_path=str(folder)
            )
        )
        for p in paths
    ]


def model_files(name: str, version: str, folder: Path) -> list[Path]:
    """Every file of a registered model version (MLflow keeps them apart from the run's)."""
    root = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(folder)
        )
    )
    return [p for p in root.rglob("*") if p.is_file()]


def _text(path: Path) -> str:
    if path.suffix == ".parquet":  # compressed pages: read the values, not the bytes
        return pd.read_parquet(path).to_csv(index=False)
    return path.read_bytes().decode("utf-8", errors="replace")


def customer_ids_in(paths: list[Path], ids: set[str]) -> dict[str, int]:
    """File name -> how many of `ids` appear in it, for the files where any does."""
    found = {}
    for path in paths:
        hits = ids & set(WORD.findall(_text(path)))
        if hits:
            found[path.name] = len(hits)
    return found
