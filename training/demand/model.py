"""Quantile forecasters (P10/P50/P90) of weekly demand, and the MLflow model around them.

Two models share one recipe. Series with volume get LightGBM quantile trees on the
log-ratio of the count to a reference; sparse series (a few events a week, where quantile
trees fit plateaus of zeros and ones) get a count model: a Poisson booster for the mean
around the same reference and a negative binomial around it. Either way the P10 and P90
are then calibrated on errors the models made on weeks they had not seen (split
conformal calibration, Romano, Patterson & Candes 2019, one-sided per quantile), per
series and horizon, so that about 10 % of weeks fall below the P10 and 10 % above the P90
whatever the world's noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel
from scipy import optimize, stats

from training.demand.dataset import (
    CATEGORICAL,
    GROUP,
    REFERENCES,
    WEEK,
    WEEK_END,
    feature_columns,
    forecasting_rows,
    long_history,
)
from training.demand.errors import DemandDataError
from training.demand.propensity import PackagePropensity
from training.demand.settings import DemandCalendar, DemandSettings, Intervals, QuantileParams
from training.forecast_metrics import wape

QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
TAILS = {"p10": 0.1, "p90": 0.9}  # the calibrated quantiles
LEVELS = np.round(np.arange(0.01, 1.0, 0.01), 2)  # quantile levels a count model may use


class DemandRecipe(BaseModel):
    """Everything needed to fit the forecaster again on other data (promotion refits it)."""

    horizon_weeks: int
    calendar: DemandCalendar
    params: QuantileParams
    intervals: Intervals = Intervals()
    seed: int

    @classmethod
    def of(cls, settings: DemandSettings) -> DemandRecipe:
        return cls(
            horizon_weeks=settings.horizon_weeks,
            calendar=settings.calendar,
            params=settings.params,
            intervals=settings.intervals,
            seed=settings.seed,
        )


# --- references ----------------------------------------------------------------------------
# the candidates that stand on recent weeks alone; the others read last year's week
YEARLESS_REFERENCES = tuple(
    name for name in REFERENCES if not name.startswith(("seasonal", "blend"))
)


def choose_references(known: pd.DataFrame, weeks: int) -> dict[str, str]:
    """Each series' reference: the candidate with the lowest WAPE on its latest `weeks` of
    known targets. Every candidate is a forecast made at the origin, so its error on past
    targets is honest without any fit. Weeks before a year of history, where the seasonal
    candidate is only the level, are left out when later weeks exist; a series with no year
    of history yet chooses among the candidates that need none (`defined_reference` would
    leave it no rows to learn from otherwise)."""
    latest = known[known["target_week_end"] > known["target_week_end"].max() - weeks * WEEK]
    chosen = {}
    for series, rows in latest.groupby("series", observed=True):
        with_year = rows[rows["seasonal_reference"].notna()]
        candidates = REFERENCES if len(with_year) else YEARLESS_REFERENCES
        rows = with_year if len(with_year) else rows
        errors = {name: wape(rows["target"], rows[f"ref_{name}"]) for name in candidates}
        chosen[str(series)] = min(errors, key=lambda name: np.nan_to_num(errors[name], nan=np.inf))
    return chosen


def with_reference(rows: pd.DataFrame, references: dict[str, str]) -> pd.DataFrame:
    """`rows` with `reference` set to each series' chosen candidate (seasonal if none)."""
    choice = rows["series"].astype(str).map(references).fillna("seasonal")
    picked = rows["ref_seasonal"].to_numpy().copy()
    for name in REFERENCES:
        hit = (choice == name).to_numpy()
        picked[hit] = rows.loc[hit, f"ref_{name}"].to_numpy()
    return rows.assign(reference=picked)


def defined_reference(rows: pd.DataFrame, references: dict[str, str]) -> pd.Series:
    """Rows whose series' reference is what it claims: a seasonal reference needs last
    year's week (without it, it stands at the level). The models learn corrections to the
    reference they will forecast with, so the first year's rows of seasonal series, where
    the count's whole season would look like a correction, are left out of their fit."""
    chosen = rows["series"].astype(str).map(references).fillna("seasonal")
    return chosen.isin(YEARLESS_REFERENCES) | rows["seasonal_reference"].notna()


def sparse_series(known: pd.DataFrame, below: float) -> set[str]:
    """Series whose typical region sells fewer than `below` a week (its latest yearly mean)."""
    latest = known[known["origin"] == known["origin"].max()]
    typical = (latest["level"] - 1.0).groupby(latest["series"].astype(str)).median()
    return set(typical[typical < below].index)


