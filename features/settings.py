"""Settings of the feature stage, loaded from configs/features.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from features.engine import EngineSettings
from features.repo.data_sources import TABLES_DIR
from features.sampling import NegativeSampling
from retain.base.settings import StageSettings


class FeatureSettings(StageSettings):
    """Where the Feast repository, the lifecycle data and the outputs are."""

    config_file: ClassVar[str] = "features.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_FEATURES_")

    repo_path: Path = Field(
        Path("features/repo"), description="The Feast repository (definitions only)."
    )
    store_yaml: Path | None = Field(
        None,
        description="The environment's feature_store.yaml; default: the repository's own "
        "(embedded SQLite). features/repo/envs/redis/feature_store.yaml selects Redis.",
    )
    lifecycle_dir: Path = Field(
        Path("data/lifecycle"), description="The lifecycle tables to build from."
    )
    label_horizon_days: int = Field(
        30, ge=1, le=365, description="Label: churned within this many days."
    )
    training_dir: Path = Field(
        Path("data/training"), description="Where training sets are written."
    )
    negative_sampling: NegativeSampling = Field(
        default_factory=NegativeSampling,
        description="Churn training rows: a share of the older stayers, weighted (off: rate 1).",
    )
    offline_engine: EngineSettings = Field(
        default_factory=EngineSettings,
        description="The engine that builds the feature tables: DuckDB or Spark.",
    )

    @property
    def store_yaml_path(self) -> Path:
        return self.store_yaml or self.repo_path / "feature_store.yaml"

    @property
    def tables_dir(self) -> Path:
        """Where the feature tables live: fixed relative to the Feast repository."""
        return Path(os.path.normpath(self.repo_path / TABLES_DIR))
