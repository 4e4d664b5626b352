"""Forecast intervals that keep their promise, on planted series of known distribution:
conformal calibration of the quantile trees, the count model of sparse series, and the
choice of each series' reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.demand.backtest import backtest
from training.demand.dataset import SERIES, WEEK, WEEK_END, forecasting_rows, long_history
from training.demand.model import (
    DemandRecipe,
    choose_references,
    conformal_offsets,
    conformal_quantile,
    count_levels,
    fit_dispersion,
    fit_forecaster,
    held_out_weeks,
    nb_quantile,
)
from training.demand.settings import DemandSettings
from training.forecast_metrics import interval_coverage

FAST = DemandSettings.model_validate(
    {
        "params": {"num_rounds": 120, "early_stopping_rounds": 15},
        "backtest": {"origins": 4, "step_weeks": 4},
    }
)
SIZES = {"a": 1.0, "b": 2.0, "c": 0.5, "d": 1.5, "e": 1.0, "f": 3.0}
DISPERSION = 0.05  # the planted negative binomial's alpha: variance = mu + alpha mu^2


def _nb(rng: np.random.Generator, mean: np.ndarray, alpha: float) -> np.ndarray:
    """Negative binomial counts of the given means (a gamma-Poisson mixture)."""
    return rng.poisson(mean * rng.gamma(1 / alpha, alpha, len(mean)))


def _planted(weeks: int = 130, seed: int = 0) -> pd.DataFrame:
    """Six regions, every series a negative binomial around a known mean: daily passes and
    service contacts steady, roaming packs with a yearly season, family upgrades about
    one a week (sparse), campus packs a term-start surge."""
    rng = np.random.default_rng(seed)
    ends = pd.date_range("2023-01-09", periods=weeks, freq="7D", tz="UTC")
    week = (ends - WEEK).isocalendar().week.to_numpy()
    season = 1.0 + 0.6 * np.sin(2 * np.pi * week / 52)
    frames = []
    for region, size in SIZES.items():
        means = {
            "purchases_daily_pass": np.full(weeks, 30.0 * size),
            "service_contacts": np.full(weeks, 50.0 * size),
            "purchases_roaming_pack": 25.0 * size * season,
            "purchases_family_upgrade": np.full(weeks, 1.0 * size),
            "purchases_campus_data_pack": np.where(np.isin(week, [36, 37]), 40.0, 4.0) * size,
        }
        frame = pd.DataFrame({"region": region, WEEK_END: ends})
        for column in SERIES.values():
            frame[column] = _nb(rng, means[column], DISPERSION)
        frame["network_fault_contacts"] = rng.poisson(2 * size, weeks)
        frame["active_customers"] = int(1000 * size)
        frame["active_students"] = int(100 * size)
        frame["outage_hours"] = 0.0
        frame["outage_customer_hours"] = 0.0
        frame["open_tickets"] = rng.poisson(5 * size, weeks)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("held_out", [12, 25, 47])
def test_the_conformal_order_statistic_keeps_its_promise_on_few_held_out_weeks(
    held_out: int,
) -> None:
    """Over many calibration sets of a few dozen errors, a fresh error falls below the
    lower shift at most 10 % of the time and above the upper one at most 10 % (the plain
    empirical quantile of so few errors lets through about 1 / n more on each side)."""
    rng = np.random.default_rng(held_out)
    errors = rng.normal(size=(20_000, held_out))
    fresh = rng.normal(size=20_000)
    low = np.array([conformal_quantile(row, 0.1) for row in errors])
    high = np.array([conformal_quantile(row, 0.9) for row in errors])
    assert 0.1 - 1 / held_out < (fresh < low).mean() <= 0.1 + 0.006
    assert 0.1 - 1 / held_out < (fresh > high).mean() <= 0.1 + 0.006
    plain = np.quantile(errors, 0.1, axis=1, method="lower")
    assert (fresh < plain).mean() > (fresh < low).mean() or held_out % 10 in (0, 9)
    assert conformal_quantile(np.array([3.0, 1.0, 2.0]), 0.1) == 1.0  # too few: the extreme


def test_conformal_offsets_bring_too_narrow_quantiles_to_their_promise() -> None:
    """Raw P10/P90 half as wide as the truth's: the shifts learnt on one sample give
    about 10 % below and 10 % above on a fresh sample, per series, whatever its noise."""
    rng = np.random.default_rng(1)

    def sample(n: int) -> pd.DataFrame:
        noise = {"wide": 0.5, "narrow": 0.15}
        frames = []
        for series, sd in noise.items():
            level = rng.uniform(20, 200, n)
            target = np.round(level * np.exp(rng.normal(0, sd, n)))
            raw_low = level * np.exp(-0.64 * sd)  # the true P10 is at -1.28 sd
            raw_high = level * np.exp(0.64 * sd)
            frames.append(
                pd.DataFrame(
                    {"series": series, "horizon": rng.integers(1, 9, n), "target": target}
                ).assign(p10=raw_low, p90=raw_high, level=level, sd=sd)
            )
        return pd.concat(frames, ignore_index=True)

    learn, judge = sample(2_000), sample(4_000)
    assert interval_coverage(judge["target"], judge["p10"], judge["p90"]) < 0.6
    offsets = conformal_offsets(learn, min_rows=150)
    for series, part in judge.groupby("series"):
        low, high = offsets[(series, 0)]
        lower = np.expm1(np.log1p(part["p10"]) + low)
        upper = np.expm1(np.log1p(part["p90"]) + high)
        assert (part["target"] < lower).mean() == pytest.approx(0.1, abs=0.03)
        assert (part["target"] > upper).mean() == pytest.approx(0.1, abs=0.03)
        assert interval_coverage(part["target"], lower, upper) == pytest.approx(0.8, abs=0.04)
    # per horizon where a horizon holds enough rows, else the series' own
    assert ("wide", 3) in offsets
    assert conformal_offsets(learn, min_rows=10_000).keys() == {("wide", 0), ("narrow", 0)}


def test_the_dispersion_of_planted_negative_binomial_counts_is_recovered() -> None:
    rng = np.random.default_rng(2)
    mean = rng.uniform(0.5, 8.0, 20_000)
    assert fit_dispersion(_nb(rng, mean, 0.3), mean) == pytest.approx(0.3, abs=0.05)
    assert fit_dispersion(rng.poisson(mean), mean) < 0.02  # Poisson: (nearly) none


def test_count_levels_give_sparse_counts_ten_percent_in_each_tail() -> None:
    """Whole counts of about one a week: the levels read from held-out weeks put about
    10 % of fresh weeks below the P10 and above the P90, where the nominal 0.1 and 0.9
    quantiles cannot (a P10 of 0 has nothing below it)."""
    rng = np.random.default_rng(3)
    mean = rng.uniform(0.5, 3.0, 6_000)
    series = pd.Series(["family_upgrade"] * len(mean))
    learn, judge = slice(0, 3_000), slice(3_000, None)
    target = _nb(rng, mean, DISPERSION)
    levels = count_levels(target[learn], mean[learn], DISPERSION, series[learn])
    low, high = levels["family_upgrade"]
    fresh, mu = target[judge], mean[judge]
    nominal_below = np.mean(fresh < nb_quantile(np.full(len(mu), 0.1), mu, DISPERSION))
    below = np.mean(fresh < nb_quantile(np.full(len(mu), low), mu, DISPERSION))
    above = np.mean(fresh > nb_quantile(np.full(len(mu), high), mu, DISPERSION))
    assert abs(below - 0.1) < abs(nominal_below - 0.1)
    assert below == pytest.approx(0.1, abs=0.04)
    assert above == pytest.approx(0.1, abs=0.04)


def test_held_out_weeks_come_in_blocks_over_the_whole_history_with_the_latest() -> None:
    ends = pd.Series(pd.date_range("2024-01-08", periods=100, freq="7D", tz="UTC"))
    held = held_out_weeks(ends, 24)
    assert held.sum() == 24
    assert held.iloc[-4:].all()  # the latest block
    assert held.iloc[:30].any() and held.iloc[30:70].any()  # and blocks all the way back
    runs = held.astype(int).diff().abs().sum()
    assert runs <= 2 * 6  # six blocks of four, not scattered weeks


def test_each_series_takes_the_reference_that_forecast_it_best() -> None:
    planted = _planted(weeks=130)
    rows = forecasting_rows(long_history(planted), 8, FAST.calendar)
    chosen = choose_references(rows[rows["target"].notna()], 52)
    assert chosen["roaming_pack"].startswith("seasonal")  # a strong yearly season
    assert chosen["campus_data_pack"].startswith("seasonal")  # a surge every September
    for steady in ("daily_pass", "service_load"):  # flat: a long level, not last year's week
        assert chosen[steady] in {"level", "per_customer", "level_mix", "ma13"}, chosen


MONTHLY_TRAVEL = {7: 3.0, 8: 3.5, 12: 1.5}  # a season that turns on the 1st of the month


def _true_weekly_mean(ends: pd.DatetimeIndex, daily: float) -> np.ndarray:
    """The expected count of each week ending at `ends` when every day of a month sells
    `daily` times the month's travel factor."""
    days = np.stack([(ends - pd.Timedelta(days=back)).month for back in range(1, 8)])
    return (daily * np.vectorize(lambda m: MONTHLY_TRAVEL.get(m, 1.0))(days)).sum(axis=0)


