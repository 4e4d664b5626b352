"""Study: does negative sampling with inverse-probability weights cost the churn model?

Trains the churn model on one training set (the demo's, `retain features training-set`)
whole and with the older stayers sampled at each `--rates` share (features.sampling:
every churner and the validation + test months kept whole, kept stayers weighted
1 / rate), and prints, on the same held-out test months, ROC-AUC, PR-AUC, Brier, log
loss, the mean probability against the churn rate, and the expected calibration error
(ten quantile bins), with the training rows and the fit time.

    .venv/bin/python bench/negative_sampling.py                       # ~3 minutes
    .venv/bin/python bench/negative_sampling.py --training-set PATH --rates 0.2 0.1 0.05
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.sampling import NegativeSampling, sample_negatives  # noqa: E402
from training.churn import train_churn  # noqa: E402
from training.settings import TrainingSettings  # noqa: E402

LABEL = "churned_within_30d"


def calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over quantile bins, weighted by bin size."""
    frame = pd.DataFrame({"y": labels, "p": probabilities})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), bins, labels=False)
    per_bin = frame.groupby("bin").agg(y=("y", "mean"), p=("p", "mean"), n=("y", "size"))
    return float((per_bin["y"] - per_bin["p"]).abs().mul(per_bin["n"]).sum() / len(frame))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--training-set", type=Path, default=ROOT / "data/training/churn_v1.parquet"
    )
    parser.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.1])
    args = parser.parse_args()

    settings = TrainingSettings()
    full = pd.read_parquet(args.training_set)
    keep = settings.valid_months + settings.test_months
    print(f"{args.training_set}: {len(full):,} rows, churn rate {full[LABEL].mean():.2%}")
    header = "rate   train rows  fit s   ROC-AUC  PR-AUC   Brier     log loss  mean p   rate    ECE"
    print(header)
    for rate in [1.0, *args.rates]:
        frame = sample_negatives(full, LABEL, NegativeSampling(rate=rate, keep_latest_months=keep))
        started = time.perf_counter()
        trained = train_churn(frame, LABEL, settings)
        seconds = time.perf_counter() - started
        m = trained.test_metrics
        labels = trained.split.test[LABEL].to_numpy().astype(int)
        ece = calibration_error(labels, trained.test_calibrated)
        print(
            f"{rate:<6g} {len(trained.split.train):>10,}  {seconds:5.1f}  {m['roc_auc']:.4f}   "
            f"{m['pr_auc']:.4f}   {m['brier']:.5f}   {m['log_loss']:.5f}   "
            f"{m['mean_probability']:.4f}   {m['base_rate']:.4f}  {ece:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
