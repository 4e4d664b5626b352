"""A small Feast project in a temporary folder, laid out like the repository:
<root>/features/repo/feature_store.yaml (the repository's own), <root>/data/{lifecycle,features}."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_feature_tables
from features.lifecycle.profile import load_tables
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.settings import FeatureSettings
from features.store import write_feature_tables

REPO = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2026-11-01", tz="UTC")


def project_settings(root: Path) -> FeatureSettings:
    return FeatureSettings.model_validate(
        {
            "repo_path": root / "features" / "repo",
            "lifecycle_dir": root / "data" / "lifecycle",
            "training_dir": root / "data" / "training",
        }
    )


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lifecycle data (1,500 customers x 12 months) and its feature tables, built once."""
    root = tmp_path_factory.mktemp("project")
    generate(
        DataSettings.model_validate(
            {"out_dir": root / "data" / "lifecycle", "customers": 1_500, "months": 12, "seed": 4}
        )
    )
    (root / "features" / "repo").mkdir(parents=True)
    shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", root / "features" / "repo")
    settings = project_settings(root)
    tables = load_tables(settings.lifecycle_dir)
    write_feature_tables(build_feature_tables(tables, AS_OF), settings.tables_dir)
    return root


@pytest.fixture
def project(built_project: Path, tmp_path: Path) -> FeatureSettings:
    """A private copy of the built project: a test may apply, materialize and tear down."""
    root = Path(shutil.copytree(built_project, tmp_path / "project"))
    return project_settings(root)
