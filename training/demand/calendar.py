"""Calendar features of a forecast week: what is known about it long before it comes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.demand.errors import DemandDataError
from training.demand.settings import DemandCalendar

MAX_WEEKS_AWAY = 26.0  # an event further than half a year away says nothing more


def _nearest(moments: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of the moment (sorted ns) nearest to each start (ns); ties go to the later."""
    after = np.clip(np.searchsorted(moments, starts), 0, len(moments) - 1)
    before = np.clip(after - 1, 0, len(moments) - 1)
    closer = np.abs(moments[before] - starts) < np.abs(moments[after] - starts)
    return np.where(closer, before, after)


def _ns(week_starts: pd.Series) -> np.ndarray:
    naive = week_starts.dt.tz_localize(None) if week_starts.dt.tz else week_starts
    return naive.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def signed_weeks_to_nearest(week_starts: pd.Series, events: pd.DatetimeIndex) -> np.ndarray:
    """Weeks from each week's start to the nearest event (negative: the event has passed)."""
    starts = _ns(week_starts)
    moments = np.sort(events.as_unit("ns").asi8)
    nearest = (moments[_nearest(moments, starts)] - starts) / (7 * 86_400 * 10**9)
    return np.clip(nearest, -MAX_WEEKS_AWAY, MAX_WEEKS_AWAY)


def term_start_dates(calendar: DemandCalendar, years: range) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(
        sorted(pd.Timestamp(f"{year}-{md}") for year in years for md in calendar.term_starts)
    )


def check_covers(calendar: DemandCalendar, week_starts: pd.Series) -> None:
    """Refuse weeks the holiday calendar cannot describe: a silent gap would bias forecasts."""
    festivals = pd.DatetimeIndex(calendar.spring_festival)
    first, last = week_starts.min().tz_localize(None), week_starts.max().tz_localize(None)
    if festivals.min() > first or festivals.max() < last:
        raise DemandDataError(
            f"calendar.spring_festival covers {festivals.min():%Y-%m-%d}.."
            f"{festivals.max():%Y-%m-%d} but the weeks run {first:%Y-%m-%d}..{last:%Y-%m-%d}: "
            "add the missing years' dates to configs/demand.yaml"
        )


def week_features(week_starts: pd.Series, calendar: DemandCalendar) -> pd.DataFrame:
    """Calendar features of the weeks starting at `week_starts` (tz-aware UTC or naive)."""
    naive = week_starts.dt.tz_localize(None) if week_starts.dt.tz else week_starts
    check_covers(calendar, naive)
    midweek = naive + pd.Timedelta(days=3)  # the week's Thursday decides its month
    years = range(naive.dt.year.min() - 1, naive.dt.year.max() + 2)
    return pd.DataFrame(
        {
            "target_week_of_year": midweek.dt.isocalendar().week.astype("int64").to_numpy(),
            "target_month": midweek.dt.month.to_numpy(),
            # where the week sits in its month: monthly cycles (bills, term weeks) start on the 1st
            "target_start_day_of_month": naive.dt.day.to_numpy(),
            "target_days_in_next_month": np.clip(
                (naive + pd.Timedelta(days=6)).dt.day.to_numpy() - 0, 0, 7
            )
            * (naive.dt.month != (naive + pd.Timedelta(days=6)).dt.month).to_numpy(),
            "weeks_to_term_start": signed_weeks_to_nearest(
                naive, term_start_dates(calendar, years)
            ),
            "weeks_to_spring_festival": signed_weeks_to_nearest(
                naive, pd.DatetimeIndex(calendar.spring_festival)
            ),
        },
        index=week_starts.index,
    )


def seasonal_lag_weeks(
    week_starts: pd.Series, calendar: DemandCalendar, season: int = 52, window: float = 8.0
) -> np.ndarray:
    """How many weeks back "the same week last year" is, for each week.

    Usually a season (52 weeks). When the week is within `window` weeks of its nearest
    Spring Festival, or the week a season back is within `window` weeks of the festival
    before, it is the week at the same distance from last year's festival instead: the
    festival moves by up to three weeks a year, and the travel peak moves with it.
    """
    festivals = np.sort(pd.DatetimeIndex(calendar.spring_festival).as_unit("ns").asi8)
    starts = _ns(week_starts)
    week_ns = 7 * 86_400 * 10**9
    this_year = _nearest(festivals, starts)
    last_year = np.clip(this_year - 1, 0, None)
    near = (np.abs(festivals[this_year] - starts) <= window * week_ns) | (
        np.abs(festivals[last_year] - (starts - season * week_ns)) <= window * week_ns
    )
    shift = np.rint((festivals[this_year] - festivals[last_year]) / week_ns)
    return np.where(near & (this_year > 0), shift, season).astype(np.int64)
