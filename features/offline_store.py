"""Feast's DuckDB offline store, reading the repository's parquet sources where they are.

Point-in-time training sets are joined by DuckDB (through Feast's ibis implementation): the
join streams over the parquet files in DuckDB's own memory, with a limit, where Feast's
dask store materializes every feature table and every intermediate join in pandas.

The one change to Feast's `DuckDBOfflineStore`: a FileSource path is resolved against the
Feast repository (the folder holding feature_store.yaml), as Feast's other stores and
`feast apply` do. Feast's DuckDB reader resolves it against the process's working
directory, so `../../data/features/x.parquet` would point elsewhere whenever the command
runs anywhere but inside the repository folder.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any, Literal

import ibis
import pandas as pd
from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores import duckdb as feast_duckdb
from feast.infra.offline_stores.duckdb import DuckDBOfflineStore, DuckDBOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.ibis import (
    get_historical_features_ibis,
    pull_all_from_table_or_query_ibis,
    pull_latest_from_table_or_query_ibis,
)
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import RepoConfig
from ibis.expr.types import Table


class RetainDuckDBOfflineStoreConfig(DuckDBOfflineStoreConfig):
    """`offline_store:` section of feature_store.yaml for this store."""

    type: Literal["features.offline_store.RetainDuckDBOfflineStore"] = (  # type: ignore[assignment]  # narrows Feast's str
        "features.offline_store.RetainDuckDBOfflineStore"
    )


def read_source(data_source: DataSource, repo_path: str) -> Table:
    """A local parquet FileSource read from its path relative to the repository; any
    other source (remote, Delta, Iceberg) as Feast's DuckDB store reads it."""
    if isinstance(data_source, FileSource) and data_source.path.endswith(".parquet"):
        path = FileSource.get_uri_for_file_path(repo_path, data_source.path)
        if "://" not in path:
            # a table built by Spark is a folder of part files
            return ibis.read_parquet(f"{path}/*.parquet" if os.path.isdir(path) else path)
    return feast_duckdb._read_data_source(data_source, repo_path)


def _io(config: RepoConfig) -> dict[str, Any]:
    """How Feast's ibis functions read and write sources here: ours reads, Feast's writes."""
    store = config.offline_store
    return {
        "data_source_reader": read_source,
        "data_source_writer": feast_duckdb._write_data_source,
        "staging_location": store.staging_location,
        "staging_location_endpoint_override": store.staging_location_endpoint_override,
    }


class RetainDuckDBOfflineStore(DuckDBOfflineStore):
    @staticmethod
    def pull_latest_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None,
        start_date: datetime,
        end_date: datetime,
    ) -> RetrievalJob:
        return pull_latest_from_table_or_query_ibis(
            config=config,
            data_source=data_source,
            join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start_date=start_date,
            end_date=end_date,
            **_io(config),
        )

    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        return get_historical_features_ibis(
            config=config,
            feature_views=feature_views,
            feature_refs=feature_refs,
            entity_df=entity_df,
            registry=registry,
            project=project,
            full_feature_names=full_feature_names,
            **_io(config),
            filter_by_created_timestamp=filter_by_created_timestamp,
        )

    @staticmethod
    def pull_all_from_table_or_query(
        config: RepoConfig,
        data_source: DataSource,
        join_key_columns: list[str],
        feature_name_columns: list[str],
        timestamp_field: str,
        created_timestamp_column: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
    ) -> RetrievalJob:
        return pull_all_from_table_or_query_ibis(
            config=config,
            data_source=data_source,
            join_key_columns=join_key_columns,
            feature_name_columns=feature_name_columns,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            start_date=start_date,
            end_date=end_date,
            **_io(config),
        )
