"""Feature-store operations: apply the definitions, write feature tables, materialize.

Feast's FeatureStore is opened from the configured environment (feature_store.yaml) over
the repository's definitions. Materialization takes a bulk path when the online store is
ours (`RetainSqliteOnlineStore.write_arrow`) and Feast's own `materialize` otherwise
(Redis), and records the materialized interval in the registry either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore, FeatureView, FileSource

from features.online_store import RetainSqliteOnlineStore
from features.repo import data_sources, entities, feature_services, feature_views
from features.settings import FeatureSettings
from features.sql_names import quote_identifier
from features.table_checks import check_tables


def open_store(settings: FeatureSettings) -> FeatureStore:
    if not settings.store_yaml_path.is_file():  # Feast would say only "no such file"
        raise FileNotFoundError(
            f"{settings.store_yaml_path}: no Feast repository configuration there; run retain "
            "from the project's folder, or set RETAIN_FEATURES_REPO_PATH to the repository"
        )
    return FeatureStore(repo_path=str(settings.repo_path), fs_yaml_file=settings.store_yaml_path)


def definitions() -> list[Any]:
    """Every Feast object of the repository: what `feast apply` finds by scanning it.

    Listed explicitly so `retain features apply` needs no file scanning; a test checks
    the list against Feast's own scan of the repository.
    """
    return [
        entities.customer,
        entities.cell_site,
        entities.region,
        data_sources.customer_profile_source,
        data_sources.customer_activity_source,
        data_sources.cell_site_quality_source,
        data_sources.region_weekly_demand_source,
        data_sources.request_time,
        feature_views.customer_profile,
        feature_views.customer_contact,
        feature_views.customer_activity,
        feature_views.customer_request_time,
        feature_views.cell_site_quality,
        feature_views.region_weekly_demand,
        feature_services.churn_v1,
        feature_services.churn_v2,
        feature_services.demand_v1,
        feature_services.demand_v2,
    ]


def apply(store: FeatureStore) -> list[str]:
    """Register the definitions and create their online tables; returns the objects' names."""
    objects = definitions()
    store.apply(objects)
    return sorted(f"{type(o).__name__}:{o.name}" for o in objects)


@dataclass(frozen=True)
class Materialized:
    view: str
    entities: int
    latest: pd.Timestamp | None


def latest_rows(
    table: pa.Table, join_keys: list[str], timestamp_field: str, until: pd.Timestamp
) -> pa.Table:
    """The latest row per entity with a timestamp at or before `until`."""
    bound = pa.scalar(until.to_pydatetime(), table.schema.field(timestamp_field).type)
    table = table.filter(pc.less_equal(table.column(timestamp_field), bound))
    newest = table.group_by(join_keys).aggregate([(timestamp_field, "max")])
    joined = table.join(newest, keys=join_keys)
    is_newest = pc.equal(joined.column(timestamp_field), joined.column(f"{timestamp_field}_max"))
    return joined.filter(is_newest).drop_columns([f"{timestamp_field}_max"])


def latest_rows_streamed(
    location: str,
    columns: list[str],
    join_keys: list[str],
    timestamp_field: str,
    until: pd.Timestamp,
    memory_limit: str = "4GB",
) -> pa.Table:
    """`latest_rows` computed by DuckDB over the parquet file (or a folder's part files):
    the newest instant per entity by a hash aggregate, then one pass keeping the rows at it,
    so memory holds one row per entity rather than the whole history (15 million activity
    rows at a million customers). A test holds it equal to `latest_rows`."""
    keys = ", ".join(quote_identifier(k) for k in join_keys)
    ts = quote_identifier(timestamp_field)
    selected = ", ".join(f"t.{quote_identifier(c)}" for c in columns)
    on = " AND ".join(f"t.{quote_identifier(k)} = n.{quote_identifier(k)}" for k in join_keys)
    query = (
        f"WITH t AS (SELECT * FROM read_parquet(?) WHERE {ts} <= ?), "
        f"n AS (SELECT {keys}, max({ts}) AS newest FROM t GROUP BY {keys}) "
        f"SELECT {selected} FROM t JOIN n ON {on} AND t.{ts} = n.newest"
    )
    with duckdb.connect(config={"memory_limit": memory_limit}) as con:
        return con.sql(query, params=[location, until.to_pydatetime()]).to_arrow_table()


def materialize(
    store: FeatureStore, until: pd.Timestamp, memory_limit: str = "4GB"
) -> list[Materialized]:
    """Load the latest value (at or before `until`) of every online feature view, once its
    feature tables are checked (present, each key at most once). `memory_limit` bounds
    DuckDB's reading of the latest rows."""
    check_tables(store)
    online_store = store._get_provider().online_store
    results = []
    for view in store.list_feature_views():
        if not view.online:
            continue
        if not isinstance(online_store, RetainSqliteOnlineStore):
            store.materialize(
                start_date=pd.Timestamp(0, tz="UTC").to_pydatetime(),
                end_date=until.to_pydatetime(),
                feature_views=[view.name],
            )
            results.append(Materialized(view.name, -1, until))
            continue
        results.append(_bulk_materialize(store, online_store, view, until, memory_limit))
    return results


def _bulk_materialize(
    store: FeatureStore,
    online_store: RetainSqliteOnlineStore,
    view: FeatureView,
    until: pd.Timestamp,
    memory_limit: str,
) -> Materialized:
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise TypeError(
            f"{view.name}: bulk materialization reads parquet FileSources, not {source!r}"
        )
    path = source.get_uri_for_file_path(store.config.repo_path, source.path)
    join_keys = [c.name for c in view.entity_columns]
    columns = [*join_keys, source.timestamp_field, *(f.name for f in view.features)]
    location = f"{path}/*.parquet" if os.path.isdir(path) else path  # a Spark folder
    latest = latest_rows_streamed(
        location, columns, join_keys, source.timestamp_field, until, memory_limit
    )
    written = online_store.write_arrow(store.config, view, latest, source.timestamp_field)
    newest = pc.max(latest.column(source.timestamp_field)).as_py() if written else None
    if newest is not None:
        oldest = pc.min(latest.column(source.timestamp_field)).as_py()
        store.registry.apply_materialization(view, store.project, oldest, until.to_pydatetime())
    return Materialized(view.name, written, pd.Timestamp(newest) if newest else None)
