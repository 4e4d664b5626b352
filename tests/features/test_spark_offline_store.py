"""Training sets joined by Spark (Feast's Spark store over our parquet sources, local[2])
equal the embedded DuckDB store's, value for value; only feature_store.yaml changes."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from feast import FeatureStore

from features.settings import FeatureSettings
from features.store import apply, open_store
from features.training_set import churn_training_set, demand_history
from tests.features.conftest import REPO

pytestmark = pytest.mark.slow


def _spark_store(project: FeatureSettings) -> FeatureStore:
    yaml = project.repo_path / "envs" / "spark" / "feature_store.yaml"
    yaml.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "features" / "repo" / "envs" / "spark" / "feature_store.yaml", yaml)
    return FeatureStore(repo_path=str(project.repo_path), fs_yaml_file=yaml)


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys, ignore_index=True)


def test_spark_training_sets_equal_duckdbs(project: FeatureSettings) -> None:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (make system-deps installs openjdk-17-jre-headless)")
    duckdb = open_store(project)
    apply(duckdb)
    spark = _spark_store(project)
    assert type(spark._get_provider().offline_store).__name__ == "RetainSparkOfflineStore"

    ours = churn_training_set(duckdb, project.lifecycle_dir, project.label_horizon_days)
    theirs = churn_training_set(spark, project.lifecycle_dir, project.label_horizon_days)
    keys = ["customer_id", "event_timestamp"]
    assert len(ours) > 10_000
    pd.testing.assert_frame_equal(
        _sorted(theirs, keys)[list(ours.columns)], _sorted(ours, keys), check_dtype=False
    )
    demand_keys = ["region", "event_timestamp"]
    pd.testing.assert_frame_equal(
        _sorted(demand_history(spark, project.lifecycle_dir), demand_keys),
        _sorted(demand_history(duckdb, project.lifecycle_dir), demand_keys),
        check_dtype=False,
    )
