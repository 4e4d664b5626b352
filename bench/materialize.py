"""Benchmark: materializing the online store, Feast's stock SQLite store vs ours.

On the same feature tables (`retain data generate` + the feature build, in a temp dir), it
times three ways of loading the latest value of every online feature view online:

- stock: Feast's SQLite store (one row per entity and feature) loaded by
  `FeatureStore.materialize(1970-01-01, as_of)`, the Python call behind `feast materialize`;
- ours bulk: our store (features/online_store.py, one row per entity) loaded by
  `features.store.materialize(store, as_of)`, the path of `retain features materialize`
  (Arrow columns straight into SQLite, no protobuf);
- ours via Feast: our store loaded by Feast's `FeatureStore.materialize` (protobuf rows
  through `online_write_batch`): proves Feast's API works on it, and splits the gain
  between the store layout and skipping protobuf.

Each variant is one call over all online views; per-view times come from a timing wrapper
around the per-view step. Each runs 3 times (interleaved) on a fresh online DB and
registry (definitions re-applied, not timed); medians are reported. Entity rows are counted
afterwards in the SQLite file. Headline: customer_activity (38 features).

    .venv/bin/python bench/materialize.py                    # 20,000 customers x 24 months
    .venv/bin/python bench/materialize.py --customers 5000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pyarrow.parquet as pq
import yaml
from feast import FeatureStore, FeatureView

import features.store as store_module
from features.build import build_directory
from features.engine import EngineSettings
from features.lifecycle.validate import resolve_as_of
from features.store import definitions

REPO_YAML = Path(__file__).resolve().parents[1] / "features" / "repo" / "feature_store.yaml"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HEADLINE = "customer_activity"
# (label, Feast repo, bulk path?): repo "stock" is Feast's SQLite store, "ours" our store
VARIANTS = [
    ("stock", "stock", False),
    ("ours bulk", "ours", True),
    ("ours via Feast", "ours", False),
]
# printed by every apply and read that touches the on-demand view: noise between the figures
warnings.filterwarnings("ignore", message="On demand feature view is an experimental")


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Feast's banners and progress bars (they would land in the timings' output)."""
    with open(os.devnull, "w") as null, redirect_stdout(null), redirect_stderr(null):
        yield


def build_tables(root: Path, customers: int, seed: int) -> pd.Timestamp:
    """Simulate lifecycle data and build the feature tables into root/data; returns as-of."""
    lifecycle = root / "data" / "lifecycle"
    command = [sys.executable, "-m", "retain.cli", "data", "generate", "--out", str(lifecycle)]
    command += ["--customers", str(customers), "--months", "24", "--seed", str(seed)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    as_of = resolve_as_of(lifecycle, None)
    build_directory(lifecycle, root / "data" / "features", as_of, EngineSettings())
    return as_of


def make_repo(root: Path, name: str) -> Path:
    """Feast repo root/<name>/repo (data/ two levels up, as for features/repo), with its own
    registry and online DB."""
    config = yaml.safe_load(REPO_YAML.read_text())
    config["registry"]["path"] = f"../../data/feast_{name}/registry.db"
    config["online_store"]["path"] = f"../../data/feast_{name}/online.db"
    if name == "stock":
        config["online_store"] = {"type": "sqlite", "path": config["online_store"]["path"]}
    repo = root / name / "repo"  # laid out like features/repo: data/ two levels up
    repo.mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def fresh_store(repo: Path) -> FeatureStore:
    """Delete the repo's registry and online DB, reopen it and apply the definitions."""
    shutil.rmtree(repo.parents[1] / "data" / f"feast_{repo.parent.name}", ignore_errors=True)
    store = FeatureStore(repo_path=str(repo))
    with quiet():
        store.apply(definitions())
    return store


def count_rows(store: FeatureStore) -> dict[str, tuple[int, int]]:
    """(entities, SQLite rows) per view, read from the online DB file itself."""
    path = Path(store.repo_path) / store.config.online_store.path
    count = 'SELECT COUNT(DISTINCT entity_key), COUNT(*) FROM "{}"'
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t.removeprefix(f"{store.project}_"): conn.execute(count.format(t)).fetchone()
            for t in tables
        }


@dataclass
class Run:
    total: float  # seconds of the one materialize call over all views
    views: dict[str, float]  # seconds of each view's step inside it
    rows: dict[str, tuple[int, int]]  # (entities, SQLite rows) per view afterwards


