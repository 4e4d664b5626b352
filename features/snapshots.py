"""When features are taken, and the rules every feature engine shares.

A feature row carries an `event_timestamp` (the snapshot instant t) and is computed only
from what was known strictly before t. Snapshots are every month boundary of the history
(month ends) and the as-of instant (the latest day); demand rows are complete weeks
(Monday to Monday, UTC).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.lifecycle.contract import TICKET_TYPES

DAY = pd.Timedelta(days=1)
COMPLAINT_LIKE = ("complaint", "network_fault", "billing_dispute")
PACKAGES = ("campus_data_pack", "roaming_pack", "daily_pass", "family_upgrade")
OFFER_KNOWN_AFTER = 7 * DAY  # an offer's acceptance is only recorded a few days after sending
FEATURE_TABLES = (
    "customer_profile",
    "customer_activity",
    "cell_site_quality",
    "region_weekly_demand",
)

__all__ = [
    "COMPLAINT_LIKE",
    "DAY",
    "FEATURE_TABLES",
    "OFFER_KNOWN_AFTER",
    "PACKAGES",
    "TICKET_TYPES",
    "active_at",
    "as_utc",
    "demand_weeks",
    "epoch_seconds",
    "snapshot_times",
    "week_start",
]


def as_utc(stamp: pd.Timestamp) -> pd.Timestamp:
    """An instant in UTC; a naive one is taken to be UTC already (what DuckDB and Spark
    sessions in UTC hand back)."""
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def epoch_seconds(timestamps: pd.Series) -> pd.Series:
    """Whole seconds since the Unix epoch, whatever the timestamps' resolution."""
    return (timestamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def snapshot_times(first_month: pd.Timestamp, as_of: pd.Timestamp) -> pd.DatetimeIndex:
    """Month ends after the first recorded month, up to and including the as-of instant."""
    boundaries = pd.date_range(first_month + pd.offsets.MonthBegin(1), as_of, freq="MS", tz="UTC")
    if len(boundaries) == 0 or boundaries[-1] != as_of:
        boundaries = boundaries.append(pd.DatetimeIndex([as_of]))
    return boundaries


def active_at(customers: pd.DataFrame, churn: pd.DataFrame, t: pd.Timestamp) -> np.ndarray:
    """Mask of customers who had signed up before `t` and had not left by `t`."""
    churned_at = customers["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    return ((customers["signup_at"] < t) & ~(churned_at <= t)).to_numpy()


def week_start(ts: pd.Series) -> pd.Series:
    """The Monday 00:00 UTC that starts each timestamp's week."""
    day = ts.dt.floor("D")
    return day - pd.to_timedelta(day.dt.weekday, unit="D")


def demand_weeks(history_start: pd.Timestamp, as_of: pd.Timestamp) -> pd.DatetimeIndex:
    """Starts (Mondays) of the complete weeks between the history start and `as_of`."""
    first_week = week_start(pd.Series([history_start - DAY])).iloc[0] + 7 * DAY
    return pd.date_range(first_week, as_of - 7 * DAY, freq="7D")
