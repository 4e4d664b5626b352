"""Quantile forecasters (P10/P50/P90) of weekly demand, and the MLflow model around them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel

from training.demand.dataset import (
    CATEGORICAL,
    GROUP,
    WEEK,
    WEEK_END,
    feature_columns,
    forecasting_rows,
    long_history,
)
from training.demand.errors import DemandDataError
from training.demand.propensity import PackagePropensity
from training.demand.settings import DemandCalendar, DemandSettings, QuantileParams

QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}


class DemandRecipe(BaseModel):
    """Everything needed to fit the forecaster again on other data (promotion refits it)."""

    horizon_weeks: int
    calendar: DemandCalendar
    params: QuantileParams
    seed: int

    @classmethod
    def of(cls, settings: DemandSettings) -> DemandRecipe:
        return cls(
            horizon_weeks=settings.horizon_weeks,
            calendar=settings.calendar,
            params=settings.params,
            seed=settings.seed,
        )


@dataclass(frozen=True)
class DemandForecaster:
    """One LightGBM quantile model per quantile, over every region, series and horizon."""

    recipe: DemandRecipe
    boosters: dict[str, lgb.Booster]
    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    def matrix(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns, categories fixed to those seen in training."""
        frame = rows[self.columns].copy()
        for column, values in self.categories.items():
            frame[column] = pd.Categorical(frame[column], categories=values)
        return frame

    def predict_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """P10/P50/P90 counts for forecasting rows: never crossing, never negative.

        Independently fitted quantile models can cross; sorting each row's predictions
        (rearrangement, Chernozhukov et al. 2010) can only bring them closer to the truth.
        """
        matrix = self.matrix(rows)
        scaled = np.column_stack([self.boosters[name].predict(matrix) for name in QUANTILES])
        reference = rows["reference"].to_numpy()[:, None]
        counts = (reference + 1.0) * np.exp(np.sort(scaled, axis=1)) - 1.0
        return pd.DataFrame(np.clip(counts, 0.0, None), columns=list(QUANTILES), index=rows.index)

    def forecast(self, history: pd.DataFrame, weeks: int | None = None) -> pd.DataFrame:
        """The next `weeks` weeks of every series from the last week of `history`."""
        weeks = weeks or self.recipe.horizon_weeks
        if not 1 <= weeks <= self.recipe.horizon_weeks:
            raise DemandDataError(
                f"this model forecasts 1 to {self.recipe.horizon_weeks} weeks ahead, not {weeks}"
            )
        rows = forecasting_rows(long_history(history), weeks, self.recipe.calendar)
        rows = rows[rows["origin"] == rows["origin"].max()]
        return forecast_table(rows, self.predict_rows(rows))


def forecast_table(rows: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The tidy forecast: one row per region, series and week, with its quantiles."""
    table = pd.DataFrame(
        {
            "region": rows["region"].astype(str),
            "series": rows["series"].astype(str),
            "group": rows["series"].astype(str).map(GROUP),
            "origin": rows["origin"],
            "horizon": rows["horizon"].astype("int64"),
            "week_start": rows["target_week_end"] - WEEK,
            "week_end": rows["target_week_end"],
        }
    )
    table[list(QUANTILES)] = predictions.to_numpy()
    return table.sort_values(["region", "series", "horizon"], ignore_index=True)


def lightgbm_params(recipe: DemandRecipe, quantile: float) -> dict[str, Any]:
    extra = recipe.params.model_dump(exclude={"num_rounds", "valid_weeks", "early_stopping_rounds"})
    return {
        "objective": "quantile",
        "alpha": quantile,
        "metric": "quantile",
        # start every row at its reference (log-ratio 0), not at the training median
        "boost_from_average": False,
        "verbosity": -1,
        "seed": recipe.seed,
        "deterministic": True,
        **extra,
    }


def _log_ratio(rows: pd.DataFrame) -> np.ndarray:
    return np.log1p(rows["target"].to_numpy()) - np.log1p(rows["reference"].to_numpy())


def fit_forecaster(rows: pd.DataFrame, recipe: DemandRecipe) -> DemandForecaster:
    """Fit the quantile models on rows whose target is known.

    Each model learns the log-ratio of the count to the row's reference (a robust
    seasonal naive forecast, see `forecasting_rows`), starting from zero: with no trees it
    *is* the reference. Log-ratios keep a tenfold miss and a tenth-fold miss symmetric, and
    quantiles survive the monotone transform, so the P50 of the log-ratio gives the P50
    count. Rows are weighted by their reference, so large series count as much as their
    volume, as in WAPE. How many trees to add is chosen on the latest `valid_weeks` of
    targets, held out from a first fit; the final fit uses every row.
    """
    known = rows[rows["target"].notna()]
    if known.empty:
        raise ValueError("no forecasting rows with a known target: the history is too short")
    columns = feature_columns(known)
    categories = {c: sorted(known[c].astype(str).unique()) for c in CATEGORICAL}
    draft = DemandForecaster(recipe, {}, columns, categories)
    params = recipe.params
    valid_from = known["target_week_end"].max() - (params.valid_weeks - 1) * WEEK
    fit_part = known[known["target_week_end"] < valid_from]
    valid_part = known[known["target_week_end"] >= valid_from]
    boosters = {}
    for name, quantile in QUANTILES.items():
        settings = lightgbm_params(recipe, quantile)
        rounds = params.num_rounds
        if len(fit_part) and len(valid_part):
            train = lgb.Dataset(
                draft.matrix(fit_part), _log_ratio(fit_part), weight=fit_part["reference"]
            )
            valid = lgb.Dataset(
                draft.matrix(valid_part), _log_ratio(valid_part), weight=valid_part["reference"]
            )
            probe = lgb.train(
                settings,
                train,
                num_boost_round=params.num_rounds,
                valid_sets=[valid],
                callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
            )
            rounds = max(probe.best_iteration, 1)
        data = lgb.Dataset(draft.matrix(known), _log_ratio(known), weight=known["reference"])
        boosters[name] = lgb.train(settings, data, num_boost_round=rounds)
    return DemandForecaster(recipe, boosters, columns, categories)


@dataclass(frozen=True)
class DemandModel:
    """What the registered `demand` model holds: the forecaster and the campaign ranking."""

    forecaster: DemandForecaster
    propensity: PackagePropensity


def pyfunc_input(history: pd.DataFrame) -> pd.DataFrame:
    """A region-week history as the MLflow model takes it: MLflow's datetime type is
    timezone-naive, so week ends go in as naive UTC."""
    return history.assign(**{WEEK_END: history[WEEK_END].dt.tz_convert("UTC").dt.tz_localize(None)})


class DemandPyfunc(PythonModel):
    """MLflow wrapper: region-week history in (demand_v1 columns, `pyfunc_input`), forecast
    table out."""

    def __init__(self, model: DemandModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        history = model_input.copy()
        history[WEEK_END] = pd.to_datetime(history[WEEK_END], utc=True)
        return self.model.forecaster.forecast(history)
