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
    metrics["share_targeted_at_max_net_value"] = float(best["share_targeted"])
    return metrics


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed churn rate against mean predicted probability, per quantile bin."""
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="quantile")
    return pd.DataFrame({"mean_predicted": predicted, "observed_rate": observed})
