"""Benchmark: expected remaining lifetime (customer value's survival) against what happened.

A fresh simulated world, its churn training set through Feast, then two checks with
`training.lifetime_check.lifetime_check`:

(a) the time split of `retain train churn`: the model's test months (one to three months
    observed after each snapshot);
(b) a model trained on the months before a snapshot 12 months from the data's end, scoring
    the customers active at that snapshot (12 months observed).

Each prints mean expected against realised months within the observed window, overall and
by decile of expected lifetime, and the rank correlation with the simulator's own
hazard-derived lifetimes.

    .venv/bin/python bench/lifetime.py                          # 6,000 customers x 24 months
    .venv/bin/python bench/lifetime.py --customers 20000 --seed 7
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.lifecycle.validate import resolve_as_of
from tests.conftest import _generate
from tests.training.conftest import LABEL, _training_set
from training.churn import train_churn
from training.lifetime_check import SNAPSHOT, lifetime_check
from training.settings import TrainingSettings


def _print(title: str, found: dict[str, Any]) -> None:
    print(
        f"{title}: {found['rows']:,} rows, {found['mean_window_months']:.2f} months observed; "
        f"expected {found['expected_months']:.3f} vs realised {found['realised_months']:.3f} "
        f"months ({found['expected_over_realised']:.3f}); largest decile gap "
        f"{found['max_decile_gap_months']:.3f}; Spearman vs truth "
        f"{found.get('spearman_vs_truth', float('nan')):.3f}"
    )
    print("  decile  rows  expected lifetime  expected  realised")
    for d in found["deciles"]:
        print(
            f"  {d['decile']:>6}  {d['rows']:>4.0f}  {d['expected_lifetime']:>17.2f}  "
            f"{d['expected']:>8.3f}  {d['realised']:>8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=6_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        lifecycle = _generate(
            root / "lifecycle", customers=args.customers, months=args.months, seed=args.seed
        )
        frame = _training_set(lifecycle, root / "project")
        settings = TrainingSettings.model_validate(
            {
                "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                "artifact_root": root / "artifacts",
                "heldout_dir": root / "heldout",
            }
        )
        trained = train_churn(frame, LABEL, settings)
        _print("(a) test months", lifetime_check(trained.model, trained.split.test, lifecycle))
        start = resolve_as_of(lifecycle, None) - pd.DateOffset(months=12)
        earlier = frame[frame[SNAPSHOT] + pd.Timedelta(days=30) <= start]
        model = train_churn(earlier, LABEL, settings).model
        rows = frame[frame[SNAPSHOT] == start]
        _print(f"(b) active at {start:%Y-%m-%d}", lifetime_check(model, rows, lifecycle))


if __name__ == "__main__":
    main()
