"""Forecast accuracy measures and the naive baselines every demand model must beat.

Pure functions on aligned arrays (or per-series frames), shared by the demand backtest
and its tests. Definitions follow Hyndman & Athanasopoulos, *Forecasting: Principles and
Practice* (3rd ed.): WAPE = sum|y - f| / sum|y|; MASE scales the mean absolute error by
the in-sample mean absolute error of the one-step (or seasonal) naive forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: total absolute error over total actual volume."""
    actual, forecast = np.asarray(actual, float), np.asarray(forecast, float)
    volume = np.abs(actual).sum()
    return float(np.abs(actual - forecast).sum() / volume) if volume else float("nan")


def mase(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int = 1) -> float:
    """Mean absolute error scaled by the in-sample error of the (seasonal) naive forecast."""
    history = np.asarray(history, float)
    if len(history) <= season:
        return float("nan")
    scale = np.abs(history[season:] - history[:-season]).mean()
    error = np.abs(np.asarray(actual, float) - np.asarray(forecast, float)).mean()
    return float(error / scale) if scale else float("nan")


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside [lower, upper]."""
    actual = np.asarray(actual, float)
    inside = (actual >= np.asarray(lower, float)) & (actual <= np.asarray(upper, float))
    return float(inside.mean()) if len(actual) else float("nan")


def pinball_loss(actual: np.ndarray, forecast: np.ndarray, quantile: float) -> float:
    """Mean quantile (pinball) loss: the loss a quantile forecast minimises."""
    diff = np.asarray(actual, float) - np.asarray(forecast, float)
    return float(np.mean(np.maximum(quantile * diff, (quantile - 1) * diff)))


def seasonal_naive(history: pd.Series, horizon: int, season: int = 52) -> np.ndarray:
    """The value of the same week one season earlier where history allows, else the last value.

    `history` is one weekly series in time order; the result has `horizon` values.
    """
    values = history.to_numpy(dtype=float)
    if len(values) == 0:
        return np.full(horizon, np.nan)
    steps = np.arange(1, horizon + 1)
    back = len(values) - season + steps - 1  # index of the same week a season earlier
    available = (back >= 0) & (back < len(values))
    return np.where(available, values[np.clip(back, 0, len(values) - 1)], values[-1])


def moving_average(history: pd.Series, horizon: int, window: int = 4) -> np.ndarray:
    """The mean of the last `window` weeks, repeated over the horizon."""
    values = history.to_numpy(dtype=float)
    if len(values) == 0:
        return np.full(horizon, np.nan)
    return np.full(horizon, values[-window:].mean())