def test_a_season_of_calendar_months_is_read_from_last_years_months() -> None:
    """Roaming sales whose daily rate steps on the 1st of July, August, September and
    December: last year's calendar months forecast the coming weeks closer to their true
    mean than last year's single week does, and the series takes that reference."""
    planted = _planted(weeks=160, seed=5)
    rng = np.random.default_rng(5)
    ends = pd.DatetimeIndex(planted.loc[planted["region"] == "a", WEEK_END])
    for region, size in SIZES.items():
        mean = _true_weekly_mean(ends, 3.0 * size)
        planted.loc[planted["region"] == region, "purchases_roaming_pack"] = rng.poisson(mean)
    rows = forecasting_rows(long_history(planted), 8, FAST.calendar)
    known = rows[rows["target"].notna()]
    late = known[(known["series"] == "roaming_pack") & (known["origin"] >= ends[-60])]
    truth = np.concatenate(
        [
            _true_weekly_mean(pd.DatetimeIndex(one["target_week_end"]), 3.0 * SIZES[region])
            for region, one in late.groupby("region")
        ]
    )
    late = pd.concat([one for _, one in late.groupby("region")])
    error = {
        name: float(np.abs(late[f"ref_{name}"] - truth).sum() / truth.sum())
        for name in ("seasonal_base", "seasonal_month")
    }
    assert error["seasonal_month"] < 0.9 * error["seasonal_base"], error
    assert choose_references(known, 52)["roaming_pack"] == "seasonal_month"


