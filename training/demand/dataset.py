"""From region-week features to forecasting rows: one row per (series, origin, horizon).

A series is one region's weekly count of one thing: purchases of a package, or service
contacts (the service load). The forecast strategy is *direct*: for an origin week o and
a horizon h in 1..H, one row holds what was known at the end of week o (recent levels,
trend, outages, the customer base) and what is known in advance about week o + h (its
calendar, the same week last year), and its target is the count in week o + h. One
pooled model per quantile learns every series and horizon at once, so a region with a
short history borrows strength from the others and no error compounds across steps as
it would with a recursive forecast.

Recent features are divided by the series' level (its mean over up to a year, plus one),
so a region with three times the customers shares the same patterns. The models forecast
the log-ratio of the count to a seasonal reference (see `forecasting_rows`), which is
known at the origin, so a quantile of the ratio maps back to the same quantile of the
count.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from training.demand.calendar import seasonal_lag_weeks, week_features
from training.demand.errors import DemandDataError, LeakageError
from training.demand.settings import DemandCalendar

WEEK = pd.Timedelta(days=7)
WEEK_END = "event_timestamp"  # the region_weekly_demand row's time: the end of its week
SERIES = {  # series name -> column of region_weekly_demand
    "campus_data_pack": "purchases_campus_data_pack",
    "roaming_pack": "purchases_roaming_pack",
    "daily_pass": "purchases_daily_pass",
    "family_upgrade": "purchases_family_upgrade",
    "service_load": "service_contacts",
}
GROUP = {name: "service_load" if name == "service_load" else "package" for name in SERIES}
EXOGENOUS = (
    "outage_hours",
    "outage_customer_hours",
    "network_fault_contacts",
    "open_tickets",
    "active_customers",
    "active_students",
)
KEYS = ("region", "series", "origin", "horizon")
CATEGORICAL = ("region", "series")
LEVEL_WEEKS = 52  # the level a series is scaled by: its mean over up to a year
# Forecasts known at the origin that the model may take as its reference (column
# `ref_<name>`, in counts): the seasonal naive made robust (grown by recent demand, or by
# the customer base, or the latter smoothed over three weeks, or read from last year's
# calendar months: `last_year_months`), the series' yearly level
# (as a count, or per active customer times today's customers), and the moving averages
# of the last 4 and 13 weeks; the mixes average two, the blend both mixes (a combination
# of forecasts errs less than either when their errors are not the same, and a season
# that a short history cannot yet prove is half taken).
REFERENCES = (
    "seasonal", "seasonal_base", "seasonal_smooth", "seasonal_mix", "seasonal_month",
    "level", "per_customer", "level_mix", "blend", "ma4", "ma13",
)  # fmt: skip
REFERENCE_COLUMNS = tuple(f"ref_{name}" for name in REFERENCES)
# Identify a row and carry the answer; never features.
NOT_FEATURES = (
    "origin", "target_week_end", "level", "reference", "target", "group", *REFERENCE_COLUMNS
)  # fmt: skip
MIN_REFERENCE = 0.1  # a week that sold nothing last year still gets a small reference
RECENT_WEEKS = 8  # the window compared with the same window a year earlier (growth)


def long_history(history: pd.DataFrame) -> pd.DataFrame:
    """The wide region-week table as one row per (region, series, week), checked.

    Every region must have every week from its first to the last week of the table, with
    non-negative counts; a gap or a negative count names the region and week.
    """
    missing = [c for c in ("region", WEEK_END, *SERIES.values(), *EXOGENOUS) if c not in history]
    if missing:
        raise DemandDataError(f"region-week history lacks column(s) {', '.join(missing)}")
    frame = history.sort_values(["region", WEEK_END], ignore_index=True)
    last = frame[WEEK_END].max()
    for region, weeks in frame.groupby("region")[WEEK_END]:
        repeated = weeks[weeks.duplicated()]
        if len(repeated):
            raise DemandDataError(
                f"region {region}: the week ending {repeated.iloc[0]:%Y-%m-%d} appears twice"
            )
        if (last - weeks.min()) % WEEK or weeks.max() != last:
            raise DemandDataError(
                f"region {region}: weeks end {weeks.max():%Y-%m-%d %H:%M}, not on the same "
                f"weekly grid as the latest week ({last:%Y-%m-%d %H:%M})"
            )
        gaps = pd.date_range(weeks.min(), last, freq="7D").difference(pd.DatetimeIndex(weeks))
        if len(gaps):
            raise DemandDataError(
                f"region {region}: missing week ending {gaps[0]:%Y-%m-%d} (weeks must be complete)"
            )
    if "week_of_year" in frame:
        # Feast fills a missing row with the one before it (within the view's TTL): the
        # week number then belongs to another week
        expected_week = (frame[WEEK_END] - WEEK).dt.isocalendar().week.astype("int64")
        stale = frame["week_of_year"].ne(expected_week)
        if stale.any():
            row = frame[stale].iloc[0]
            raise DemandDataError(
                f"region {row['region']}: no row for the week ending {row[WEEK_END]:%Y-%m-%d} "
                f"(the row found is of week {row['week_of_year']}, an earlier week's)"
            )
    for column in [*SERIES.values(), *EXOGENOUS]:
        bad = frame[column].isna() | (frame[column] < 0)
        if bad.any():
            row = frame[bad].iloc[0]
            raise DemandDataError(
                f"{column} must be a non-negative number: region {row['region']}, week ending "
                f"{row[WEEK_END]:%Y-%m-%d} has {row[column]!r}"
            )
    return pd.concat(
        [
            frame[["region", WEEK_END, *EXOGENOUS]].assign(
                series=name, group=GROUP[name], value=frame[column].astype(float)
            )
            for name, column in SERIES.items()
        ],
        ignore_index=True,
    ).sort_values(["region", "series", WEEK_END], ignore_index=True)


def _origin_features(one: pd.DataFrame) -> pd.DataFrame:
    """What is known at the end of each week of one series, from that week and before."""
    y = one["value"]
    level = y.rolling(LEVEL_WEEKS, min_periods=1).mean() + 1.0
    active = one["active_customers"].astype(float).clip(lower=1.0)
    return pd.DataFrame(
        {
            "level": level,
            "log_level": np.log(level),
            "last_week": y / level,
            "mean_4w": y.rolling(4, min_periods=1).mean() / level,
            "mean_8w": y.rolling(8, min_periods=1).mean() / level,
            "mean_13w": y.rolling(13, min_periods=1).mean() / level,
            "std_8w": y.rolling(8, min_periods=2).std() / level,
            "max_8w": y.rolling(8, min_periods=1).max() / level,
            "outage_hours_1w": one["outage_hours"].astype(float),
            "outage_hours_4w": one["outage_hours"].astype(float).rolling(4, min_periods=1).sum(),
            # customer-hours of outage: what faults and complaints follow, per customer
            "outage_customer_hours_1w": one["outage_customer_hours"] / active,
            "outage_customer_hours_4w": one["outage_customer_hours"].rolling(4, min_periods=1).sum()
            / active,
            "fault_contacts_per_1k": 1000 * one["network_fault_contacts"] / active,
            # the backlog: unresolved tickets bring repeat contacts and complaints
            "open_tickets_per_1k": 1000 * one["open_tickets"] / active,
            "open_tickets_vs_level": one["open_tickets"] / level,
            "log_active_customers": np.log(active),
            "student_share": one["active_students"] / active,
            "base_growth_13w": active / active.shift(13) - 1.0,
            "ref_per_customer": (y / active).rolling(LEVEL_WEEKS, min_periods=1).mean() * active,
        }
    )


def series_rows(
    one: pd.DataFrame, horizon: int, calendar: DemandCalendar, season: int = 52
) -> pd.DataFrame:
    """Direct-strategy rows of one series (sorted by week): every origin x horizon 1..H.

    The target is NaN where week o + h lies beyond the history (the future to forecast).
    "Last year" features read the same week a season earlier (for festival-driven series,
    aligned on the Spring Festival near it: `seasonal_lag_weeks`); that week is always at
    or before the origin.
    """
    values = one["value"].to_numpy()
    week_ends = one[WEEK_END].reset_index(drop=True)
    known = _origin_features(one.reset_index(drop=True))
    levels = known["level"].to_numpy()
    # a median: one holiday spike inside the window must not read as a year of growth
    recent = one["value"].rolling(RECENT_WEEKS, min_periods=1).median().to_numpy()
    active = one["active_customers"].to_numpy(dtype=float)
    n = len(one)
    position = np.arange(n)
    frames = []
    for h in range(1, horizon + 1):
        target = position + h
        if one["series"].iloc[0] in calendar.festival_driven:
            lag = seasonal_lag_weeks(week_ends + (h - 1) * WEEK, calendar, season)
        else:
            lag = np.full(n, season)
        lag = np.maximum(lag, h)  # never a week after the origin
        last_year, last_year_origin = target - lag, position - lag
        ly_value = np.where(last_year >= 0, values[np.clip(last_year, 0, n - 1)], np.nan)
        # last year's week with its neighbours (never a week after the origin): a third of
        # the noise where the season moves slowly
        around = np.stack(
            [
                np.where(
                    (last_year + d >= 0) & (last_year + d <= position),
                    values[np.clip(last_year + d, 0, n - 1)],
                    np.nan,
                )
                for d in (-1, 0, 1)
            ]
        )
        seen = ~np.isnan(around)
        ly_smooth = np.where(
            np.isnan(ly_value),
            np.nan,
            np.where(seen, around, 0.0).sum(axis=0) / seen.sum(axis=0).clip(min=1),
        )
        # the 8 weeks up to the origin's equivalent week last year: the growth's denominator
        ly_recent = np.where(
            last_year_origin >= 0, recent[np.clip(last_year_origin, 0, n - 1)], np.nan
        )
        frames.append(
            known.assign(
                horizon=h,
                origin=week_ends,
                target_week_end=week_ends + h * WEEK,
                last_year_same_week=ly_value / levels,
                last_year_growth=(recent + 1.0) / (ly_recent + 1.0),
                last_year_value=ly_value,
                last_year_smooth=ly_smooth,
                last_year_recent=ly_recent,
                recent=recent,
                active_now=active,
                last_year_active=np.where(
                    last_year_origin >= 0, active[np.clip(last_year_origin, 0, n - 1)], np.nan
                ),
                target=np.where(target < n, values[np.clip(target, 0, n - 1)], np.nan),
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    rows["region"] = one["region"].iloc[0]
    rows["series"] = one["series"].iloc[0]
    rows["group"] = one["group"].iloc[0]
    return rows


FeatureBuilder = Callable[[pd.DataFrame, int, DemandCalendar], pd.DataFrame]
DAY = pd.Timedelta(days=1)


def _naive(moments: pd.Series) -> pd.Series:
    return moments.dt.tz_localize(None) if moments.dt.tz else moments


def last_year_months(long: pd.DataFrame, rows: pd.DataFrame) -> pd.Series:
    """The national count each row's target week had last year, read from last year's
    calendar months rather than its one week: the sum, over the week's seven days, of the
    mean daily count of the month each day fell in a year earlier.

    Seasons that turn with the calendar month (summer travel from July, the bills of a
    month) step at the month's first day, which a week 52 weeks back misses by a day or
    two a year; and a month's mean carries about a quarter of one week's noise. A week's
    count is spread evenly over its days. A month not over by the row's origin gives NaN
    (never the future); so does a month before the history.
    """
    national = long.groupby(["series", WEEK_END], observed=True)["value"].sum()
    week_end = _naive(national.index.get_level_values(WEEK_END).to_series(index=national.index))
    daily = []
    for back in range(1, 8):  # each of the week's days, stamped by its month
        daily.append(
            pd.DataFrame(
                {
                    "series": national.index.get_level_values("series"),
                    "month": (week_end - back * DAY).dt.to_period("M").to_numpy(),
                    "value": national.to_numpy() / 7,
                }
            )
        )
    per_day = pd.concat(daily).groupby(["series", "month"], observed=True)["value"].mean()
    target_week_end = _naive(rows["target_week_end"])
    origin = _naive(rows["origin"])
    total = pd.Series(0.0, index=rows.index)
    for back in range(1, 8):
        month = (target_week_end - back * DAY - pd.DateOffset(years=1)).dt.to_period("M")
        over = month.dt.end_time < origin
        rate = per_day.reindex(pd.MultiIndex.from_arrays([rows["series"], month])).to_numpy()
        total += np.where(over.to_numpy(), rate, np.nan)
    return total


def forecasting_rows(long: pd.DataFrame, horizon: int, calendar: DemandCalendar) -> pd.DataFrame:
    """Rows of every series (see `series_rows`) with the target week's calendar joined."""
    rows = pd.concat(
        [
            series_rows(one, horizon, calendar)
            for _, one in long.groupby(["region", "series"], sort=True)
        ],
        ignore_index=True,
    )
    # The models forecast the count relative to a reference: a seasonal naive forecast
    # made robust. Last year's same week and the growth since are summed over all regions
    # (regions share their calendar, so the national shape carries a fraction of one
    # region's noise), then shared out by each region's level. Trees cannot extrapolate
    # or draw a straight line, so they learn the correction to a good guess far better
    # than the seasonal shape itself. Without a year of history the level stands in.
    national = rows.groupby(["series", "origin", "horizon"])[
        [
            "last_year_value",
            "last_year_smooth",
            "last_year_recent",
            "recent",
            "level",
            "active_now",
            "last_year_active",
        ]
    ].transform("sum", min_count=1)
    growth = (national["recent"] + 1.0) / (national["last_year_recent"] + 1.0)
    share = rows["level"] / national["level"]
    seasonal = national["last_year_value"] * growth * share
    base_growth = national["active_now"] / national["last_year_active"].clip(lower=1.0)
    rows["seasonal_reference"] = seasonal / rows["level"]
    level = rows["level"] - 1.0  # the yearly mean count
    candidates = {
        "seasonal": seasonal.fillna(level),
        "seasonal_base": (national["last_year_value"] * base_growth * share).fillna(level),
        "seasonal_smooth": (national["last_year_smooth"] * base_growth * share).fillna(level),
        "level": level,
        "per_customer": rows["ref_per_customer"],
        "ma4": rows["mean_4w"] * rows["level"],
        "ma13": rows["mean_13w"] * rows["level"],
    }
    # festival-moved weeks are last year's festival-aligned week, not its calendar month
    festival = rows["series"].isin(calendar.festival_driven).to_numpy() & (
        seasonal_lag_weeks(rows["target_week_end"] - WEEK, calendar) != 52
    )
    by_month = last_year_months(long, rows) * base_growth * share
    candidates["seasonal_month"] = by_month.where(~festival, candidates["seasonal_base"]).fillna(
        level
    )
    candidates["seasonal_mix"] = (candidates["seasonal_base"] + candidates["seasonal_smooth"]) / 2
    candidates["level_mix"] = (candidates["level"] + candidates["per_customer"]) / 2
    candidates["blend"] = (candidates["seasonal_mix"] + candidates["level_mix"]) / 2
    for name, values in candidates.items():
        rows[f"ref_{name}"] = values.clip(lower=MIN_REFERENCE)
    # the default reference; a fitted forecaster picks its own per series (`choose_references`)
    rows["reference"] = rows["ref_seasonal"]
    rows = rows.drop(
        columns=[
            "last_year_value",
            "last_year_smooth",
            "last_year_recent",
            "recent",
            "active_now",
            "last_year_active",
        ]
    )
    return pd.concat(
        [rows, week_features(rows["target_week_end"] - WEEK, calendar).set_index(rows.index)],
        axis=1,
    )


