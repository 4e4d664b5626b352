"""apply -> build -> training set -> materialize -> online read == latest offline -> teardown,
on the embedded SQLite store and on Feast's Redis store against a real redis-server."""

from __future__ import annotations

import pandas as pd

from features.build import build_directory
from features.labels import churn_entity_rows, label_column
from features.lifecycle.profile import load_tables
from features.online_store import RetainSqliteOnlineStore
from features.repo.feature_views import CHANGE_FEATURES
from features.settings import FeatureSettings
from features.store import apply, materialize, open_store
from features.training_set import training_set
from tests.features.conftest import AS_OF, redis_project

FEATURES = [
    "tickets_180d",
    "bill_change_vs_prev_3m",
    "home_cell_outage_hours_90d",
    "offers_180d",
    *CHANGE_FEATURES,
]


def _round_trip(settings: FeatureSettings) -> None:
    store = open_store(settings)
    apply(store)
    tables = load_tables(settings.lifecycle_dir)
    build_directory(settings.lifecycle_dir, settings.tables_dir, AS_OF, settings.offline_engine)

    rows = churn_entity_rows(
        tables["customers"],
        tables["churn_events"],
        tables["usage_monthly"]["month"].min(),
        AS_OF,
        30,
    )
    train = training_set(store, rows, "churn_v2")
    assert len(train) == len(rows) > 1_000
    assert set(CHANGE_FEATURES) <= set(train.columns)
    assert 0 < train[label_column(30)].mean() < 0.1
    assert train["tenure_days"].notna().all()

    materialize(store, AS_OF)
    activity = pd.read_parquet(settings.tables_dir / "customer_activity.parquet")
    latest = activity[activity["event_timestamp"] == AS_OF].set_index("customer_id").head(100)
    online = (
        store.get_online_features(
            features=store.get_feature_service("churn_v2"),
            entity_rows=[
                {"customer_id": c, "request_epoch_s": int(AS_OF.timestamp())} for c in latest.index
            ],
        )
        .to_df()
        .set_index("customer_id")
    )
    for feature in FEATURES:
        pd.testing.assert_series_equal(
            online[feature].astype("float64"), latest[feature].astype("float64"), check_names=False
        )
    assert latest[list(CHANGE_FEATURES)].notna().any().all()  # compared on values, not nulls
    store.teardown()


def test_round_trip_on_the_embedded_store(project: FeatureSettings) -> None:
    _round_trip(project)
    assert not RetainSqliteOnlineStore.db_path(open_store(project).config).exists()


def test_round_trip_on_redis(project: FeatureSettings, redis_server: str) -> None:
    _round_trip(redis_project(project, redis_server))
