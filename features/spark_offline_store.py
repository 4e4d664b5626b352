"""Feast's Spark offline store over the repository's parquet sources.

Training sets joined by Spark (a cluster, or `local[N]`), selected by feature_store.yaml
alone (features/repo/envs/spark/). Feast's `SparkOfflineStore` reads only `SparkSource`s,
while the repository declares its feature tables once as `FileSource`s (the DuckDB store
and the bulk materialization read them so). This store hands Spark each parquet
FileSource as the equivalent SparkSource, its path resolved against the Feast repository
as `feast apply` resolves it; every other source goes to Feast's store unchanged.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any, Literal

from feast.data_source import DataSource
from feast.feature_view import FeatureView
from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
    SparkOfflineStore,
    SparkOfflineStoreConfig,
)
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob
from feast.infra.registry.base_registry import BaseRegistry
from feast.repo_config import RepoConfig


class RetainSparkOfflineStoreConfig(SparkOfflineStoreConfig):
    """`offline_store:` section of feature_store.yaml for this store."""

    type: Literal["features.spark_offline_store.RetainSparkOfflineStore"] = (  # type: ignore[assignment]  # narrows Feast's str
        "features.spark_offline_store.RetainSparkOfflineStore"
    )


def as_spark_source(source: DataSource, repo_path: Any) -> DataSource:
    """A parquet FileSource as the SparkSource reading the same files; others unchanged."""
    if not isinstance(source, FileSource):
        return source
    return SparkSource(
        name=source.name,
        path=FileSource.get_uri_for_file_path(repo_path, source.path),
        file_format="parquet",
        timestamp_field=source.timestamp_field,
        created_timestamp_column=source.created_timestamp_column,
        field_mapping=source.field_mapping,
        description=source.description,
    )


def _on_spark(view: FeatureView, repo_path: Any) -> FeatureView:
    moved = copy.copy(view)
    if view.batch_source is not None:
        moved.batch_source = as_spark_source(view.batch_source, repo_path)
    return moved


class RetainSparkOfflineStore(SparkOfflineStore):
    @staticmethod
    def get_historical_features(
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: Any,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        filter_by_created_timestamp: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        views = [_on_spark(view, config.repo_path) for view in feature_views]
        return SparkOfflineStore.get_historical_features(
            config,
            views,
            feature_refs,
            entity_df,
            registry,
            project,
            full_feature_names,
            filter_by_created_timestamp,
            **kwargs,
        )

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
        return SparkOfflineStore.pull_latest_from_table_or_query(
            config,
            as_spark_source(data_source, config.repo_path),
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
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
        return SparkOfflineStore.pull_all_from_table_or_query(
            config,
            as_spark_source(data_source, config.repo_path),
            join_key_columns,
            feature_name_columns,
            timestamp_field,
            created_timestamp_column,
            start_date,
            end_date,
        )
