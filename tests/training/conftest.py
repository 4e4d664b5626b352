"""Training sets built through Feast on simulated data, and an MLflow backend per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_directory
from features.engine import EngineSettings
from features.settings import FeatureSettings
from features.store import apply, open_store
from features.training_set import churn_training_set
from tests.conftest import shared_folder
from tests.features.conftest import AS_OF, REPO
from tests.features.conftest import built_project as built_project  # the fixture, re-exported
from training.settings import TrainingSettings

LABEL = "churned_within_30d"


def _settings(lifecycle: Path, root: Path) -> FeatureSettings:
    return FeatureSettings.model_validate(
        {"repo_path": root / "features" / "repo", "lifecycle_dir": lifecycle}
    )


def _project(lifecycle: Path, root: Path) -> FeatureSettings:
    """Feature tables of `lifecycle` under `root`, laid out like the repository, applied."""
    (root / "features" / "repo").mkdir(parents=True)
    shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", root / "features" / "repo")
    settings = _settings(lifecycle, root)
    build_directory(lifecycle, settings.tables_dir, AS_OF, EngineSettings())
    apply(open_store(settings))
    return settings


def _training_set(lifecycle: Path, root: Path) -> pd.DataFrame:
    settings = _project(lifecycle, root)
    return churn_training_set(open_store(settings), lifecycle, horizon_days=30)


@pytest.fixture(scope="session")
def demo_project(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> FeatureSettings:
    """The 20,000-customer demo data's feature tables, applied to a Feast registry.

    Read-only for tests: the demand model reads its history and snapshots from it.
    """
    root = shared_folder(tmp_path_factory, "demo_project", lambda root: _project(demo_data, root))
    return _settings(demo_data, root)


@pytest.fixture(scope="session")
def demo_training_set(demo_project: FeatureSettings) -> pd.DataFrame:
    """churn_v1 rows of the 20,000-customer demo data (about 290k rows)."""
    return churn_training_set(open_store(demo_project), demo_project.lifecycle_dir, 30)


@pytest.fixture(scope="session")
def small_training_set(
    built_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> pd.DataFrame:
    """churn_v1 rows of the 1,500-customer x 12-month project."""
    return _training_set(
        built_project / "data" / "lifecycle", tmp_path_factory.mktemp("small_features")
    )


@pytest.fixture
def tracking(tmp_path: Path) -> TrainingSettings:
    """Training settings whose MLflow backend and artifacts live in this test's folder."""
    return TrainingSettings.model_validate(
        {
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifact_root": tmp_path / "artifacts",
            "heldout_dir": tmp_path / "heldout",
            "feature_service": "churn_v1",  # what the training-set fixtures hold
        }
    )
