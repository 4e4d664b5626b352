"""The ceiling of a churn model on a simulated world: the true hazard's ROC-AUC.

The simulator records every active customer's true monthly churn hazard in
`truth/churn_hazard.parquet` (one row per customer and month start). Ranking held-out rows
by that hazard shows how much of a model's shortfall is left to features and how much is
chance no model can see. A real operator's export has no truth folder: then there is no
ceiling to report.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.lifecycle.simulator import TRUTH_DIR

HAZARD_FILE = "churn_hazard.parquet"
_KEYS = ("customer_id", "event_timestamp")
_LABEL = re.compile(r"churned_within_(\d+)d")
_DAY = pd.Timedelta(days=1)


def label_horizon(columns: pd.Index) -> tuple[str, int]:
    """The one label column (`churned_within_{H}d`) among `columns` and its horizon H."""
    found = [(c, int(m.group(1))) for c in columns if (m := _LABEL.fullmatch(str(c)))]
    if len(found) != 1:
        raise ValueError(
            f"test rows need exactly one label column churned_within_<days>d, found {len(found)}"
            f"{': ' + ', '.join(c for c, _ in found) if found else ''}"
        )
    return found[0]


def window_hazard(rows: pd.DataFrame, hazard: pd.DataFrame, horizon_days: int) -> pd.Series:
    """P(churn in (t, t + horizon]) per row of `rows` (customer_id, event_timestamp t) from
    monthly hazards (customer_id, month, hazard), indexed like `rows`.

    A month's hazard holds evenly over its days, so a month the window covers in part counts
    that part: survival over the window is the product of (1 - h) ** (share of the month).
    NaN for a row whose window no hazard month covers.
    """
    t = pd.to_datetime(rows["event_timestamp"], utc=True)
    frame = pd.DataFrame(
        {"row": np.arange(len(rows)), "customer_id": rows["customer_id"].to_numpy(), "t": t}
    )
    pairs = frame.merge(hazard, on="customer_id")
    month = pd.to_datetime(pairs["month"], utc=True)
    month_end = month + pd.offsets.MonthBegin(1)
    window_end = pairs["t"] + horizon_days * _DAY
    inside = (np.minimum(month_end, window_end) - np.maximum(month, pairs["t"])) / _DAY
    share = inside.clip(lower=0) / ((month_end - month) / _DAY)
    log_survival = share * np.log1p(-pairs["hazard"].astype("float64").clip(upper=1 - 1e-12))
    covered = pairs[share > 0].groupby("row").size()
    by_row = log_survival.groupby(pairs["row"]).sum().reindex(range(len(rows)))
    probability = -np.expm1(by_row).where(by_row.index.isin(covered.index))
    return pd.Series(probability.to_numpy(), index=rows.index)


def oracle_roc_auc(test_rows: pd.DataFrame, lifecycle_dir: Path) -> float | None:
    """ROC-AUC of the simulator's true hazard on exactly `test_rows` (customer_id,
    event_timestamp and the label `churned_within_{H}d`), ranking each row by its true
    probability of churning within H days after its snapshot; None when `lifecycle_dir`
    holds no truth (an operator's own data)."""
    path = Path(lifecycle_dir) / TRUTH_DIR / HAZARD_FILE
    if not path.exists():
        return None
    missing = [c for c in _KEYS if c not in test_rows.columns]
    if missing:
        raise ValueError(f"test rows lack the column(s) {', '.join(missing)}")
    label, horizon = label_horizon(test_rows.columns)
    hazard = pd.read_parquet(path, columns=["customer_id", "month", "hazard"])
    hazard = hazard[hazard["customer_id"].isin(test_rows["customer_id"].unique())]
    probability = window_hazard(test_rows, hazard, horizon)
    unknown = probability.isna()
    if unknown.any():
        example = test_rows.loc[unknown, list(_KEYS)].iloc[0]
        raise ValueError(
            f"{path}: no true hazard for {int(unknown.sum())} of {len(test_rows)} test rows, "
            f"e.g. customer {example['customer_id']} at {example['event_timestamp']}"
        )
    labels = test_rows[label].to_numpy().astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError(f"test rows hold a single class of {label}: no ROC-AUC")
    return float(roc_auc_score(labels, probability.to_numpy()))
