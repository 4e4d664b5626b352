"""Daily service load: the weekly forecast split over days, with day-level P10/P90, backtested.

Staffing plans days, the forecaster forecasts weeks. The daily P50 of a region is its
week's P50 spread by exactly the arithmetic staffing plans with (`staffing.hourly_load`,
summed over lines and hours): the region's line shares times each line's day-of-week
shares from the `history_weeks` of tickets before `until`, holiday-mode uplift included.
Store visits belong to no line, so staffing never plans them: daily forecasts and daily
actuals both count only the tickets of channels some line answers.

A day is relatively noisier than a week, so the day's P10/P90 are not the week's times the
share. They are quantiles of a negative binomial around the day's mean mu, whose relative
variance adds two independent parts, each estimated from what was known before `until`:

* the week's level W, uncertain: its relative variance c2 is the weekly forecast's
  predictive variance ((P90 - P10) / 2 z90)^2, less the count noise that variance already
  holds (a week is a sum of day counts: W + W^2 sum_d s_d^2 phi), over P50^2, floored at 0;
* day-level over-dispersion phi: given the week's level, day d counts NB(s_d W, 1 / phi).
  phi is the method-of-moments estimate from the history's region-weeks: conditioning on
  each week's total N removes the weeks' level (trend, season, outages), and then
  E[(y_d - s_d N)^2] = N s_d (1 - s_d) + phi N^2 s_d^2 (1 - 2 s_d + sum_e s_e^2).

The day count is Poisson of mu times W's and the day's gamma factors; matching the product's
relative variance c2 + phi + c2 phi with one gamma gives a negative binomial of size
1 / (c2 + phi + c2 phi) (Poisson when both are 0). Its quantiles are whole contacts, so on
quiet days [P10, P90] holds an actual more often than 80 % by construction; the backtest
reports that plain coverage and the randomised-PIT coverage (Czado, Gneiting & Held 2009),
whose expectation is exactly 80 % when the predictive distribution is right, whatever the
counts.

`daily_backtest` replays the weekly backtest's service-load forecasts: at each origin the
daily forecast sees only the tickets before the origin, and it is judged on the actual
daily counts against a baseline that also sees only those: the mean of the same weekday
over the last `moving_average_weeks` weeks before the origin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from training.demand.errors import DemandDataError
from training.demand.settings import AgentStaffing, Backtest, DemandCalendar, Staffing
from training.demand.staffing import (
    DAY,
    WEEK,
    Profiles,
    _utc,
    contact_profiles,
    hourly_load,
    line_of,
    read_contacts,
)
from training.forecast_metrics import interval_coverage, wape

Z90 = float(stats.norm.ppf(0.9))  # a normal's P90 lies this many sigmas above its median
LOW, HIGH = 0.1, 0.9


# --- the day split -------------------------------------------------------------------------
def weekday_shares(profiles: Profiles) -> pd.DataFrame:
    """Per region and weekday (Monday = 0), its share of the region's answered contacts.

    The lines' day-of-week shares weighted by the region's line shares, renormalised over
    the lines (store visits left out): the split `hourly_load` applies, summed over lines.
    """
    split = profiles.line_share.merge(profiles.day_of_week, on="line", suffixes=("", "_day"))
    split["share"] = split["share"] * split["share_day"]
    by_day = split.groupby(["region", "weekday"])["share"].sum()
    total = by_day.groupby(level="region").transform("sum")
    shares = (by_day / total.where(total > 0)).fillna(1 / 7)  # no answered ticket: even
    return shares.rename("share").reset_index()


def answered_counts(
    tickets: pd.DataFrame,
    regions: pd.DataFrame,
    agents: AgentStaffing,
    first: pd.Timestamp,
    last: pd.Timestamp,
) -> pd.DataFrame:
    """Tickets some line answers per region and UTC day from `first` to `last` (naive days).

    Every region of `regions` gets every day, 0 when it had no ticket.
    """
    opened = tickets["opened_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("D")
    kept = tickets.assign(date=opened)
    kept = kept[
        kept["channel"].isin(line_of(agents).keys())
        & (kept["date"] >= first)
        & (kept["date"] <= last)
    ].merge(regions[["customer_id", "region"]], on="customer_id", how="inner")
    grid = pd.MultiIndex.from_product(
        [sorted(regions["region"].unique()), pd.date_range(first, last, freq="D")],
        names=["region", "date"],
    )
    counts = kept.groupby(["region", "date"]).size().reindex(grid, fill_value=0)
    return counts.astype(float).rename("contacts").reset_index()


def day_dispersion(counts: pd.DataFrame, shares: pd.DataFrame) -> float:
    """Day-level over-dispersion phi (variance mu + phi mu^2) of counts given their week.

    `counts` holds whole 7-day blocks (column `block`) of region, date, contacts; `shares`
    the region's weekday shares. The method of moments of the module docstring, pooled over
    regions (phi is relative, so regions of any size share it); 0 means Poisson.
    """
    frame = counts.assign(weekday=counts["date"].dt.dayofweek).merge(
        shares, on=["region", "weekday"]
    )
    keys = [frame["region"], frame["block"]]
    total = frame.groupby(keys)["contacts"].transform("sum")
    square = frame.groupby(keys)["share"].transform(lambda s: (s**2).sum())
    s = frame["share"]
    poisson = total * s * (1 - s)
    per_phi = total**2 * s**2 * (1 - 2 * s + square)
    excess = ((frame["contacts"] - s * total) ** 2 - poisson).sum()
    scale = per_phi.sum()
    return max(float(excess / scale), 0.0) if scale > 0 else 0.0


def nb_quantiles(level: float, mean: np.ndarray, inverse_size: np.ndarray) -> np.ndarray:
    """Quantiles of negative binomials of mean `mean`, variance mean (1 + inverse_size mean)."""
    mean = np.maximum(np.asarray(mean, float), 1e-12)
    inverse = np.asarray(inverse_size, float)
    poisson = inverse < 1e-9
    size = 1.0 / np.where(poisson, 1.0, inverse)
    return np.where(
        poisson,
        stats.poisson.ppf(level, mean),
        stats.nbinom.ppf(level, size, size / (size + mean)),
    )


def nb_cdf(count: np.ndarray, mean: np.ndarray, inverse_size: np.ndarray) -> np.ndarray:
    """P(Y <= count) under the same negative binomials (0 below zero)."""
    mean = np.maximum(np.asarray(mean, float), 1e-12)
    inverse = np.asarray(inverse_size, float)
    poisson = inverse < 1e-9
    size = 1.0 / np.where(poisson, 1.0, inverse)
    return np.where(
        poisson, stats.poisson.cdf(count, mean), stats.nbinom.cdf(count, size, size / (size + mean))
    )


def _naive(moments: pd.Series) -> pd.Series:
    """UTC instants without their time zone, as staffing's days are (naive: taken as UTC)."""
    return moments.dt.tz_convert("UTC").dt.tz_localize(None) if moments.dt.tz else moments