def test_a_history_shorter_than_a_year_forecasts_every_series() -> None:
    """Before a year of history no series can stand on last year's week: each takes a
    reference that needs none, learns from its rows, and is forecast, seasonal or not."""
    planted = _planted(weeks=34)
    rows = forecasting_rows(long_history(planted), 8, FAST.calendar)
    chosen = choose_references(rows[rows["target"].notna()], 52)
    assert not any(name.startswith(("seasonal", "blend")) for name in chosen.values()), chosen
    model = fit_forecaster(rows, DemandRecipe.of(FAST))
    forecast = model.forecast(planted)
    assert set(forecast["series"].astype(str)) == set(chosen)
    assert forecast[["p10", "p50", "p90"]].notna().all().all()


@pytest.mark.slow
def test_the_backtest_covers_planted_series_as_promised() -> None:
    """Rolling-origin forecasts of planted negative binomial series: P10-P90 coverage near
    80 % for the series with volume and for the sparse one, which the count model takes."""
    planted = _planted(weeks=130)
    recipe = DemandRecipe.of(FAST)
    rows = forecasting_rows(long_history(planted), 8, FAST.calendar)
    model = fit_forecaster(rows, recipe)
    assert model.sparse == {"family_upgrade"}
    assert model.counts is not None and model.counts.alpha < 0.3
    result = backtest(planted, recipe, FAST.backtest)
    for scope in ("daily_pass", "roaming_pack", "service_load"):
        assert 0.7 <= result.figure(scope, "model", "coverage_p10_p90") <= 0.9, scope
    assert 0.65 <= result.figure("family_upgrade", "model", "coverage_p10_p90") <= 0.95
    for scope in ("service_load", "daily_pass"):  # steady series: better than last year's week
        model_wape = result.figure(scope, "model", "wape")
        assert model_wape < result.figure(scope, "seasonal_naive", "wape")
        assert model_wape <= result.figure(scope, "moving_average", "wape") * 1.02
