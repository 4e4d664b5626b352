"""The embedded offline store (Feast's DuckDB store, sources read relative to the repository)
against Feast's dask store, the reference: the same training sets, value for value."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore

from features.settings import FeatureSettings
from features.store import apply, open_store
from features.training_set import churn_training_set, demand_history

REFERENCE_STORE = "  type: dask\n"


def _dask_store(project: FeatureSettings) -> FeatureStore:
    """The project's store with Feast's dask offline store instead of ours."""
    ours = project.store_yaml_path.read_text()
    assert "features.offline_store.RetainDuckDBOfflineStore" in ours
    lines = ours.splitlines(keepends=True)
    start = lines.index("offline_store:\n") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith(("  ", "#")))
    yaml = project.repo_path / "dask_feature_store.yaml"
    yaml.write_text("".join([*lines[:start], REFERENCE_STORE, *lines[end:]]))
    return FeatureStore(repo_path=str(project.repo_path), fs_yaml_file=yaml)


def test_training_sets_equal_feasts_dask_join_value_for_value(project: FeatureSettings) -> None:
    store = open_store(project)
    apply(store)
    assert type(store._get_provider().offline_store).__name__ == "RetainDuckDBOfflineStore"
    reference = _dask_store(project)

    ours = churn_training_set(store, project.lifecycle_dir, project.label_horizon_days)
    theirs = churn_training_set(reference, project.lifecycle_dir, project.label_horizon_days)
    assert len(ours) > 10_000 and ours.notna().any().all()
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)

    pd.testing.assert_frame_equal(
        demand_history(store, project.lifecycle_dir),
        demand_history(reference, project.lifecycle_dir),
        check_exact=True,
    )


def test_sources_are_read_relative_to_the_repository_wherever_the_command_runs(
    project: FeatureSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sources' paths (`../../data/features/...`) belong to the repository folder: a
    training set built from another working directory reads the same tables."""
    store = open_store(project)
    apply(store)
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert Path(os.getcwd()) != project.repo_path
    history = demand_history(open_store(project), project.lifecycle_dir)
    assert len(history) > 0 and history["region"].nunique() > 1
