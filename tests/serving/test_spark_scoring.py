"""The daily list on Spark (local[2]: features read, scored and explained by the executors,
the champion broadcast) equals the list made in one process, row for row."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.batch_rows import latest_features
from features.engine import EngineSettings, spark_session
from features.store import open_store
from serving.daily import run_daily, score_locally, score_with_spark, scoring_instant
from serving.scoring import load_champion, scoring_refs
from serving.settings import DailySettings
from serving.spark_scoring import add_request_time, spark_latest_features
from tests.serving.conftest import Served
from tests.serving.test_daily import DAY

pytestmark = pytest.mark.slow
SPARK = EngineSettings(kind="spark", spark_master="local[2]")


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (make system-deps installs openjdk-17-jre-headless)")
    session = spark_session(SPARK)
    yield session
    session.stop()


def test_spark_reads_the_batch_readers_features(served: Served, spark: object) -> None:
    store = open_store(served.features)
    loaded = load_champion(served.settings, served.tracking)
    refs, _ = scoring_refs(store, loaded.feature_service)
    at = pd.Timestamp(scoring_instant(DAY, served.settings))
    local = latest_features(store, served.features.tables_dir, refs, at)
    read = spark_latest_features(spark, store, served.features.tables_dir, refs, at)
    assert read.snapshot == local.snapshot and read.request_time
    frame = add_request_time(read.frame.toPandas(), read.request_time, at)[read.columns]
    pd.testing.assert_frame_equal(
        frame.sort_values("customer_id", ignore_index=True),
        local.frame.sort_values("customer_id", ignore_index=True),
        check_dtype=False,
    )


def test_spark_scores_and_explains_as_the_local_path(served: Served, spark: object) -> None:
    store = open_store(served.features)
    loaded = load_champion(served.settings, served.tracking)
    refs, _ = scoring_refs(store, loaded.feature_service)
    at = pd.Timestamp(scoring_instant(DAY, served.settings))
    daily = DailySettings(list_bands=["high", "medium"])
    features = served.features.model_copy(update={"offline_engine": SPARK})

    local = score_locally(
        latest_features(store, features.tables_dir, refs, at), loaded, served.settings
    )
    remote = score_with_spark(store, features, refs, at, loaded, served.settings, daily)
    assert remote.snapshot == local.snapshot
    pd.testing.assert_frame_equal(remote.frame, local.frame, check_exact=True)

    listed = np.flatnonzero(local.frame["risk_band"].isin(daily.list_bands).to_numpy())
    assert 0 < len(listed) < len(local.frame)
    np.testing.assert_array_equal(remote.contributions(listed), local.contributions(listed))
    pd.testing.assert_frame_equal(  # as frames: NaN equals NaN there, not in dicts
        pd.DataFrame(remote.records(listed)), pd.DataFrame(local.records(listed)), check_dtype=False
    )
    assert remote.contributions(listed[:0]).shape == (0, len(loaded.model.schema.columns) + 1)


def test_the_daily_list_on_spark_is_the_local_list(
    served: Served, spark: object, tmp_path: Path
) -> None:
    features = served.features.model_copy(update={"offline_engine": SPARK})
    lists = {}
    for engine in ("local", "spark"):
        daily = DailySettings(output_dir=tmp_path / engine, table_rows=50, scoring_engine=engine)
        _, folder, _ = run_daily(DAY, served.settings, daily, features, served.tracking, None)
        lists[engine] = pd.read_parquet(folder / "risk_list.parquet")
    assert len(lists["local"]) > 0
    pd.testing.assert_frame_equal(lists["spark"], lists["local"], check_exact=True)