# --- calibration ---------------------------------------------------------------------------
def conformal_quantile(errors: np.ndarray, level: float) -> float:
    """Split conformal's order statistic of n held-out `errors` at `level`: the
    floor((n + 1) x level)-th smallest for a lower tail, the ceil((n + 1) x level)-th for
    an upper one (the extreme error where n is too small for it). A new error then falls
    below (above) it at most `level` (1 - `level`) of the time whatever n; the empirical
    quantile of the n errors themselves falls short of that by about 1 / n."""
    ordered = np.sort(np.asarray(errors, dtype="float64"))
    count = len(ordered)
    rank = np.floor((count + 1) * level) if level < 0.5 else np.ceil((count + 1) * level)
    return float(ordered[int(np.clip(rank, 1, count)) - 1])


def conformal_offsets(
    frame: pd.DataFrame, min_rows: int
) -> dict[tuple[str, int], tuple[float, float]]:
    """Shifts of the P10 and P90 (log1p counts) per (series, horizon), horizon 0 = the
    series' own over all horizons.

    `frame` holds held-out rows: series, horizon, target and the raw p10/p90. A shift is
    the empirical quantile of log1p(target) - log1p(raw): with it, the share of held-out
    weeks below the P10 is 10 % (above the P90: 10 %), by split conformal's order statistic
    (`conformal_quantile`). Horizons with fewer than `min_rows` rows take their series'
    shift.
    """
    offsets: dict[tuple[str, int], tuple[float, float]] = {}
    actual = np.log1p(frame["target"].to_numpy())

    def shifts(index: np.ndarray) -> tuple[float, float]:
        low = actual[index] - np.log1p(frame["p10"].to_numpy()[index])
        high = actual[index] - np.log1p(frame["p90"].to_numpy()[index])
        return conformal_quantile(low, TAILS["p10"]), conformal_quantile(high, TAILS["p90"])

    for series, part in frame.groupby(frame["series"].astype(str)):
        own = shifts(frame.index.get_indexer(part.index))
        offsets[(series, 0)] = own
        for horizon, rows in part.groupby("horizon"):
            if len(rows) >= min_rows:
                offsets[(series, int(horizon))] = shifts(frame.index.get_indexer(rows.index))
    return offsets


def _shift(rows: pd.DataFrame, offsets: dict[tuple[str, int], tuple[float, float]]) -> np.ndarray:
    """Each row's (P10, P90) shift: its series and horizon's, else its series', else none."""
    out = np.zeros((len(rows), 2))
    keys = zip(rows["series"].astype(str), rows["horizon"].astype(int), strict=True)
    for i, key in enumerate(keys):
        out[i] = offsets.get(key, offsets.get((key[0], 0), (0.0, 0.0)))
    return out


@dataclass(frozen=True)
class CountModel:
    """Negative binomial counts around a Poisson booster's mean, for sparse series.

    The mean is the row's reference times the booster's multiplier; the dispersion (variance
    mu + alpha mu^2) is fitted by maximum likelihood on held-out weeks, and so are the
    quantile levels each series' P10 and P90 are read at: counts are whole, so the level
    whose held-out share of weeks below (above) comes nearest 10 % is taken.
    """

    booster: lgb.Booster
    alpha: float
    levels: dict[str, tuple[float, float]]  # series -> quantile levels of its P10, P90

    def mean(self, matrix: pd.DataFrame, reference: np.ndarray) -> np.ndarray:
        return reference * self.booster.predict(matrix)

    def quantiles(self, mean: np.ndarray, series: pd.Series) -> np.ndarray:
        levels = np.array([self.levels.get(s, (0.1, 0.9)) for s in series.astype(str)])
        return np.column_stack(
            [
                nb_quantile(levels[:, 0], mean, self.alpha),
                nb_quantile(np.full(len(mean), 0.5), mean, self.alpha),
                nb_quantile(levels[:, 1], mean, self.alpha),
            ]
        )


def nb_quantile(level: np.ndarray, mean: np.ndarray, alpha: float) -> np.ndarray:
    """Quantiles of a negative binomial of mean `mean` and variance mean + alpha mean^2
    (Poisson as alpha -> 0)."""
    mean = np.maximum(mean, 1e-9)
    if alpha < 1e-6:
        return stats.poisson.ppf(level, mean)
    size = 1.0 / alpha
    return stats.nbinom.ppf(level, size, size / (size + mean))


