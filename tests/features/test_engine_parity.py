"""The feature pipeline gives the pandas reference's values on every engine: DuckDB (the
embedded default) and Spark (local[2]), on a simulated world and on one with events
planted on every window's edge."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_directory
from features.engine import EngineSettings, spark_session
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.lifecycle.validate import resolve_as_of
from features.snapshots import FEATURE_TABLES
from retain.base.settings import load_settings
from tests.features.conftest import AS_OF
from tests.features.parity import assert_same_table, plant_edges, read_built, reference_tables

EDGE = pd.Timestamp("2026-06-01", tz="UTC")


@pytest.fixture(scope="module")
def worlds(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The simulated world as generated, and a copy with edge events planted around EDGE."""
    planted = tmp_path_factory.mktemp("planted") / "lifecycle"
    shutil.copytree(built_project / "data" / "lifecycle", planted)
    plant_edges(planted, EDGE)
    return {"simulated": built_project / "data" / "lifecycle", "planted": planted}


@pytest.fixture(scope="module")
def references(worlds: dict[str, Path]) -> dict[str, dict[str, pd.DataFrame]]:
    return {name: reference_tables(path, AS_OF) for name, path in worlds.items()}


def test_the_planted_edges_reach_the_features(
    references: dict[str, dict[str, pd.DataFrame]],
) -> None:
    """The planted world differs from the simulated one where the edges were planted (so
    the parity below is tested on them)."""
    planted = references["planted"]["customer_activity"]
    edge = planted[(planted["event_timestamp"] == EDGE) & (planted["unresolved_tickets"] >= 3)]
    assert not edge.empty
    at_edge = planted[planted["event_timestamp"] == EDGE]
    no_base = at_edge[(at_edge["bill_30d"] == 50.0) & at_edge["bill_change_vs_prev_3m"].isna()]
    assert len(no_base) == 1  # x / 0: no ratio rather than infinity
    simulated = references["simulated"]["customer_activity"]
    assert len(planted) != len(simulated)  # a churn and a signup at EDGE


@pytest.mark.parametrize("world", ["simulated", "planted"])
def test_duckdb_builds_the_reference_values(
    world: str,
    worlds: dict[str, Path],
    references: dict[str, dict[str, pd.DataFrame]],
    tmp_path: Path,
) -> None:
    counts = build_directory(worlds[world], tmp_path, AS_OF, EngineSettings())
    built = read_built(tmp_path)
    for name in FEATURE_TABLES:
        assert counts[name] == len(references[world][name])
        assert_same_table(name, references[world][name], built[name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.parquet" for n in FEATURE_TABLES
    )


@pytest.fixture(scope="module")
def spark() -> Iterator[EngineSettings]:
    if shutil.which("java") is None:
        pytest.skip("Java is not installed (make system-deps installs openjdk-17-jre-headless)")
    settings = EngineSettings(kind="spark", spark_master="local[2]")
    session = spark_session(settings)
    yield settings
    session.stop()


@pytest.mark.slow
@pytest.mark.parametrize("world", ["simulated", "planted"])
def test_spark_builds_the_reference_values(
    world: str,
    spark: EngineSettings,
    worlds: dict[str, Path],
    references: dict[str, dict[str, pd.DataFrame]],
    tmp_path: Path,
) -> None:
    build_directory(worlds[world], tmp_path, AS_OF, spark)
    built = read_built(tmp_path)
    for name in FEATURE_TABLES:
        assert_same_table(name, references[world][name], built[name])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    """The demo world (configs/data.yaml: 20,000 customers x 24 months, seed 7) and its
    reference tables."""
    settings = load_settings(DataSettings, {"out_dir": tmp_path_factory.mktemp("demo")})
    generate(settings)
    as_of = pd.Timestamp(settings.as_of).tz_convert("UTC")
    return settings.out_dir, reference_tables(settings.out_dir, as_of)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_the_engines_build_the_reference_values_on_the_demo_world(
    engine: str, demo: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path
) -> None:
    lifecycle, reference = demo
    if engine == "spark" and shutil.which("java") is None:
        pytest.skip("Java is not installed (make system-deps installs openjdk-17-jre-headless)")
    as_of = resolve_as_of(lifecycle, None)
    build_directory(lifecycle, tmp_path, as_of, EngineSettings(kind=engine))
    built = read_built(tmp_path)
    assert len(built["customer_activity"]) > 250_000
    for name in FEATURE_TABLES:
        assert_same_table(name, reference[name], built[name])
