"""Evaluation plots, written as PNG files for MLflow (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Figures built directly, not through pyplot: no global backend is set (a notebook
# importing this keeps its inline plots) and no figure is left open.
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from training.metrics import reliability


def _subplots(*grid: int, figsize: tuple[float, float], **options: Any) -> tuple[Figure, Any]:
    """pyplot.subplots without pyplot: a figure and its axes."""
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid, **options)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def roc(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = _subplots(figsize=(5, 5))
    for name, values in scores.items():
        fpr, tpr, _ = roc_curve(labels, values)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test months")
    ax.legend()
    return _save(fig, path)


def precision_recall(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = _subplots(figsize=(5, 5))
    for name, values in scores.items():
        precision, recall, _ = precision_recall_curve(labels, values)
        ax.plot(recall, precision, label=name)
    ax.axhline(labels.mean(), color="k", ls=":", lw=1, label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, test months")
    ax.legend()
    return _save(fig, path)


def calibration(labels: np.ndarray, calibrated: np.ndarray, raw: np.ndarray, path: Path) -> Path:
    fig, ax = _subplots(figsize=(5, 5))
    for name, values in (("calibrated", calibrated), ("raw LightGBM", raw)):
        curve = reliability(labels, values)
        ax.plot(curve["mean_predicted"], curve["observed_rate"], "o-", label=name)
    top = max(float(np.quantile(calibrated, 0.99)), labels.mean() * 3)
    ax.plot([0, top], [0, top], "k:", lw=1)
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed churn rate",
        title="Reliability, test months",
    )
    ax.legend()
    return _save(fig, path)


def gains_and_lift(labels: np.ndarray, scores: np.ndarray, path: Path) -> Path:
    order = np.argsort(-scores, kind="stable")
    share = np.arange(1, len(labels) + 1) / len(labels)
    captured = np.cumsum(labels[order]) / max(labels.sum(), 1)
    fig, (gains, lift) = _subplots(1, 2, figsize=(10, 4.5))
    gains.plot(share, captured, label="model")
    gains.plot([0, 1], [0, 1], "k:", lw=1, label="random")
    gains.set(
        xlabel="share of customers targeted",
        ylabel="share of churners reached",
        title="Cumulative gains",
    )
    gains.legend()
    lift.plot(share[share >= 0.01], (captured / share)[share >= 0.01])
    lift.axhline(1, color="k", ls=":", lw=1)
    lift.set(xlabel="share of customers targeted", ylabel="lift", title="Lift")
    return _save(fig, path)


def feature_importance(importance: pd.Series, path: Path, top: int = 25) -> Path:
    values = importance.sort_values().tail(top)
    fig, ax = _subplots(figsize=(7, 0.3 * len(values) + 1))
    ax.barh(values.index, values.to_numpy())
    ax.set(xlabel="total gain", title="Feature importance (gain)")
    return _save(fig, path)


def shap_summary(
    contributions: pd.DataFrame, features: pd.DataFrame, path: Path, top: int = 15
) -> Path:
    """Per feature, each row's contribution to the log-odds, coloured by its value's rank."""
    contributions = contributions.drop(columns="bias")
    order = contributions.abs().mean().sort_values(ascending=False).index[:top][::-1]
    fig, ax = _subplots(figsize=(8, 0.4 * len(order) + 1.5))
    rng = np.random.default_rng(0)
    for position, column in enumerate(order):
        values = features[column]
        rank = (
            values.rank(pct=True) if values.dtype != "category" else values.cat.codes.rank(pct=True)
        )
        jitter = rng.uniform(-0.3, 0.3, len(values))
        ax.scatter(
            contributions[column],
            position + jitter,
            c=rank.fillna(0.5),
            cmap="coolwarm",
            s=4,
            alpha=0.6,
        )
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(order)), order)
    ax.set(
        xlabel="contribution to log-odds (SHAP)", title="SHAP summary (blue: low value, red: high)"
    )
    return _save(fig, path)


def forecast_vs_actual(forecasts: pd.DataFrame, series: str, path: Path, horizon: int = 1) -> Path:
    """Backtest of one series, a panel per region: actuals, the `horizon`-week-ahead P50
    with its P10-P90 band, and the seasonal-naive baseline at the same horizon."""
    part = forecasts[(forecasts["series"] == series) & (forecasts["horizon"] == horizon)]
    regions = sorted(part["region"].unique())
    columns = 4
    rows = int(np.ceil(len(regions) / columns))
    fig, axes = _subplots(
        rows, columns, figsize=(4 * columns, 2.6 * rows), sharex=True, squeeze=False
    )
    for ax, region in zip(axes.flat, regions, strict=False):
        one = part[part["region"] == region].sort_values("target_week_end")
        weeks = one["target_week_end"].dt.tz_localize(None)
        ax.fill_between(weeks, one["p10"], one["p90"], alpha=0.25, label="P10-P90")
        ax.plot(weeks, one["p50"], label="P50")
        ax.plot(weeks, one["seasonal_naive"], "k:", lw=1, label="seasonal naive")
        ax.plot(weeks, one["actual"], "o", ms=3, color="black", label="actual")
        ax.set_title(region, fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    for ax in list(axes.flat)[len(regions) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{series}: {horizon}-week-ahead backtest forecasts vs actuals")
    return _save(fig, path)
