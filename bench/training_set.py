"""Benchmark: the churn training set through our DuckDB offline store vs Feast's dask store.

For each size a world is simulated (`--months` months, seed `--seed`), validated tables
built into feature tables, and the Feast definitions applied in a temporary project laid
out like the repository. Then `retain features training-set`'s work (labelled entity rows
from the lifecycle tables, Feast's point-in-time join of the churn_v1 FeatureService) runs
once per engine, each in a child process of its own:

- ours: `features.offline_store.RetainDuckDBOfflineStore` (the repository's
  feature_store.yaml), the join run by DuckDB;
- dask: the same feature_store.yaml with Feast's `type: dask` offline store.

Wall time and peak RSS are the child's. A child whose resident memory passes
`--memory-cap-gb` is killed (as the kernel would on a machine of that size) and reported
so. The two results must be equal value for value where both finish.

    .venv/bin/python bench/training_set.py                              # 20k and 50k: ~6 minutes
    .venv/bin/python bench/training_set.py --customers 20000 100000 --memory-cap-gb 20
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.settings import FeatureSettings  # noqa: E402

ENGINES = ("ours", "dask")


def build(root: Path, customers: int, months: int, seed: int) -> dict[str, float]:
    """A project under root (data/lifecycle, data/features, features/repo), applied."""
    from features.build import build_directory
    from features.engine import EngineSettings
    from features.lifecycle.settings import DataSettings
    from features.lifecycle.simulator import generate
    from features.lifecycle.validate import resolve_as_of
    from features.store import apply, open_store

    started = time.perf_counter()
    lifecycle = root / "data" / "lifecycle"
    generate(
        DataSettings.model_validate(
            {"out_dir": lifecycle, "customers": customers, "months": months, "seed": seed}
        )
    )
    generated = time.perf_counter()
    repo = root / "features" / "repo"
    repo.mkdir(parents=True)
    ours = (ROOT / "features" / "repo" / "feature_store.yaml").read_text()
    (repo / "feature_store.yaml").write_text(ours)
    (repo / "dask_feature_store.yaml").write_text(_with_dask(ours))
    settings = _settings(root)
    build_directory(
        lifecycle, settings.tables_dir, resolve_as_of(lifecycle, None), EngineSettings()
    )
    apply(open_store(settings))
    return {"generate_s": generated - started, "build_s": time.perf_counter() - generated}


def _with_dask(yaml: str) -> str:
    """The feature_store.yaml with Feast's dask offline store in place of ours."""
    lines = yaml.splitlines(keepends=True)
    start = lines.index("offline_store:\n") + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith(("  ", "#")))
    return "".join([*lines[:start], "  type: dask\n", *lines[end:]])


def _settings(root: Path, engine: str = "ours") -> FeatureSettings:
    repo = root / "features" / "repo"
    yaml = "dask_feature_store.yaml" if engine == "dask" else "feature_store.yaml"
    return FeatureSettings.model_validate(
        {"repo_path": repo, "store_yaml": repo / yaml, "lifecycle_dir": root / "data" / "lifecycle"}
    )


def child(engine: str, root: Path, out: Path) -> dict[str, float]:
    """One training set, in this (child) process."""
    from features.store import open_store
    from features.training_set import churn_training_set

    settings = _settings(root, engine)
    started = time.perf_counter()
    frame = churn_training_set(
        open_store(settings), settings.lifecycle_dir, settings.label_horizon_days
    )
    seconds = time.perf_counter() - started
    frame.to_parquet(out, index=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": seconds, "rows": float(len(frame)), "peak_gib": peak}


@dataclass(frozen=True)
class Run:
    engine: str
    seconds: float  # until it finished, or until it was killed at the memory cap
    peak_gib: float
    rows: int
    killed: bool = False


def run_child(engine: str, root: Path, cap_gib: float) -> Run:
    """The child's result, or how far it got before it passed the memory cap."""
    out = root / f"{engine}.parquet"
    command = [sys.executable, __file__, "--child", engine, "--root", str(root), "--out", str(out)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak = psutil.Process(process.pid), 0.0
    while process.poll() is None:
        try:
            rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)])
        except psutil.NoSuchProcess:
            break
        peak = max(peak, rss / 2**30)
        if peak > cap_gib:
            process.kill()
            process.wait()
            return Run(engine, time.perf_counter() - started, peak, 0, killed=True)
        time.sleep(0.2)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(
            f"{engine} failed after {time.perf_counter() - started:.0f}s:\n{stderr[-3000:]}"
        )
    result = json.loads(stdout.strip().splitlines()[-1])
    return Run(engine, result["seconds"], max(peak, result["peak_gib"]), int(result["rows"]))


def same_values(root: Path) -> bool:
    import pandas as pd

    ours, dask = (pd.read_parquet(root / f"{engine}.parquet") for engine in ENGINES)
    pd.testing.assert_frame_equal(ours, dask, check_exact=True)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[20_000, 50_000])
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memory-cap-gb", type=float, default=20.0)
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.root, args.out)))
        return
    rows = []
    for customers in args.customers:
        root = Path(tempfile.mkdtemp(prefix=f"bench-training-set-{customers}-"))
        try:
            built = build(root, customers, args.months, args.seed)
            print(f"{customers:,} customers: generated in {built['generate_s']:.1f}s, "
                  f"features built and applied in {built['build_s']:.1f}s", flush=True)  # fmt: skip
            runs = {engine: run_child(engine, root, args.memory_cap_gb) for engine in ENGINES}
            for run in runs.values():
                took = f"{'killed at the cap after ' if run.killed else ''}{run.seconds:.1f}s"
                print(f"  {run.engine}: {took}, peak {run.peak_gib:.2f} GiB, {run.rows:,} rows")
            equal = not any(r.killed for r in runs.values()) and same_values(root)
            rows.append((customers, runs, equal))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        "| customers | rows | ours s | ours peak GiB | dask s | dask peak GiB "
        "| dask / ours time | dask / ours memory | equal |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for customers, runs, equal in rows:
        ours, dask = runs["ours"], runs["dask"]
        dask_s = f"{dask.seconds:.1f}"
        time_ratio = f"{dask.seconds / ours.seconds:.1f}x"
        memory_ratio = f"{dask.peak_gib / ours.peak_gib:.1f}x"
        if dask.killed:  # what it used when stopped is a lower bound
            dask_s = f"killed at {args.memory_cap_gb:g} GiB after {dask.seconds:.0f}"
            time_ratio, memory_ratio = "-", f"> {memory_ratio}"
        print(
            f"| {customers:,} | {ours.rows:,} | {ours.seconds:.1f} | {ours.peak_gib:.2f} "
            f"| {dask_s} | {dask.peak_gib:.2f} | {time_ratio} | {memory_ratio} "
            f"| {'yes' if equal else '-'} |"
        )


if __name__ == "__main__":
    main()
