"""Feature tables are refused before a join or a load when one is missing or holds a key twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
import typer

from features.cli import run_materialize
from features.settings import FeatureSettings
from features.store import apply, materialize, open_store
from features.table_checks import FeatureTableError, check_tables, missing_snapshots
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


def test_a_lost_monthly_snapshot_is_refused_naming_the_table_and_month(
    project: FeatureSettings,
) -> None:
    store = open_store(project)
    apply(store)
    path = project.tables_dir / "cell_site_quality.parquet"
    table = pd.read_parquet(path)
    lost = pd.Timestamp("2026-04-01", tz="UTC")
    table[table["event_timestamp"] != lost].to_parquet(path, index=False)
    with pytest.raises(FeatureTableError) as raised:
        check_tables(store)
    message = str(raised.value)
    assert "cell_site_quality.parquet" in message and "lacks 1 monthly snapshot" in message
    assert "2026-04-01" in message and "partition is missing" in message


def test_a_spark_folder_is_read_whole_and_refused_unfinished(project: FeatureSettings) -> None:
    """A table written by Spark is a folder of part files; without the _SUCCESS marker
    Spark writes last, the write stopped part-way and partitions may be missing."""
    store = open_store(project)
    apply(store)
    path = project.tables_dir / "region_weekly_demand.parquet"
    table = pd.read_parquet(path)
    path.unlink()
    path.mkdir()
    weeks = table["week_start"].rank(method="dense").astype(int) % 3  # three parts of weeks
    for part in range(3):
        table[weeks == part].to_parquet(path / f"part-0000{part}.parquet", index=False)
    with pytest.raises(FeatureTableError, match=r"unfinished write .* no _SUCCESS marker"):
        check_tables(store, ["region_weekly_demand"])
    (path / "_SUCCESS").touch()
    check_tables(store, ["region_weekly_demand"])
    (path / "part-00001.parquet").unlink()  # every third week is gone
    with pytest.raises(FeatureTableError, match="weekly snapshot"):
        check_tables(store, ["region_weekly_demand"])


@pytest.mark.parametrize(
    ("stamps", "every", "missing"),
    [
        (["2026-01-01", "2026-02-01", "2026-03-01", "2026-03-17"], "monthly", []),
        (["2026-01-01", "2026-03-01", "2026-03-17"], "monthly", ["2026-02-01"]),
        (["2026-01-05", "2026-01-12", "2026-01-26"], "weekly", ["2026-01-19"]),
        (["2026-01-05"], "weekly", []),
    ],
)
def test_missing_snapshots_are_the_steps_between_first_and_last(
    stamps: list[str], every: str, missing: list[str]
) -> None:
    found = missing_snapshots([pd.Timestamp(s, tz="UTC") for s in stamps], every)
    assert found == [pd.Timestamp(s, tz="UTC") for s in missing]


@pytest.mark.slow
def test_an_unreachable_spark_master_is_one_line_naming_the_setting(
    project: FeatureSettings,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    env = {
        **os.environ,
        "RETAIN_FEATURES_REPO_PATH": str(project.repo_path),
        "RETAIN_FEATURES_LIFECYCLE_DIR": str(project.lifecycle_dir),
        "RETAIN_FEATURES_OFFLINE_ENGINE__KIND": "spark",
        "RETAIN_FEATURES_OFFLINE_ENGINE__SPARK_MASTER": f"spark://127.0.0.1:{port}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "retain.cli", "features", "build"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: cannot reach the Spark master offline_engine.spark_master="
        f"'spark://127.0.0.1:{port}' (127.0.0.1:{port}: Connection refused)"
    ]


def test_materializing_before_apply_says_to_apply(
    project: FeatureSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as ended:
        run_materialize(project)  # a fresh project: Feast's registry holds nothing yet
    assert ended.value.exit_code == 1
    assert "holds no feature views: run `retain features apply` first" in capsys.readouterr().err
