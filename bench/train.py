"""Benchmark: `retain train churn`'s training path vs raw `lightgbm.train`, 1M snapshot rows.

The churn_v1 training set of the 20k demo data (built through Feast) is replicated to
1,000,000 customer-snapshot rows. Two child processes then train on the same rows with
the same LightGBM parameters and the same time split:

- ours: `training.churn.train_churn` (feature schema, monotone constraints, early stopping,
  calibration chosen and fitted on the validation months, test metrics, logistic baseline);
- raw: `lightgbm.train` on the same frames with the same parameters and early stopping.

Each child reports the seconds from "data in memory" to "model ready" and its peak RSS;
the parent prints the ratio ours / raw (target <= 1.2).

    .venv/bin/python bench/train.py                 # ~10 minutes on 2 cores
    .venv/bin/python bench/train.py --rows 200000
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
from pathlib import Path

import lightgbm as lgb
import pandas as pd

LABEL = "churned_within_30d"
REPO = Path(__file__).resolve().parents[1]


def build_rows(rows: int, folder: Path) -> Path:
    """The demo training set through Feast, replicated to `rows` rows (new customer ids)."""
    from features.build import build_directory
    from features.engine import EngineSettings
    from features.lifecycle.settings import DataSettings
    from features.lifecycle.simulator import generate
    from features.lifecycle.validate import resolve_as_of
    from features.settings import FeatureSettings
    from features.store import apply, open_store
    from features.training_set import churn_training_set

    lifecycle = folder / "data" / "lifecycle"
    generate(
        DataSettings.model_validate(
            {"out_dir": lifecycle, "customers": 20_000, "months": 24, "seed": 7}
        )
    )
    (folder / "features" / "repo").mkdir(parents=True)
    shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", folder / "features" / "repo")
    settings = FeatureSettings.model_validate(
        {"repo_path": folder / "features" / "repo", "lifecycle_dir": lifecycle}
    )
    as_of = resolve_as_of(lifecycle, None)
    build_directory(lifecycle, settings.tables_dir, as_of, EngineSettings())
    store = open_store(settings)
    apply(store)
    base = churn_training_set(store, lifecycle, horizon_days=30)
    copies = -(-rows // len(base))
    frame = pd.concat(
        [base.assign(customer_id=base["customer_id"] + f"-{i}") for i in range(copies)],
        ignore_index=True,
    ).head(rows)
    path = folder / "rows.parquet"
    frame.to_parquet(path, index=False)
    return path


def run_ours(frame: pd.DataFrame) -> dict[str, float]:
    from training.churn import train_churn
    from training.settings import TrainingSettings

    started = time.perf_counter()
    result = train_churn(frame, LABEL, TrainingSettings())
    return {
        "seconds": time.perf_counter() - started,
        "best_iteration": result.model.booster.best_iteration,
        "test_roc_auc": result.test_metrics["roc_auc"],
    }


def run_raw(frame: pd.DataFrame) -> dict[str, float]:
    from training.churn import feature_columns, lightgbm_params, time_split
    from training.model import FeatureSchema
    from training.settings import TrainingSettings

    settings = TrainingSettings()
    split = time_split(frame, settings.valid_months, settings.test_months)
    schema = FeatureSchema.infer(split.train, feature_columns(frame, LABEL))
    params = lightgbm_params(settings.params, schema, settings.monotone, settings.seed)
    train_x, valid_x = (
        schema.transform(split.train),
        schema.transform(split.valid),
    )  # the same arrays
    started = time.perf_counter()
    booster = lgb.train(
        params,
        lgb.Dataset(train_x, split.train[LABEL].astype(int)),
        num_boost_round=settings.params.max_rounds,
        valid_sets=[lgb.Dataset(valid_x, split.valid[LABEL].astype(int))],
        callbacks=[lgb.early_stopping(settings.params.early_stopping_rounds, verbose=False)],
    )
    return {"seconds": time.perf_counter() - started, "best_iteration": booster.best_iteration}


def child(variant: str, data: Path) -> None:
    frame = pd.read_parquet(data)
    result = run_ours(frame) if variant == "ours" else run_raw(frame)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["ours", "raw"])
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data)
        return
    with tempfile.TemporaryDirectory() as folder:
        data = build_rows(args.rows, Path(folder))
        results = {}
        for variant in ("raw", "ours"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--data", str(data)],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
            print(variant, results[variant], flush=True)
    ours, raw = results["ours"], results["raw"]
    print(
        f"train: {args.rows:,} rows; ours {ours['seconds']:.1f}s "
        f"({ours['peak_rss_gib']:.2f} GiB peak) "
        f"vs raw lightgbm.train {raw['seconds']:.1f}s ({raw['peak_rss_gib']:.2f} GiB) -> "
        f"{ours['seconds'] / raw['seconds']:.2f}x (target <= 1.2); "
        f"same best iteration: {ours['best_iteration'] == raw['best_iteration']}"
    )


if __name__ == "__main__":
    main()
