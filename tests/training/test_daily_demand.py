"""Daily service load: the weekly forecast split over days, its day-level quantiles, backtested.

The planted world: each region-week has a level W ~ Gamma (relative sd LEVEL_CV) around the
weekly forecast's P50; each day counts NB(s_d W, 1 / PHI) tickets, s the planted weekday
profile; 15 % of tickets are store visits that no line answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.lifecycle.contract import TABLES
from training.demand.daily import (
    Z90,
    answered_counts,
    daily_backtest,
    daily_errors,
    daily_forecast,
    day_dispersion,
    nb_quantiles,
    pit_coverage,
    weekday_shares,
)
from training.demand.settings import Backtest, DemandCalendar, Staffing
from training.demand.staffing import contact_profiles, hourly_load
from training.forecast_metrics import interval_coverage

MONDAY = pd.Timestamp("2026-03-02", tz="UTC")  # the first forecast week starts here
WEEK = pd.Timedelta(days=7)
PROFILE = np.array([0.20, 0.17, 0.15, 0.14, 0.13, 0.11, 0.10])  # Monday .. Sunday
PHI = 0.02  # day-level over-dispersion: variance mu + PHI mu^2
LEVEL_CV = 0.10  # relative sd of a week's level around the forecast
WEEKLY = {  # all channels, per week
    "north": 700.0, "south": 350.0, "east": 500.0, "west": 250.0, "hills": 400.0, "coast": 600.0,
}  # fmt: skip
CHANNELS, CHANNEL_SHARES = ["hotline", "app", "chat", "store"], [0.4, 0.25, 0.2, 0.15]
ANSWERED = 0.85


def _staffing(**holidays: object) -> Staffing:
    quiet = {"yearly": [], "spring_festival_days": 0, "term_start_days": 0}
    return Staffing.model_validate({"agents": {"holidays": {**quiet, **holidays}}})


def _world(weeks_before: int, weeks_after: int, seed: int = 3) -> tuple[pd.DataFrame, ...]:
    """Tickets, customers and the weekly forecast (all weeks from MONDAY on) of the world."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(
        MONDAY - weeks_before * WEEK, MONDAY + weeks_after * WEEK, inclusive="left"
    )
    frames = []
    for region, weekly in WEEKLY.items():
        shape = 1 / LEVEL_CV**2
        levels = rng.gamma(shape, weekly / shape, size=weeks_before + weeks_after)
        means = np.repeat(levels, 7) * np.tile(PROFILE, weeks_before + weeks_after)
        counts = rng.negative_binomial(1 / PHI, (1 / PHI) / (1 / PHI + means))
        opened = days.repeat(counts) + pd.to_timedelta(
            rng.integers(0, 86_400, counts.sum()), unit="s"
        )
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": f"C-{region}",
                    "opened_at": opened,
                    "channel": rng.choice(CHANNELS, counts.sum(), p=CHANNEL_SHARES),
                }
            )
        )
    tickets = pd.concat(frames, ignore_index=True)
    regions = pd.DataFrame({"customer_id": [f"C-{r}" for r in WEEKLY], "region": list(WEEKLY)})
    weekly = pd.DataFrame(
        [
            {"region": region, "week_start": MONDAY + w * WEEK, **_quantiles(mean)}
            for region, mean in WEEKLY.items()
            for w in range(weeks_after)
        ]
    )
    return tickets, regions, weekly


def _quantiles(mean: float) -> dict[str, float]:
    """The weekly count's predictive P10/P50/P90 in the planted world (normal approximation)."""
    sd = np.sqrt((LEVEL_CV * mean) ** 2 + mean + mean**2 * (PROFILE**2).sum() * PHI)
    return {"p10": mean - Z90 * sd, "p50": mean, "p90": mean + Z90 * sd}


def _actual(tickets: pd.DataFrame, regions: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp):
    counts = answered_counts(tickets, regions, _staffing().agents, first, last)
    return counts.set_index(["region", "date"])["contacts"]


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, ...]:
    return _world(weeks_before=30, weeks_after=40)