def feature_columns(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c not in NOT_FEATURES]


def check_no_lookahead(
    long: pd.DataFrame,
    origin: pd.Timestamp,
    horizon: int,
    calendar: DemandCalendar,
    build: FeatureBuilder = forecasting_rows,
    seed: int = 0,
) -> None:
    """Prove the features of origins up to `origin` depend on nothing after it.

    The rows are built twice: from the history, and from the history with every count and
    covariate after `origin` replaced by noise. Any feature that differs for an origin at or
    before `origin` has looked into the future; the error names it.
    """
    rng = np.random.default_rng(seed)
    later = long[WEEK_END] > origin
    scrambled = long.copy()
    for column in ["value", *EXOGENOUS]:
        noise = rng.integers(0, 10_000, later.sum()).astype(scrambled[column].dtype)
        scrambled.loc[later, column] = noise
    honest = build(long, horizon, calendar)
    tampered = build(scrambled, horizon, calendar)
    keep = honest["origin"] <= origin
    columns = [*feature_columns(honest), *REFERENCE_COLUMNS]  # references scale the forecast
    left = honest.loc[keep, columns].reset_index(drop=True)
    right = tampered.loc[tampered["origin"] <= origin, columns].reset_index(drop=True)
    for column in columns:
        a, b = left[column], right[column]
        same = (a == b) | (a.isna() & b.isna())
        if not same.all():
            row = left[~same].index[0]
            raise LeakageError(
                f"feature {column!r} changes when data after the origin {origin:%Y-%m-%d} "
                f"changes (e.g. series {left.at[row, 'series']} of {left.at[row, 'region']}, "
                f"horizon {left.at[row, 'horizon']}): it reads the future"
            )