def fit_dispersion(target: np.ndarray, mean: np.ndarray) -> float:
    """Maximum-likelihood alpha of a negative binomial with known means (0: Poisson)."""
    mean = np.maximum(mean, 1e-9)

    def loss(log_alpha: float) -> float:
        size = np.exp(-log_alpha)
        return -float(stats.nbinom.logpmf(target, size, size / (size + mean)).sum())

    found = optimize.minimize_scalar(loss, bounds=(np.log(1e-4), np.log(20.0)), method="bounded")
    alpha = float(np.exp(found.x))
    poisson = -float(stats.poisson.logpmf(target, mean).sum())
    return alpha if found.fun < poisson - 1e-9 else 0.0


def count_levels(
    target: np.ndarray, mean: np.ndarray, alpha: float, series: pd.Series
) -> dict[str, tuple[float, float]]:
    """Per series, the quantile levels whose held-out tail shares come nearest 10 %."""
    chosen = {}
    for name in series.astype(str).unique():
        own = (series.astype(str) == name).to_numpy()
        y, mu = target[own], mean[own]
        below = [np.mean(y < nb_quantile(np.full(len(y), q), mu, alpha)) for q in LEVELS]
        above = [np.mean(y > nb_quantile(np.full(len(y), q), mu, alpha)) for q in LEVELS]
        low = LEVELS[int(np.argmin(np.abs(np.array(below) - TAILS["p10"])))]
        high = LEVELS[int(np.argmin(np.abs(np.array(above) - (1 - TAILS["p90"]))))]
        chosen[name] = (float(low), float(max(high, low)))
    return chosen