def test_planted_weekday_shares_and_dispersion_are_recovered(world: tuple) -> None:
    tickets, regions, _ = world
    agents = _staffing().agents
    profiles = contact_profiles(tickets[tickets["opened_at"] < MONDAY], regions, agents, MONDAY)
    shares = weekday_shares(profiles).pivot(index="region", columns="weekday", values="share")
    assert np.abs(shares.to_numpy() - PROFILE).max() < 0.015
    end = MONDAY.tz_localize(None)
    counts = answered_counts(tickets, regions, agents, end - 26 * WEEK, end - pd.Timedelta(days=1))
    counts["block"] = (end - counts["date"] - pd.Timedelta(days=1)) // WEEK
    assert day_dispersion(counts, weekday_shares(profiles)) == pytest.approx(PHI, abs=0.008)


def test_poisson_days_have_no_dispersion() -> None:
    rng = np.random.default_rng(0)
    days = pd.date_range("2026-01-05", periods=26 * 7, freq="D")
    counts = pd.DataFrame(
        {"region": "north", "date": days, "contacts": rng.poisson(np.tile(PROFILE, 26) * 3000)}
    )
    counts["block"] = np.arange(len(days)) // 7
    shares = pd.DataFrame({"region": "north", "weekday": range(7), "share": PROFILE})
    assert day_dispersion(counts, shares) < 0.001


def test_daily_intervals_cover_eighty_percent_of_planted_days(world: tuple) -> None:
    tickets, regions, weekly = world
    daily = daily_forecast(weekly, tickets, regions, MONDAY, _staffing())
    actual = _actual(tickets, regions, daily["date"].min(), daily["date"].max())
    observed = actual.reindex(pd.MultiIndex.from_frame(daily[["region", "date"]])).to_numpy()
    assert len(daily) == len(WEEKLY) * 40 * 7
    assert 0.75 <= interval_coverage(observed, daily["p10"], daily["p90"]) <= 0.85
    assert 0.75 <= pit_coverage(observed, daily["p50"], daily["inverse_size"], 0.1, 0.9) <= 0.85
    # a day is relatively noisier than its week: its interval is wider than the share of
    # the week's
    week = weekly.iloc[0]
    day = daily.iloc[0]
    assert (day["p90"] - day["p10"]) / day["p50"] > 1.5 * (week["p90"] - week["p10"]) / week["p50"]


def test_daily_p50_is_what_staffing_plans_with(world: tuple) -> None:
    tickets, regions, weekly = world
    holiday = (MONDAY + 9 * pd.Timedelta(days=1)).date()  # a Wednesday in the second week
    staffing = _staffing(dates=[holiday], uplift=1.4)
    calendar = DemandCalendar()
    daily = daily_forecast(weekly.head(4), tickets, regions, MONDAY, staffing, calendar)
    past = tickets[tickets["opened_at"] < MONDAY]
    profiles = contact_profiles(past, regions, staffing.agents, MONDAY)
    staffed = (
        hourly_load(
            weekly.head(4).assign(series="service_load"),
            profiles,
            staffing.model_copy(update={"plan_for": "p50"}),
            calendar,
            MONDAY,
        )
        .groupby(["region", "date"])["contacts"]
        .sum()
    )
    assert daily.set_index(["region", "date"])["p50"].to_numpy() == pytest.approx(
        staffed.reindex(pd.MultiIndex.from_frame(daily[["region", "date"]])).to_numpy()
    )
    # store visits are no line's: an ordinary week's days add up to its answered share
    first = daily[daily["week_start"] == MONDAY.tz_localize(None)].groupby("region")["p50"].sum()
    line_shares = profiles.line_share.groupby("region")["share"].sum()
    assert first["north"] == pytest.approx(700.0 * line_shares["north"])
    assert line_shares["north"] == pytest.approx(ANSWERED, abs=0.02)
    lifted = daily.set_index(["region", "date"]).loc[("north", pd.Timestamp(holiday)), "p50"]
    week_later = daily.set_index(["region", "date"]).loc[
        ("north", pd.Timestamp(holiday) - pd.Timedelta(days=7)), "p50"
    ]
    assert lifted == pytest.approx(1.4 * week_later)


def test_the_daily_forecast_reads_no_ticket_from_until_on(world: tuple) -> None:
    tickets, regions, weekly = world
    future = tickets["opened_at"] >= MONDAY
    changed = pd.concat([tickets, tickets[future], tickets[future].head(5000)], ignore_index=True)
    changed.loc[changed["opened_at"] >= MONDAY, "channel"] = "hotline"
    before = daily_forecast(weekly, tickets, regions, MONDAY, _staffing())
    after = daily_forecast(weekly, changed, regions, MONDAY, _staffing())
    pd.testing.assert_frame_equal(before, after)