def measure(store: FeatureStore, bulk: bool, as_of: pd.Timestamp) -> Run:
    """Time one materialize call over all online views, and each view's step inside it."""
    views: dict[str, float] = {}
    # the per-view step: features.store._bulk_materialize(store, online_store, view, until),
    # or Feast's provider.materialize_single_feature_view(..., feature_view=view, ...)
    target: Any = store_module if bulk else store._get_provider()
    name = "_bulk_materialize" if bulk else "materialize_single_feature_view"
    step = getattr(target, name)

    def timed_step(*args: Any, **kwargs: Any) -> Any:
        view = next(a for a in (*args, *kwargs.values()) if isinstance(a, FeatureView))
        started = time.perf_counter()
        try:
            return step(*args, **kwargs)
        finally:
            views[view.name] = time.perf_counter() - started

    with mock.patch.object(target, name, timed_step), quiet():
        started = time.perf_counter()
        if bulk:
            store_module.materialize(store, as_of)
        else:
            store.materialize(EPOCH, as_of.to_pydatetime())
        total = time.perf_counter() - started
    assert sorted(views) == sorted(v.name for v in store.list_feature_views() if v.online)
    return Run(total, views, count_rows(store))


def report(runs: dict[str, list[Run]]) -> None:
    held = {k: [{v: e for v, (e, _) in r.rows.items()} for r in rs] for k, rs in runs.items()}
    for label, counts in held.items():  # every run must hold the entities stock holds
        if any(c != held["stock"][0] for c in counts):
            print(f"WARNING: {label} holds {counts}, stock {held['stock'][0]} entities")
    views = sorted(runs["stock"][0].views)
    scopes = [HEADLINE, *(v for v in views if v != HEADLINE), f"all {len(views)} views"]
    print(
        f"\n{'variant':<15} {'view':<22} {'seconds':>8} {'entities':>9} {'db rows':>9} "
        f"{'entities/s':>11} {'vs stock':>9}"
    )
    rate: dict[tuple[str, str], float] = {}
    for scope in scopes:
        for label, _, _ in VARIANTS:
            rs = runs[label]
            if scope in views:  # the view's own step
                seconds = statistics.median(r.views[scope] for r in rs)
                entities, db_rows = rs[0].rows[scope]
            else:  # the whole call, fixed overheads (registry, offline reads) included
                seconds = statistics.median(r.total for r in rs)
                entities, db_rows = (sum(col) for col in zip(*rs[0].rows.values(), strict=True))
            rate[label, scope] = entities / seconds
            print(
                f"{label:<15} {scope:<22} {seconds:>8.3f} {entities:>9,} {db_rows:>9,} "
                f"{rate[label, scope]:>11,.0f} {rate[label, scope] / rate['stock', scope]:>8.1f}x"
            )
        print()
    stock = rate["stock", HEADLINE]
    for label, name in (("ours via Feast", "ours via feast"), ("ours bulk", "ours")):
        ours = rate[label, HEADLINE]
        print(
            f"materialize: {name} {ours:,.0f} entities/s vs stock {stock:,.0f} entities/s "
            f"-> {ours / stock:.1f}x ({HEADLINE}, median of {len(runs['stock'])})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="retain-bench-materialize-"))
    try:
        started = time.perf_counter()
        as_of = build_tables(root, args.customers, args.seed)
        sizes = ", ".join(
            f"{p.stem} {pq.ParquetFile(p).metadata.num_rows:,}"
            for p in sorted((root / "data" / "features").glob("*.parquet"))
        )
        print(
            f"{args.customers:,} customers x 24 months, as of {as_of:%Y-%m-%d}; feature tables "
            f"built in {time.perf_counter() - started:.1f}s: {sizes}"
        )
        repos = {name: make_repo(root, name) for name in ("stock", "ours")}
        runs: dict[str, list[Run]] = {label: [] for label, _, _ in VARIANTS}
        for repeat in range(args.repeats):
            for label, repo, bulk in VARIANTS:  # interleaved: drift hits every variant alike
                store = fresh_store(repos[repo])
                runs[label].append(run := measure(store, bulk, as_of))
                with quiet():
                    store.teardown()
                print(f"  run {repeat + 1}/{args.repeats} {label:<15} {run.total:.2f}s", flush=True)
        report(runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.2f} GiB; {os.cpu_count()} cores; sqlite {sqlite3.sqlite_version}")


if __name__ == "__main__":
    main()
