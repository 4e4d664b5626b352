"""How the churn model's expected lifetimes compare with what happened.

For snapshot rows the model did not learn from, the expected months a customer stays within
the months observed after the snapshot (`training.value`'s survival, cut at the data's
as-of instant) are set against the months the customer did stay, overall and by decile of
expected lifetime: the calibration of lifetime. On simulated data the expected lifetimes
are also ranked against the simulator's own hazard-derived ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from features.lifecycle.contract import CONTRACT_MONTHS
from features.lifecycle.validate import resolve_as_of
from training.model import ChurnModel
from training.value import CONTRACT_END, CONTRACT_TYPE, MONTH_DAYS, STEP_DAYS, TENURE, hazards

SNAPSHOT = "event_timestamp"
SIMULATOR_MONTH_DAYS = 30.44  # the simulator's month, in which its tenure term is counted


def realised_months(
    snapshots: pd.Series, churned_at: pd.Series, as_of: pd.Timestamp, horizon_months: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the months observed after its snapshot (up to the horizon, censored at
    `as_of`) and how many of them the customer stayed through (left after t + 30k days)."""
    t = pd.to_datetime(snapshots, utc=True).reset_index(drop=True)
    window = ((as_of - t) / pd.Timedelta(days=STEP_DAYS)).to_numpy(dtype="float64")
    observed = np.clip(np.floor(window), 0, horizon_months).astype(int)
    leaves = pd.to_datetime(churned_at, utc=True).reset_index(drop=True)
    stayed = ((leaves - t) / pd.Timedelta(days=STEP_DAYS)).to_numpy(dtype="float64")
    stayed = np.where(np.isnan(stayed), np.inf, stayed)  # never left
    # month k counts when the customer left after t + 30k days
    months = np.minimum(np.ceil(stayed) - 1, observed)
    return observed, np.maximum(months, 0).astype(int)


def truth_lifetimes(
    rows: pd.DataFrame, hazard: pd.DataFrame, drivers: dict[str, float], horizon_months: int
) -> np.ndarray:
    """The simulator's hazard-derived expected months (within the horizon) for each row:
    the true hazard of the month after the snapshot, its tenure and contract-end terms
    advanced as `advance` does, the rest of its log-odds held (frailty included, which no
    model sees). NaN where the truth has no hazard for the row."""
    keyed = hazard.assign(month=pd.to_datetime(hazard["month"], utc=True)).set_index(
        ["customer_id", "month"]
    )
    index = pd.MultiIndex.from_arrays(
        [rows["customer_id"].astype(str), pd.to_datetime(rows[SNAPSHOT], utc=True)]
    )
    found = keyed.reindex(index)
    logit = np.log(found["hazard"] / (1 - found["hazard"])).to_numpy(dtype="float64")
    held = logit - found[["logit_tenure", "logit_contract_end", "logit_campaign"]].sum(
        axis=1, skipna=False
    ).to_numpy(dtype="float64")
    steps = np.arange(horizon_months, dtype="float64")[None, :]
    tenure_days = rows[TENURE].to_numpy(dtype="float64")[:, None] + STEP_DAYS * steps
    tenure_months = tenure_days / SIMULATOR_MONTH_DAYS
    term = np.array([CONTRACT_MONTHS.get(str(c), 0) for c in rows[CONTRACT_TYPE]], dtype="float64")
    term_days = np.where(term > 1, term * MONTH_DAYS, 0.0)[:, None]
    left = rows[CONTRACT_END].to_numpy(dtype="float64")[:, None] - STEP_DAYS * steps
    left = np.where(left <= 0, term_days - np.mod(-left, np.maximum(term_days, 1)), left)
    near_end = (term_days > 0) & (left <= 60)
    step_logit = (
        held[:, None]
        + drivers["new_customer"] * np.exp(-np.maximum(tenure_months, 0) / 8)
        + drivers["contract_end_within_60d"] * near_end
    )
    survival = np.cumprod(1.0 - 1.0 / (1.0 + np.exp(-step_logit)), axis=1)
    return np.asarray(survival.sum(axis=1))


