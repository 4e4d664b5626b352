"""The daily list scored on Spark (local[2], the champion broadcast) equals the list scored
in one process: probabilities, bands, exact reasons and actions, row for row."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.batch_rows import latest_features
from features.engine import EngineSettings, spark_session
from features.store import open_store
from serving.daily import (
    local_contributions,
    run_daily,
    score_all,
    score_all_on_spark,
    scoring_instant,
)
from serving.scoring import load_champion, scoring_refs
from serving.settings import DailySettings
from tests.serving.conftest import Served
from tests.serving.test_daily import DAY

pytestmark = pytest.mark.slow
SPARK = EngineSettings(kind="spark", spark_master="local[2]")


@pytest.fixture(scope="module", autouse=True)
def spark() -> object:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (make system-deps installs openjdk-17-jre-headless)")
    session = spark_session(SPARK)
    yield session
    session.stop()


def test_spark_scores_and_explains_as_the_local_path(served: Served) -> None:
    store = open_store(served.features)
    loaded = load_champion(served.settings, served.tracking)
    refs, _ = scoring_refs(store, loaded.feature_service)
    at = pd.Timestamp(scoring_instant(DAY, served.settings))
    batch = latest_features(store, served.features.tables_dir, refs, at)
    daily = DailySettings(list_bands=["high", "medium"])

    local, matrix = score_all(batch, loaded, served.settings)
    spark, contributions = score_all_on_spark(batch, loaded, served.settings, daily, SPARK)
    pd.testing.assert_frame_equal(spark, local, check_exact=True)

    listed = np.flatnonzero(local["risk_band"].isin(daily.list_bands).to_numpy())
    assert 0 < len(listed) < len(local)
    np.testing.assert_array_equal(
        contributions(listed), local_contributions(loaded, matrix)(listed)
    )
    assert contributions(listed[:0]).shape == (0, len(loaded.model.schema.columns) + 1)


def test_the_daily_list_on_spark_is_the_local_list(served: Served, tmp_path: Path) -> None:
    lists = {}
    for engine in ("local", "spark"):
        daily = DailySettings(output_dir=tmp_path / engine, table_rows=50, scoring_engine=engine)
        _, folder, _ = run_daily(
            DAY, served.settings, daily, served.features, served.tracking, None
        )
        lists[engine] = pd.read_parquet(folder / "risk_list.parquet")
    assert len(lists["local"]) > 0
    pd.testing.assert_frame_equal(lists["spark"], lists["local"], check_exact=True)