# --- the forecaster ------------------------------------------------------------------------
@dataclass(frozen=True)
class DemandForecaster:
    """Quantile trees for the series with volume and a count model for the sparse ones,
    pooled over regions, series and horizons, each on its series' chosen reference."""

    recipe: DemandRecipe
    boosters: dict[str, lgb.Booster]
    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # series -> candidate
    offsets: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    counts: CountModel | None = None
    sparse: frozenset[str] = frozenset()
    # how much of the P50 trees' correction each series keeps (1: all of it)
    p50_weights: dict[str, float] = field(default_factory=dict)

    def matrix(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns, categories fixed to those seen in training."""
        frame = rows[self.columns].copy()
        for column, values in self.categories.items():
            frame[column] = pd.Categorical(frame[column], categories=values)
        return frame

    def raw_quantiles(self, rows: pd.DataFrame) -> np.ndarray:
        """Uncalibrated P10/P50/P90 log1p counts of the quantile trees, never crossing.

        Independently fitted quantile models can cross; sorting each row's predictions
        (rearrangement, Chernozhukov et al. 2010) can only bring them closer to the truth.
        """
        matrix = self.matrix(rows)
        scaled = np.column_stack([self.boosters[name].predict(matrix) for name in QUANTILES])
        weight = rows["series"].astype(str).map(self.p50_weights).fillna(1.0).to_numpy()
        scaled[:, 1] *= weight
        return np.log1p(rows["reference"].to_numpy())[:, None] + np.sort(scaled, axis=1)

    def predict_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Calibrated P10/P50/P90 counts for forecasting rows: never crossing, never negative."""
        rows = with_reference(rows, self.references)
        result = np.zeros((len(rows), 3))
        sparse = rows["series"].astype(str).isin(self.sparse).to_numpy()
        if (~sparse).any():
            volume = rows[~sparse]
            if len(self.boosters) < len(QUANTILES):
                unknown = sorted(volume["series"].astype(str).unique())
                raise DemandDataError(
                    f"this forecaster was fitted without quantile trees, so it cannot "
                    f"forecast series {unknown}: refit it on a history that holds them"
                )
            logs = self.raw_quantiles(volume)
            shift = _shift(volume, self.offsets)
            logs[:, 0] += shift[:, 0]
            logs[:, 2] += shift[:, 1]
            result[~sparse] = np.expm1(np.sort(logs, axis=1))
        if sparse.any():
            if self.counts is None:
                raise DemandDataError("this forecaster has no count model for sparse series")
            few = rows[sparse]
            mean = self.counts.mean(self.matrix(few), few["reference"].to_numpy())
            result[sparse] = self.counts.quantiles(mean, few["series"])
        return pd.DataFrame(np.clip(result, 0.0, None), columns=list(QUANTILES), index=rows.index)

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

    def described(self) -> pd.DataFrame:
        """One row per series: its model, reference and calibration (logged with the model)."""
        records = []
        for series in sorted(self.references):
            counted = series in self.sparse and self.counts is not None
            offset = self.offsets.get((series, 0), (np.nan, np.nan))
            levels = self.counts.levels.get(series) if self.counts else None
            records.append(
                {
                    "series": series,
                    "model": "count" if series in self.sparse else "quantile trees",
                    "reference": self.references[series],
                    "p50_weight": self.p50_weights.get(series, np.nan),
                    "p10_shift_log1p": np.nan if series in self.sparse else offset[0],
                    "p90_shift_log1p": np.nan if series in self.sparse else offset[1],
                    "count_alpha": self.counts.alpha if counted and self.counts else np.nan,
                    "p10_level": levels[0] if counted and levels else np.nan,
                    "p90_level": levels[1] if counted and levels else np.nan,
                }
            )
        return pd.DataFrame(records)


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


def lightgbm_params(recipe: DemandRecipe, quantile: float | None) -> dict[str, Any]:
    """Parameters of one quantile model, or of the count model's Poisson mean (None)."""
    extra = recipe.params.model_dump(exclude={"num_rounds", "early_stopping_rounds"})
    objective = {"objective": "quantile", "alpha": quantile, "metric": "quantile"}
    if quantile is None:
        objective = {"objective": "poisson", "metric": "poisson"}
    return {
        **objective,
        # start every row at its reference (log-ratio 0), not at the training median
        "boost_from_average": False,
        "verbosity": -1,
        "seed": recipe.seed,
        "deterministic": True,
        **extra,
    }


def _log_ratio(rows: pd.DataFrame) -> np.ndarray:
    return np.log1p(rows["target"].to_numpy()) - np.log1p(rows["reference"].to_numpy())


def _train(
    settings: dict[str, Any],
    draft: DemandForecaster,
    fit_part: pd.DataFrame,
    held_out: pd.DataFrame,
    every: pd.DataFrame,
    params: QuantileParams,
) -> tuple[lgb.Booster, lgb.Booster | None]:
    """The probe (fit before the held-out weeks, its rounds picked there) and the final
    booster on every row with the probe's rounds."""
    poisson = settings["objective"] == "poisson"

    def dataset(rows: pd.DataFrame) -> lgb.Dataset:
        if poisson:  # the mean is the reference times exp(trees)
            return lgb.Dataset(
                draft.matrix(rows),
                rows["target"].to_numpy(),
                init_score=np.log(rows["reference"].to_numpy()),
            )
        return lgb.Dataset(draft.matrix(rows), _log_ratio(rows), weight=rows["reference"])

    probe, rounds = None, params.num_rounds
    if len(fit_part) and len(held_out):
        probe = lgb.train(
            settings,
            dataset(fit_part),
            num_boost_round=params.num_rounds,
            valid_sets=[dataset(held_out)],
            callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
        )
        rounds = max(probe.best_iteration, 1)
    return lgb.train(settings, dataset(every), num_boost_round=rounds), probe


P50_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def shrink_p50(first: DemandForecaster, held_out: pd.DataFrame) -> dict[str, float]:
    """Per series, the share of the first fit's P50 correction to its reference that gave
    the lowest WAPE on the held-out weeks: trees that only chase noise on a series fall
    back towards its reference instead of pulling the forecast off it."""
    matrix = first.matrix(held_out)
    correction = first.boosters["p50"].predict(matrix)
    base = np.log1p(held_out["reference"].to_numpy())
    weights = {}
    for series, own in held_out.groupby(held_out["series"].astype(str)).indices.items():
        errors = [
            wape(held_out["target"].to_numpy()[own], np.expm1(base[own] + w * correction[own]))
            for w in P50_WEIGHTS
        ]
        weights[series] = P50_WEIGHTS[int(np.nanargmin(errors))]
    return weights


BLOCK_WEEKS = 4  # held-out weeks come in blocks of four: a month, never a lone week


def held_out_weeks(target_week_end: pd.Series, weeks: int) -> pd.Series:
    """Which rows' targets are held out from the first fit: `weeks` weeks in all, in
    four-week blocks spread evenly over the history, the latest block always among them.

    Held out over every season rather than only the latest months, the first fit's
    errors judge how many trees pay off all year round (a quiet winter must not stop the
    trees that learn the summer), and calibrate intervals for every season alike.
    """
    ends = np.sort(target_week_end.unique())
    blocks = max(1, len(ends) // BLOCK_WEEKS)
    wanted = min(blocks, max(1, weeks // BLOCK_WEEKS))
    # block 0 is the latest; take `wanted` blocks evenly spaced from it backwards
    chosen = set(np.round(np.linspace(0, blocks - 1, wanted)).astype(int)) if wanted > 1 else {0}
    block_of = (len(ends) - 1 - np.searchsorted(ends, target_week_end.to_numpy())) // BLOCK_WEEKS
    return pd.Series(np.isin(block_of, list(chosen)), index=target_week_end.index)


def fit_forecaster(rows: pd.DataFrame, recipe: DemandRecipe) -> DemandForecaster:
    """Fit the models on rows whose target is known.

    Each series first gets its reference (`choose_references`). The quantile models learn
    the log-ratio of the count to it, starting from zero: with no trees the forecast *is*
    the reference. Log-ratios keep a tenfold miss and a tenth-fold miss symmetric, and
    quantiles survive the monotone transform, so the P50 of the log-ratio gives the P50
    count. Rows are weighted by their reference, so large series count as much as their
    volume, as in WAPE. `calibration_weeks` of targets are held out from a first fit
    (`held_out_weeks`): how many trees to add is chosen there, and its errors there calibrate
    the P10 and P90 (`conformal_offsets`; the count model's dispersion and levels likewise).
    The final models use every row.
    """
    known = rows[rows["target"].notna()]
    if known.empty:
        raise ValueError("no forecasting rows with a known target: the history is too short")
    settings = recipe.intervals
    references = choose_references(known, settings.reference_weeks)
    known = with_reference(known, references)
    known = known[defined_reference(known, references)]
    sparse = frozenset(sparse_series(known, settings.count_model_below))
    columns = feature_columns(known)
    categories = {c: sorted(known[c].astype(str).unique()) for c in CATEGORICAL}
    draft = DemandForecaster(recipe, {}, columns, categories, references)
    held = held_out_weeks(known["target_week_end"], settings.calibration_weeks)
    is_sparse = known["series"].astype(str).isin(sparse)
    boosters: dict[str, lgb.Booster] = {}
    offsets: dict[tuple[str, int], tuple[float, float]] = {}
    p50_weights: dict[str, float] = {}
    volume = known[~is_sparse]
    if len(volume):
        fit_part, held_out = volume[~held[volume.index]], volume[held[volume.index]]
        probes = {}
        for name, quantile in QUANTILES.items():
            boosters[name], probes[name] = _train(
                lightgbm_params(recipe, quantile), draft, fit_part, held_out, volume, recipe.params
            )
        fitted = {name: probe for name, probe in probes.items() if probe is not None}
        if len(fitted) == len(QUANTILES):
            first = DemandForecaster(recipe, fitted, columns, categories)
            p50_weights = shrink_p50(first, held_out)
            first = DemandForecaster(recipe, fitted, columns, categories, p50_weights=p50_weights)
            raw = np.expm1(first.raw_quantiles(held_out))
            judged = held_out[["series", "horizon", "target"]].assign(p10=raw[:, 0], p90=raw[:, 2])
            offsets = conformal_offsets(judged.reset_index(drop=True), settings.min_rows)
    counts = None
    few = known[is_sparse]
    if len(few):
        fit_part, held_out = few[~held[few.index]], few[held[few.index]]
        booster, probe = _train(
            lightgbm_params(recipe, None), draft, fit_part, held_out, few, recipe.params
        )
        judged = held_out if probe is not None else few
        mean = (probe or booster).predict(draft.matrix(judged)) * judged["reference"].to_numpy()
        target = judged["target"].to_numpy()
        alpha = fit_dispersion(target, mean)
        counts = CountModel(booster, alpha, count_levels(target, mean, alpha, judged["series"]))
    return DemandForecaster(
        recipe, boosters, columns, categories, references, offsets, counts, sparse, p50_weights
    )


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
    """MLflow wrapper: region-week history in (demand_v2 columns, `pyfunc_input`), forecast
    table out."""

    def __init__(self, model: DemandModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        history = model_input.copy()
        history[WEEK_END] = pd.to_datetime(history[WEEK_END], utc=True)
        return self.model.forecaster.forecast(history)