def _service_weeks(weekly: pd.DataFrame) -> pd.DataFrame:
    missing = {"region", "week_start", "p10", "p50", "p90"} - set(weekly.columns)
    if missing:
        raise DemandDataError(f"the weekly forecast lacks column(s) {', '.join(sorted(missing))}")
    if "series" in weekly:
        weekly = weekly[weekly["series"] == "service_load"]
    weeks = weekly[["region", "week_start", "p10", "p50", "p90"]].assign(series="service_load")
    return weeks.assign(week_start=_naive(weeks["week_start"]))


def daily_forecast(
    weekly: pd.DataFrame,
    tickets: pd.DataFrame,
    regions: pd.DataFrame,
    until: pd.Timestamp,
    staffing: Staffing | None = None,
    calendar: DemandCalendar | None = None,
) -> pd.DataFrame:
    """Answered contacts per region and day from `until` on: P10, P50, P90 and NB size.

    `weekly` holds service-load weeks (region, week_start, p10, p50, p90; a `series`
    column, if any, is filtered to service_load); only tickets opened before `until` are
    read. The P50 is the week's P50 split as staffing splits it; see the module docstring
    for the quantiles. `inverse_size` is the day's negative binomial 1 / size (0: Poisson).
    """
    staffing = staffing or Staffing()
    calendar = calendar or DemandCalendar()
    agents = staffing.agents
    until = _utc(until)
    weeks = _service_weeks(weekly)
    past = tickets[tickets["opened_at"] < until]
    profiles = contact_profiles(past, regions, agents, until)
    load = hourly_load(
        weeks, profiles, staffing.model_copy(update={"plan_for": "p50"}), calendar, until
    )
    days = load.groupby(["region", "week_start", "date"], as_index=False)["contacts"].sum()
    shares = weekday_shares(profiles)
    end = until.tz_localize(None).floor("D")
    blocks = answered_counts(past, regions, agents, end - agents.history_weeks * WEEK, end - DAY)
    blocks["block"] = (end - blocks["date"] - DAY) // WEEK
    phi = day_dispersion(blocks, shares)
    square = (shares["share"] ** 2).groupby(shares["region"]).sum().rename("square")
    weeks = weeks.join(square, on="region")
    mean = weeks["p50"].clip(lower=0.0)
    sigma = (weeks["p90"] - weeks["p10"]).clip(lower=0.0) / (2 * Z90)
    level_var = (sigma**2 - mean - mean**2 * weeks["square"] * phi).clip(lower=0.0)
    weeks["level_cv2"] = np.where(mean > 0, level_var / mean.where(mean > 0) ** 2, 0.0)
    days = days.merge(weeks[["region", "week_start", "level_cv2"]], on=["region", "week_start"])
    c2 = days["level_cv2"]
    days["inverse_size"] = c2 + phi + c2 * phi
    days["p50"] = days["contacts"]
    # whole-contact quantiles may fall on either side of a fractional P50: keep them ordered
    days["p10"] = np.minimum(nb_quantiles(LOW, days["p50"], days["inverse_size"]), days["p50"])
    days["p90"] = np.maximum(nb_quantiles(HIGH, days["p50"], days["inverse_size"]), days["p50"])
    columns = ["region", "week_start", "date", "p10", "p50", "p90", "inverse_size"]
    return days.sort_values(["region", "date"], ignore_index=True)[columns]


