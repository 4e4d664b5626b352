"""Evaluation metrics for churn scores: ranking, calibration, targeting and money."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from training.settings import Economics

TOP_SHARES = (0.05, 0.10, 0.20)


def _top(scores: np.ndarray, share: float) -> np.ndarray:
    """Indices of the highest `share` of scores (at least one)."""
    count = max(1, round(share * len(scores)))
    return np.argsort(-scores, kind="stable")[:count]


def lift_and_capture(labels: np.ndarray, scores: np.ndarray, share: float) -> tuple[float, float]:
    """Churn rate in the top `share` over the base rate, and share of all churners caught there."""
    top = _top(scores, share)
    base = labels.mean()
    caught = labels[top].sum()
    return float(labels[top].mean() / base) if base else float("nan"), float(
        caught / max(labels.sum(), 1)
    )


def profit_curve(
    labels: np.ndarray, scores: np.ndarray, economics: Economics, points: int = 50
) -> pd.DataFrame:
    """Realized net value of offering to the top-k share, for k in (0, 1].

    Value = churners reached x customer value x save rate - offers x offer cost.
    """
    order = np.argsort(-scores, kind="stable")
    churners = np.cumsum(labels[order])
    shares = np.linspace(1 / points, 1.0, points)
    reached = np.maximum(np.round(shares * len(labels)).astype(int), 1)
    saved = churners[reached - 1] * economics.customer_value * economics.save_rate
    return pd.DataFrame(
        {"share_targeted": shares, "net_value": saved - reached * economics.offer_cost}
    )


def evaluate(
    labels: np.ndarray, probabilities: np.ndarray, economics: Economics
) -> dict[str, float]:
    """Every headline metric of a set of calibrated churn probabilities."""
    labels = np.asarray(labels, dtype=int)
    probabilities = np.clip(np.asarray(probabilities, dtype=float), 1e-6, 1 - 1e-6)
    metrics = {
        "roc_auc": float(roc_auc_score(labels, probabilities)),
        "pr_auc": float(average_precision_score(labels, probabilities)),
        "brier": float(brier_score_loss(labels, probabilities)),
        "log_loss": float(log_loss(labels, probabilities)),
        "base_rate": float(labels.mean()),
        "mean_probability": float(probabilities.mean()),
    }
    for share in TOP_SHARES:
        lift, capture = lift_and_capture(labels, probabilities, share)
        metrics[f"lift_top_{round(share * 100)}pct"] = lift
        metrics[f"capture_top_{round(share * 100)}pct"] = capture
    curve = profit_curve(labels, probabilities, economics)
    best = curve.loc[curve["net_value"].idxmax()]
    metrics["max_net_value"] = float(best["net_value"])
    metrics["ece"] = expected_calibration_error(labels, probabilities)
    metrics["max_probability"] = float(probabilities.max())
    metrics["largest_tie_share"] = largest_tie_share(probabilities)
    metrics["share_targeted_at_max_net_value"] = float(best["share_targeted"])
    return metrics


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> float:
    """Mean absolute gap between predicted and observed churn over equal-count bins of the
    predictions, weighted by the bins' sizes (ties stay in one bin)."""
    labels = np.asarray(labels, dtype="float64")
    probabilities = np.asarray(probabilities, dtype="float64")
    edges = np.unique(np.quantile(probabilities, np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(edges, probabilities, side="right")
    counts = np.bincount(which, minlength=len(edges) + 1)
    gaps = np.abs(
        np.bincount(which, probabilities - labels, minlength=len(edges) + 1)
    )  # per bin: |sum of predicted - sum of observed| = size x |mean gap|
    return float(gaps.sum() / max(counts.sum(), 1))


def largest_tie_share(probabilities: np.ndarray, resolution: float = 1e-5) -> float:
    """The largest share of rows whose probabilities agree to `resolution` (a thousandth
    of a percentage point, finer than anything shown to a person): a calibration with
    plateaus shows as a large share, even under a negligible tie-break slope."""
    if len(probabilities) == 0:
        return 0.0
    grid = np.round(np.asarray(probabilities, dtype="float64") / resolution)
    _, counts = np.unique(grid, return_counts=True)
    return float(counts.max() / len(probabilities))


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed churn rate against mean predicted probability, per quantile bin."""
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="quantile")
    return pd.DataFrame({"mean_predicted": predicted, "observed_rate": observed})