def _backtest_forecasts(origins: list[pd.Timestamp], horizon: int) -> pd.DataFrame:
    rows = [
        {
            "region": region, "series": series, "group": series, "origin": origin,
            "horizon": h, "target_week_end": origin + h * WEEK, "actual": np.nan,
            **_quantiles(mean), "seasonal_naive": mean, "moving_average": mean,
        }
        for origin in origins
        for h in range(1, horizon + 1)
        for region, mean in WEEKLY.items()
        for series in ("service_load", "daily_pass")
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_each_origin_sees_only_its_past(world: tuple) -> None:
    tickets, regions, _ = world
    origins = [MONDAY + 4 * WEEK, MONDAY + 6 * WEEK]
    forecasts = _backtest_forecasts(origins, horizon=3)
    settings = Backtest(origins=2, step_weeks=2)
    days = daily_errors(forecasts, tickets, regions, settings, _staffing())
    assert len(days) == 2 * 3 * len(WEEKLY) * 7 and days["date"].min() == origins[0].tz_localize(
        None
    )
    last = origins[1]
    future = tickets["opened_at"] >= last
    shifted = tickets.copy()
    shifted.loc[future, "opened_at"] += pd.Timedelta(days=3)  # moves counts between days
    again = daily_errors(forecasts, shifted, regions, settings, _staffing())
    known = ["p10", "p50", "p90", "inverse_size", "baseline"]
    pd.testing.assert_frame_equal(days[known], again[known])
    judged = days["origin"] == last
    assert not days.loc[judged, "actual"].equals(again.loc[judged, "actual"])
    # the baseline is the mean of the same weekday over the last 4 weeks before the origin
    one = days[(days["origin"] == last) & (days["region"] == "north")].iloc[0]
    actual = _actual(tickets, regions, one["date"] - 4 * WEEK, one["date"])
    same_day = [actual["north", one["date"] - k * WEEK] for k in range(1, 5)]
    assert one["date"] == last.tz_localize(None)
    assert one["baseline"] == pytest.approx(np.mean(same_day))


def test_the_daily_backtest_beats_the_weekday_baseline_on_planted_data(
    world: tuple, tmp_path: Path
) -> None:
    tickets, regions, _ = world
    tickets.to_parquet(tmp_path / TABLES["service_tickets"].file_name)
    regions.to_parquet(tmp_path / TABLES["customers"].file_name)
    # origins 4 weeks apart, each forecasting 4 weeks: every week judged once
    origins = [MONDAY + k * 4 * WEEK for k in range(9)]
    settings = Backtest(origins=9, step_weeks=4)
    metrics = daily_backtest(
        _backtest_forecasts(origins, horizon=4), tmp_path, settings, _staffing()
    )
    assert len(metrics) == 1 and metrics["scope"].iloc[0] == "service_load"
    row = metrics.iloc[0]
    assert row["days"] == 9 * 4 * len(WEEKLY) * 7 and row["origins"] == 9
    assert row["wape"] < row["baseline_wape"]
    assert 0.75 <= row["coverage_p10_p90"] <= 0.85
    assert 0.75 <= row["pit_coverage_p10_p90"] <= 0.85


def test_pit_coverage_is_eighty_percent_for_calibrated_sparse_counts() -> None:
    rng = np.random.default_rng(1)
    mean = np.full(20_000, 1.5)
    counts = rng.poisson(mean)
    zero = np.zeros_like(mean)
    low, high = nb_quantiles(0.1, mean, zero), nb_quantiles(0.9, mean, zero)
    assert interval_coverage(counts, low, high) > 0.9  # whole-count quantiles over-cover
    assert pit_coverage(counts, mean, zero, 0.1, 0.9) == pytest.approx(0.8, abs=0.01)
    spread = rng.negative_binomial(2.0, 2.0 / (2.0 + mean))  # over-dispersed: PIT sees it
    assert pit_coverage(spread, mean, zero, 0.1, 0.9) < 0.75
    assert pit_coverage(spread, mean, np.full_like(mean, 0.5), 0.1, 0.9) == pytest.approx(
        0.8, abs=0.015
    )
