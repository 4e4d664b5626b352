"""Feature tables are refused before a join or a load when one is missing or holds a key twice."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from features.settings import FeatureSettings
from features.store import apply, materialize, open_store
from features.table_checks import FeatureTableError, check_tables
from features.training_set import demand_history
from tests.features.conftest import AS_OF


def test_tables_as_built_pass(project: FeatureSettings) -> None:
    store = open_store(project)
    apply(store)
    check_tables(store)


def test_a_key_held_twice_is_refused_naming_the_table_key_and_values(
    project: FeatureSettings,
) -> None:
    store = open_store(project)
    apply(store)
    path = project.tables_dir / "customer_activity.parquet"
    table = pd.read_parquet(path)
    twice = table.iloc[[5]].assign(tickets_180d=table["tickets_180d"].iloc[5] + 1)
    pd.concat([table, twice], ignore_index=True).to_parquet(path, index=False)
    customer, at = twice["customer_id"].iloc[0], twice["event_timestamp"].iloc[0]
    for step in (lambda: materialize(store, AS_OF), lambda: check_tables(store)):
        with pytest.raises(FeatureTableError) as raised:
            step()
        message = str(raised.value)
        assert "customer_activity.parquet" in message and "customer_id, event_timestamp" in message
        assert f"customer_id={customer}" in message and str(at.year) in message
        assert "holds 2 rows" in message


def test_a_missing_table_is_refused_before_any_join(project: FeatureSettings) -> None:
    store = open_store(project)
    apply(store)
    (project.tables_dir / "region_weekly_demand.parquet").unlink()
    with pytest.raises(
        FeatureTableError, match=r"region_weekly_demand\.parquet of view .* is missing"
    ):
        demand_history(store, project.lifecycle_dir)


@pytest.mark.slow
def test_the_command_says_it_in_one_line(project: FeatureSettings) -> None:
    apply(open_store(project))
    (project.tables_dir / "customer_profile.parquet").unlink()
    env = {
        **os.environ,
        "RETAIN_FEATURES_REPO_PATH": str(project.repo_path),
        "RETAIN_FEATURES_LIFECYCLE_DIR": str(project.lifecycle_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "retain.cli", "features", "materialize"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith("error: feature table customer_profile.parquet")
    assert "Traceback" not in done.stderr