# --- the backtest --------------------------------------------------------------------------
def weekday_baseline(counts: pd.DataFrame, origin: pd.Timestamp, weeks: int) -> pd.DataFrame:
    """Per region and weekday, the mean count of that weekday over the `weeks` before `origin`."""
    end = _utc(origin).tz_localize(None).floor("D")
    recent = counts[(counts["date"] < end) & (counts["date"] >= end - weeks * WEEK)]
    by_day = recent.groupby(["region", recent["date"].dt.dayofweek.rename("weekday")])
    return by_day["contacts"].mean().rename("baseline").reset_index()


def daily_errors(
    forecasts: pd.DataFrame,
    tickets: pd.DataFrame,
    regions: pd.DataFrame,
    settings: Backtest,
    staffing: Staffing | None = None,
    calendar: DemandCalendar | None = None,
) -> pd.DataFrame:
    """One row per origin, region and day of the backtest's service-load weeks.

    Columns: origin, region, date, horizon, actual, p10, p50, p90, inverse_size, baseline.
    Each origin's forecast and baseline read only the tickets opened before the origin.
    """
    staffing = staffing or Staffing()
    load = forecasts[forecasts["series"] == "service_load"]
    if load.empty:
        raise DemandDataError("the backtest forecasts hold no 'service_load' rows")
    first = _naive(load["origin"]).min() - settings.moving_average_weeks * WEEK
    last = _naive(load["target_week_end"]).max() - DAY
    counts = answered_counts(tickets, regions, staffing.agents, first, last)
    actual = counts.set_index(["region", "date"])["contacts"]
    frames = []
    for origin, weeks in load.groupby("origin"):
        known = tickets[tickets["opened_at"] < _utc(origin)]
        weekly = weeks.assign(week_start=_naive(weeks["target_week_end"]) - WEEK)
        days = daily_forecast(weekly, known, regions, origin, staffing, calendar)
        days = days.merge(weekly[["region", "week_start", "horizon"]], on=["region", "week_start"])
        # the days before the origin's: the counts hold later days too, for the actuals
        baseline = weekday_baseline(counts, origin, settings.moving_average_weeks)
        days = days.assign(weekday=days["date"].dt.dayofweek).merge(
            baseline, on=["region", "weekday"], how="left"
        )
        keys = pd.MultiIndex.from_arrays([days["region"], days["date"]])
        days["actual"] = actual.reindex(keys).to_numpy()
        frames.append(days.assign(origin=origin))
    columns = [
        "origin", "region", "date", "horizon", "actual",
        "p10", "p50", "p90", "inverse_size", "baseline",
    ]  # fmt: skip
    return pd.concat(frames, ignore_index=True)[columns]


def pit_coverage(
    actual: np.ndarray, mean: np.ndarray, inverse_size: np.ndarray, low: float, high: float
) -> float:
    """Expected share of randomised PIT values in [low, high] (high - low when calibrated).

    A count's randomised PIT is uniform on [F(y - 1), F(y)]; the share of that interval
    inside [low, high] is its chance to fall there, free of the counts' discreteness.
    """
    below = nb_cdf(np.asarray(actual) - 1, mean, inverse_size)
    upto = nb_cdf(actual, mean, inverse_size)
    inside = np.clip(np.minimum(upto, high) - np.maximum(below, low), 0.0, None)
    width = upto - below
    return float(np.mean(np.where(width > 0, inside / np.where(width > 0, width, 1.0), 0.0)))


def daily_metrics(days: pd.DataFrame) -> pd.DataFrame:
    """One row (scope service_load): daily P50 and baseline WAPE, coverage, days judged."""
    judged = days.dropna(subset=["actual", "baseline"])
    return pd.DataFrame(
        [
            {
                "scope": "service_load",
                "wape": wape(judged["actual"], judged["p50"]),
                "baseline_wape": wape(judged["actual"], judged["baseline"]),
                "coverage_p10_p90": interval_coverage(
                    judged["actual"], judged["p10"], judged["p90"]
                ),
                "pit_coverage_p10_p90": pit_coverage(
                    judged["actual"].to_numpy(),
                    judged["p50"].to_numpy(),
                    judged["inverse_size"].to_numpy(),
                    LOW,
                    HIGH,
                ),
                "mean_daily_contacts": float(judged["actual"].mean()),
                "days": len(judged),
                "origins": judged["origin"].nunique(),
            }
        ]
    )


def daily_backtest(
    forecasts: pd.DataFrame,
    lifecycle_dir: Path,
    settings: Backtest,
    staffing: Staffing | None = None,
    calendar: DemandCalendar | None = None,
) -> pd.DataFrame:
    """Daily measures of the weekly backtest's service-load forecasts (`BacktestResult.forecasts`).

    Reads the tickets and customers of `lifecycle_dir`; see `daily_errors` and
    `daily_metrics`.
    """
    tickets, regions = read_contacts(lifecycle_dir)
    days = daily_errors(forecasts, tickets, regions, settings, staffing, calendar)
    return daily_metrics(days)
