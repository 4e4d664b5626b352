"""Benchmark: how much of the churn model's held-out ROC-AUC the features can reach.

A simulated world records each customer-month's true churn log-odds split by driver
(`truth/churn_hazard.parquet`, `logit_<driver>`). On the held-out months of
`retain train churn` (the same time split and booster settings) this prints:

- the model's ROC-AUC and the true hazard's (the oracle of `retain train churn`);
- the true log-odds without the drivers no table records at the snapshot: the customer's
  frailty (a hidden trait), the retention campaign of the coming month (sent after the
  snapshot) and rivals' promotions;
- the recorded drivers plus the unrecorded ones as well as LightGBM predicts them from the
  training set's features (fitted on the training months), with each one's R²: the ceiling
  for a model of these features;
- how well the features predict each recorded driver (R²);
- the model given the true recorded log-odds as one more feature: what perfect feature
  engineering of the recorded drivers would add.

    .venv/bin/python bench/churn_ceiling.py      # the demo's training set (after `retain run`)
    .venv/bin/python bench/churn_ceiling.py --training-set T.parquet --lifecycle DIR
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.labels import label_column
from features.lifecycle.simulator import TRUTH_DIR
from training.churn import feature_columns, fit_booster, time_split
from training.model import FeatureSchema
from training.oracle import HAZARD_FILE, oracle_roc_auc
from training.settings import TrainingSettings

UNRECORDED = ("frailty", "campaign", "competitor")
PARTS = ("train", "valid", "test")
# a plain regression booster: the unrecorded drivers' conditional means, not a tuned model
REGRESSION = {
    "objective": "regression",
    "verbosity": -1,
    "num_leaves": 31,
    "learning_rate": 0.05,
    "min_child_samples": 200,
}


def _with_truth(frame: pd.DataFrame, lifecycle: Path) -> tuple[pd.DataFrame, list[str]]:
    hazard = pd.read_parquet(lifecycle / TRUTH_DIR / HAZARD_FILE)
    logits = [c for c in hazard.columns if c.startswith("logit_")]
    hazard = hazard[["customer_id", "month", *logits]].rename(columns={"month": "event_timestamp"})
    hazard["event_timestamp"] = pd.to_datetime(hazard["event_timestamp"], utc=True)
    frame = frame.assign(event_timestamp=pd.to_datetime(frame["event_timestamp"], utc=True))
    joined = frame.merge(hazard, on=["customer_id", "event_timestamp"], how="left")
    missing = joined[logits[0]].isna().sum()
    if missing:
        raise SystemExit(f"{lifecycle}: no true hazard for {missing} training rows")
    return joined, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--training-set", type=Path, default=Path("data/training/churn_v2.parquet"))
    parser.add_argument("--lifecycle", type=Path, default=Path("data/lifecycle"))
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # LightGBM's pandas-categorical notices

    settings = TrainingSettings()
    label = label_column(30)
    frame = pd.read_parquet(args.training_set)
    features = feature_columns(frame, label)
    joined, logits = _with_truth(frame, args.lifecycle)
    split = time_split(joined, settings.valid_months, settings.test_months)
    schema = FeatureSchema.infer(split.train, features)
    x = {part: schema.transform(getattr(split, part)) for part in PARTS}
    y = {part: getattr(split, part)[label].to_numpy().astype(int) for part in PARTS}
    test = split.test
    print(f"test months {', '.join(split.months('test'))}: {len(test):,} rows")

    booster = fit_booster(x["train"], y["train"], x["valid"], y["valid"], schema, settings)

    def auc(score: np.ndarray) -> str:
        return f"{roc_auc_score(y['test'], score):.4f}"

    print(f"model                                   {auc(booster.predict(x['test']))}")
    oracle = oracle_roc_auc(test[["customer_id", "event_timestamp", label]], args.lifecycle)
    print(f"true hazard (oracle)                    {oracle:.4f}")

    def predicted(column: str) -> np.ndarray:
        """The driver's log-odds as the features predict it (fitted on the training months)."""
        fitted = lgb.train(REGRESSION, lgb.Dataset(x["train"], split.train[column]), 600)
        return np.asarray(fitted.predict(x["test"]))

    recorded = [c for c in logits if c.removeprefix("logit_") not in UNRECORDED]
    reached = {
        c.removeprefix("logit_"): r2_score(test[c], predicted(c))
        for c in recorded
        if test[c].std() > 0
    }
    print(
        "recorded drivers from the features, R²: "
        + ", ".join(f"{k} {v:.2f}" for k, v in reached.items())
    )
    score = test[recorded].sum(axis=1).to_numpy()
    print(f"recorded drivers' true log-odds         {roc_auc_score(y['test'], score):.4f}")
    for driver in UNRECORDED:
        column = f"logit_{driver}"
        guess = predicted(column)
        score = score + guess
        print(
            f"  + predicted {driver:<11} (R² {r2_score(test[column], guess):5.2f})  "
            f"{roc_auc_score(y['test'], score):.4f}"
        )

    known = {part: getattr(split, part)[recorded].sum(axis=1).to_numpy() for part in PARTS}
    xk = {part: x[part].assign(recorded_logit=known[part]) for part in PARTS}
    schema_k = FeatureSchema.infer(xk["train"], list(xk["train"].columns))
    booster = fit_booster(xk["train"], y["train"], xk["valid"], y["valid"], schema_k, settings)
    print(f"model + recorded log-odds as a feature  {auc(booster.predict(xk['test']))}")


if __name__ == "__main__":
    main()
