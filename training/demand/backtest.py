"""Rolling-origin backtest of the demand forecaster against two naive baselines.

For each origin (the latest weeks whose whole horizon has since been observed) the
forecaster is fitted again on what was known at that origin, the history cut there, and
forecasts the next H weeks; the seasonal-naive and moving-average baselines forecast the
same weeks from the same cut history. Before any fit, `check_no_lookahead` proves the
features could not have read anything after the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.demand.dataset import (
    WEEK,
    WEEK_END,
    DemandDataError,
    FeatureBuilder,
    LeakageError,
    check_no_lookahead,
    forecasting_rows,
    long_history,
)
from training.demand.model import DemandForecaster, DemandRecipe, fit_forecaster
from training.demand.settings import Backtest
from training.forecast_metrics import interval_coverage, moving_average, seasonal_naive, wape

METHODS = {"model": "p50", "seasonal_naive": "seasonal_naive", "moving_average": "moving_average"}


@dataclass(frozen=True)
class BacktestResult:
    forecasts: pd.DataFrame  # one row per origin, series and horizon: actual, quantiles, baselines
    metrics: pd.DataFrame  # one row per scope (package, service_load, each series) and method
    origins: list[pd.Timestamp]
    notes: tuple[str, ...] = ()  # what a short history changed, for the person reading it

    def figure(self, scope: str, method: str, metric: str) -> float:
        row = self.metrics[(self.metrics["scope"] == scope) & (self.metrics["method"] == method)]
        return float(row[metric].iloc[0])

    def flat_metrics(self) -> dict[str, float]:
        """`<scope>_<method>_<metric>` for MLflow."""
        flat = {}
        for row in self.metrics.itertuples(index=False):
            for metric in ("wape", "mase", "coverage_p10_p90"):
                value = getattr(row, metric)
                if not np.isnan(value):
                    flat[f"{row.scope}_{row.method}_{metric}"] = float(value)
        return flat


MIN_HISTORY_FLOOR = 8  # weeks: the least a forecaster is ever fitted on in a backtest


def history_before_first_origin(week_ends: pd.Series, horizon: int, settings: Backtest) -> int:
    """Weeks of history the first origin gets: `min_history_weeks`, or on a history too
    short for it (a young operator, a small world) as many as leave one whole horizon after
    them, down to `MIN_HISTORY_FLOOR`; shorter than that is an error naming what is needed."""
    weeks = int((week_ends.max() - week_ends.min()) // WEEK) + 1
    if weeks - horizon < MIN_HISTORY_FLOOR:
        raise DemandDataError(
            f"{weeks} weeks of history are too few to backtest: a {horizon}-week horizon after "
            f"at least {MIN_HISTORY_FLOOR} weeks of history needs {MIN_HISTORY_FLOOR + horizon} "
            f"(configured backtest.min_history_weeks: {settings.min_history_weeks})"
        )
    return min(settings.min_history_weeks, weeks - horizon)


def backtest_origins(
    week_ends: pd.Series, horizon: int, settings: Backtest, history_weeks: int
) -> list[pd.Timestamp]:
    """The latest origins, `step_weeks` apart, whose H following weeks are all observed.

    A short history gets fewer origins than configured, each still with at least
    `history_weeks` (`history_before_first_origin`) weeks before it.
    """
    first, last = week_ends.min(), week_ends.max()
    latest = last - horizon * WEEK
    earliest = first + (history_weeks - 1) * WEEK
    origins = [latest - k * settings.step_weeks * WEEK for k in range(settings.origins)]
    return sorted(origin for origin in origins if origin >= earliest)


def _baselines(past: pd.DataFrame, horizon: int, settings: Backtest) -> pd.DataFrame:
    frames = []
    for (region, series), one in past.groupby(["region", "series"], sort=True):
        values = one["value"]
        frames.append(
            pd.DataFrame(
                {
                    "region": region,
                    "series": series,
                    "horizon": np.arange(1, horizon + 1),
                    "seasonal_naive": seasonal_naive(values, horizon, settings.season_weeks),
                    "moving_average": moving_average(
                        values, horizon, settings.moving_average_weeks
                    ),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def forecast_at(
    long: pd.DataFrame, origin: pd.Timestamp, recipe: DemandRecipe, build: FeatureBuilder
) -> tuple[pd.DataFrame, DemandForecaster]:
    """Fit on the history cut at `origin` and forecast the following weeks."""
    past = long[long[WEEK_END] <= origin]
    rows = build(past, recipe.horizon_weeks, recipe.calendar)
    train = rows[rows["target"].notna()]
    late = train["target_week_end"] > origin
    if late.any():
        raise LeakageError(
            f"{int(late.sum())} training rows have a target after the origin {origin:%Y-%m-%d}"
        )
    model = fit_forecaster(train, recipe)
    at = rows[rows["origin"] == origin]
    return at.join(model.predict_rows(at)), model


def backtest(
    history: pd.DataFrame,
    recipe: DemandRecipe,
    settings: Backtest,
    build: FeatureBuilder = forecasting_rows,
    origins: list[pd.Timestamp] | None = None,
) -> BacktestResult:
    """Rolling-origin forecasts of every series, with both baselines and the measures.

    `origins` replays another backtest's origins (promotion compares two recipes on the
    same weeks); by default they follow from `settings`.
    """
    long = long_history(history)
    horizon = recipe.horizon_weeks
    notes: tuple[str, ...] = ()
    if origins is None:
        before = history_before_first_origin(long[WEEK_END], horizon, settings)
        origins = backtest_origins(long[WEEK_END], horizon, settings, before)
        if before < settings.min_history_weeks:
            notes = (
                f"the history leaves {before} weeks before the first backtest origin, fewer "
                f"than backtest.min_history_weeks ({settings.min_history_weeks}): the "
                "backtest judges forecasters fitted on less history than asked",
            )
    elif max(origins) + horizon * WEEK > long[WEEK_END].max():
        raise DemandDataError(
            f"origin {max(origins):%Y-%m-%d} leaves fewer than {horizon} observed weeks"
        )
    actual = long.set_index(["region", "series", WEEK_END])["value"]
    frames = []
    for origin in origins:
        check_no_lookahead(long, origin, horizon, recipe.calendar, build)
        at, _ = forecast_at(long, origin, recipe, build)
        at = at.merge(
            _baselines(long[long[WEEK_END] <= origin], horizon, settings),
            on=["region", "series", "horizon"],
        )
        keys = pd.MultiIndex.from_arrays([at["region"], at["series"], at["target_week_end"]])
        at["actual"] = actual.reindex(keys).to_numpy()
        frames.append(at)
    columns = [
        "region", "series", "group", "origin", "horizon", "target_week_end", "actual",
        "p10", "p50", "p90", "seasonal_naive", "moving_average",
    ]  # fmt: skip
    forecasts = pd.concat(frames, ignore_index=True)[columns]
    scale_history = long[long[WEEK_END] <= origins[0]]
    return BacktestResult(forecasts, backtest_metrics(forecasts, scale_history), origins, notes)


def backtest_metrics(forecasts: pd.DataFrame, scale_history: pd.DataFrame) -> pd.DataFrame:
    """WAPE, MASE and P10-P90 coverage per scope (each group and each series) and method.

    MASE divides each region-series' mean absolute error by the mean absolute one-step
    change of its history before the first origin, then averages over region-series.
    """
    scales = scale_history.groupby(["region", "series"])["value"].apply(
        lambda v: float(np.abs(np.diff(v.to_numpy())).mean()) if len(v) > 1 else np.nan
    )
    groups = sorted(forecasts["group"].unique())
    scopes = [("group", g) for g in groups] + [
        ("series", s) for s in sorted(forecasts["series"].unique()) if s not in groups
    ]  # a series that is a group of its own (service load) is listed once
    records = []
    for kind, scope in scopes:
        part = forecasts[forecasts[kind] == scope]
        for method, column in METHODS.items():
            per_series = [
                np.abs(one["actual"] - one[column]).mean() / scales[key]
                for key, one in part.groupby(["region", "series"])
                if scales.get(key, 0) > 0
            ]
            records.append(
                {
                    "scope": scope,
                    "method": method,
                    "wape": wape(part["actual"], part[column]),
                    "mase": float(np.mean(per_series)) if per_series else np.nan,
                    "coverage_p10_p90": (
                        interval_coverage(part["actual"], part["p10"], part["p90"])
                        if method == "model"
                        else np.nan
                    ),
                }
            )
    return pd.DataFrame(records)
