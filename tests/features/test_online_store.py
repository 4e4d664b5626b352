"""Our SQLite online store: byte-compatible keys, bulk writes, Feast's own APIs on top."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from feast import ValueType
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.repo_operations import parse_repo

from features.online_store import RetainSqliteOnlineStore, entity_key_serializer
from features.settings import FeatureSettings
from features.store import apply, definitions, materialize, open_store
from tests.features.conftest import AS_OF, REPO


@pytest.mark.parametrize(
    ("value_type", "value", "field"),
    [
        (ValueType.STRING, "C00000042", "string_val"),
        (ValueType.STRING, "région-Ω", "string_val"),
        (ValueType.INT64, 123456789012, "int64_val"),
    ],
)
def test_fast_entity_keys_are_byte_identical_to_feasts(
    value_type: ValueType, value: object, field: str
) -> None:
    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(**{field: value})])
    expected = serialize_entity_key(key, entity_key_serialization_version=3)
    assert entity_key_serializer(["customer_id"], value_type, 3)(value) == expected


def test_definitions_are_what_feast_finds_in_the_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(REPO)
    found = parse_repo(REPO / "features" / "repo")
    scanned = {
        o.name
        for group in (
            found.entities,
            found.data_sources,
            found.feature_views,
            found.on_demand_feature_views,
            found.feature_services,
        )
        for o in group
    }
    assert scanned - {"__dummy"} == {o.name for o in definitions()}  # Feast adds a dummy entity


def _online_frame(settings: FeatureSettings, ids: list[str]) -> pd.DataFrame:
    store = open_store(settings)
    rows = [{"customer_id": c, "request_epoch_s": int(AS_OF.timestamp())} for c in ids]
    return store.get_online_features(
        features=store.get_feature_service("churn_v2"), entity_rows=rows
    ).to_df()


def _latest_offline(settings: FeatureSettings, ids: list[str]) -> pd.DataFrame:
    activity = pd.read_parquet(settings.tables_dir / "customer_activity.parquet")
    latest = activity.sort_values("event_timestamp").groupby("customer_id").tail(1)
    return latest.set_index("customer_id").loc[ids]


def _assert_same(online: pd.DataFrame, offline: pd.DataFrame) -> None:
    online = online.set_index("customer_id")
    for column in offline.columns.drop("event_timestamp"):
        pd.testing.assert_series_equal(
            online[column].astype("float64"),
            offline[column].astype("float64"),
            check_names=False,
            obj=column,
        )


def test_bulk_and_feast_materialization_give_the_same_online_values(
    project: FeatureSettings,
) -> None:
    store = open_store(project)
    apply(store)
    ids = (
        pd.read_parquet(project.tables_dir / "customer_activity.parquet")
        .query("event_timestamp == @AS_OF")["customer_id"]
        .sample(50, random_state=1)
        .tolist()
    )

    materialize(store, AS_OF)  # our bulk path
    bulk = _online_frame(project, ids)
    _assert_same(bulk, _latest_offline(project, ids))

    store.teardown()
    store = open_store(project)
    apply(store)
    store.materialize(
        start_date=datetime(2020, 1, 1, tzinfo=UTC), end_date=AS_OF.to_pydatetime()
    )  # Feast's path
    _assert_same(_online_frame(project, ids), _latest_offline(project, ids))
    pd.testing.assert_frame_equal(bulk, _online_frame(project, ids))


def test_one_row_per_entity_and_newer_rows_win(project: FeatureSettings) -> None:
    store = open_store(project)
    apply(store)
    materialize(store, AS_OF)
    db = RetainSqliteOnlineStore.db_path(store.config)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT entity_key) FROM retain_customer_activity"
        ).fetchone()
        assert rows[0] == rows[1] > 0
        (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
        assert journal == "wal"
    # a backfill of older values (as of two months earlier) must not overwrite newer ones
    materialize(store, AS_OF - timedelta(days=62))
    latest = pd.read_parquet(project.tables_dir / "customer_activity.parquet").query(
        "event_timestamp == @AS_OF"
    )
    sample = latest["customer_id"].head(20).tolist()
    _assert_same(_online_frame(project, sample), _latest_offline(project, sample))


@pytest.mark.slow
def test_feast_cli_works_on_our_store(project: FeatureSettings) -> None:
    """`feast apply` over the repository's definitions, then materialize-incremental,
    materialize and teardown on the project, all through Feast's own command line."""
    # the repository's definitions with this project's registry and online store: the
    # environment file names them by absolute path, as they are not under features/
    data = project.repo_path.parents[1] / "data" / "feast"
    yaml = project.repo_path / "cli_feature_store.yaml"
    yaml.write_text(
        (project.repo_path / "feature_store.yaml")
        .read_text()
        .replace("../../data/feast/registry.db", str(data / "registry.db"))
        .replace("../../data/feast/online.db", str(data / "online.db"))
    )
    feast = [sys.executable, "-m", "feast.cli.cli"]

    def run(*args: str, cwd: Path = REPO) -> str:
        result = subprocess.run([*feast, *args], capture_output=True, text=True, cwd=cwd)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    # apply scans the repository's definition modules (with this project's registry)
    run("-c", "features", "-f", str(yaml), "apply")
    # a full load up to a month before as-of, then the increment from there to as-of
    month_before = (AS_OF - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
    run("-c", str(project.repo_path), "materialize", "2020-01-01T00:00:00", month_before)
    run(
        "-c", str(project.repo_path), "materialize-incremental", AS_OF.strftime("%Y-%m-%dT%H:%M:%S")
    )
    ids = (
        pd.read_parquet(project.tables_dir / "customer_activity.parquet")
        .query("event_timestamp == @AS_OF")["customer_id"]
        .head(10)
        .tolist()
    )
    _assert_same(_online_frame(project, ids), _latest_offline(project, ids))
    db = RetainSqliteOnlineStore.db_path(open_store(project).config)
    assert db.exists()
    run("-c", str(project.repo_path), "teardown")
    assert not db.exists()


def test_bulk_writes_refuse_a_column_of_the_wrong_type(project: FeatureSettings) -> None:
    store = open_store(project)
    apply(store)
    view = store.get_feature_view("cell_site_quality")
    table = pa.table(
        {
            "cell_site_id": ["S00001"],
            "event_timestamp": pa.array([AS_OF.to_pydatetime()], pa.timestamp("ns", tz="UTC")),
            **{
                f.name: pa.array(["oops"]) if f.name == "outage_events_30d" else pa.array([1.0])
                for f in view.features
            },
        }
    )
    online = store._get_provider().online_store
    with pytest.raises(
        TypeError, match=r"cell_site_quality\.outage_events_30d: the offline column is string"
    ):
        online.write_arrow(store.config, view, table, "event_timestamp")
    # a nanosecond stamp is truncated to microseconds, not refused
    fixed = table.set_column(
        table.schema.get_field_index("outage_events_30d"), "outage_events_30d", pa.array([2])
    )
    fixed = fixed.set_column(
        1, "event_timestamp", pa.array([AS_OF.value + 7], pa.timestamp("ns", tz="UTC"))
    )
    assert online.write_arrow(store.config, view, fixed, "event_timestamp") == 1


def test_a_store_opened_outside_the_project_says_where_it_looked(tmp_path: Path) -> None:
    settings = FeatureSettings(repo_path=tmp_path / "features" / "repo")
    with pytest.raises(FileNotFoundError, match="no Feast repository configuration there") as no:
        open_store(settings)
    assert str(settings.store_yaml_path) in str(no.value)
    assert "RETAIN_FEATURES_REPO_PATH" in str(no.value)