def lifetime_calibration(
    expected: np.ndarray,
    hazard_rows: np.ndarray,
    observed: np.ndarray,
    realised: np.ndarray,
    truth: np.ndarray | None = None,
    deciles: int = 10,
) -> dict[str, Any]:
    """Mean expected vs realised months within each row's observed window, overall and by
    decile of expected lifetime (over the whole horizon); with the truth's lifetimes,
    their rank correlation with the expected ones."""
    survival = np.cumprod(1.0 - hazard_rows, axis=1)
    within = np.where(np.arange(survival.shape[1])[None, :] < observed[:, None], survival, 0.0)
    expected_within = within.sum(axis=1)
    keep = observed > 0
    frame = pd.DataFrame(
        {
            "expected_lifetime": expected[keep],
            "expected": expected_within[keep],
            "realised": realised[keep],
        }
    )
    frame["decile"] = pd.qcut(
        frame["expected_lifetime"].rank(method="first"), deciles, labels=False
    )
    by_decile = frame.groupby("decile").agg(
        rows=("expected", "size"),
        expected_lifetime=("expected_lifetime", "mean"),
        expected=("expected", "mean"),
        realised=("realised", "mean"),
    )
    overall_expected, overall_realised = frame["expected"].mean(), frame["realised"].mean()
    result: dict[str, Any] = {
        "rows": int(keep.sum()),
        "mean_window_months": float(observed[keep].mean()),
        "expected_months": float(overall_expected),
        "realised_months": float(overall_realised),
        "expected_over_realised": float(overall_expected / overall_realised),
        "max_decile_gap_months": float((by_decile["expected"] - by_decile["realised"]).abs().max()),
        "deciles": [
            {"decile": int(d), **{k: float(v) for k, v in row.items()}}
            for d, row in by_decile.iterrows()
        ],
    }
    if truth is not None:
        known = keep & ~np.isnan(truth)
        ours, true = expected[known], truth[known]
        # a model that cannot rank (every lifetime the same) has no rank correlation
        ranks = len(ours) > 1 and np.ptp(ours) > 0 and np.ptp(true) > 0
        rho = spearmanr(ours, true).statistic if ranks else float("nan")
        result["truth_rows"] = int(known.sum())
        result["spearman_vs_truth"] = float(rho)
    return result


def lifetime_check(
    model: ChurnModel,
    rows: pd.DataFrame,
    lifecycle_dir: Path,
    horizon_months: int = 24,
) -> dict[str, Any]:
    """How the model's expected lifetimes compare with what happened, for snapshot rows it
    did not learn from (e.g. `TrainedChurn.split.test`): mean expected vs realised months
    within each row's observed window (censored at the data's as-of instant), overall and
    by decile of expected lifetime; on simulated data (a `truth/` folder), the Spearman
    correlation with the simulator's hazard-derived lifetimes."""
    missing = [c for c in ("customer_id", SNAPSHOT) if c not in rows.columns]
    if missing:
        raise ValueError(f"lifetime check: the rows lack column(s) {', '.join(missing)}")
    churn = pd.read_parquet(lifecycle_dir / "churn_events.parquet")
    as_of = resolve_as_of(lifecycle_dir, None)
    rows = rows.reset_index(drop=True)
    churned_at = rows["customer_id"].map(
        churn.drop_duplicates("customer_id").set_index("customer_id")["churned_at"]
    )
    matrix = model.schema.frame_matrix(rows)
    h = hazards(model, matrix, horizon_months)
    expected = np.cumprod(1.0 - h, axis=1).sum(axis=1)
    observed, realised = realised_months(rows[SNAPSHOT], churned_at, as_of, horizon_months)
    truth = _truth(rows, lifecycle_dir, horizon_months)
    return lifetime_calibration(expected, h, observed, realised, truth)


def _truth(rows: pd.DataFrame, lifecycle_dir: Path, horizon_months: int) -> np.ndarray | None:
    """The simulator's hazard-derived lifetimes, when the folder holds its truth."""
    hazard_file = lifecycle_dir / "truth" / "churn_hazard.parquet"
    manifest = lifecycle_dir / "manifest.json"
    needed = (TENURE, CONTRACT_END, CONTRACT_TYPE)
    if not (hazard_file.exists() and manifest.exists()) or any(c not in rows for c in needed):
        return None
    drivers = json.loads(manifest.read_text()).get("drivers", {})
    if not {"new_customer", "contract_end_within_60d"} <= set(drivers):
        return None
    columns = ["customer_id", "month", "hazard", "logit_tenure", "logit_contract_end"]
    hazard = pd.read_parquet(hazard_file, columns=[*columns, "logit_campaign"])
    return truth_lifetimes(rows, hazard, drivers, horizon_months)
