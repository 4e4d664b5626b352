"""Calendar arithmetic shared by the simulator, the feature pipeline and serving.

Contract terms renew on signup anniversaries, so the end of the term that is running at
any instant follows from `signup_at` and `contract_type` alone. Training (at each past
snapshot) and serving (at request time) must both call `contract_end_after`, never
re-derive it, so the two can never disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.lifecycle.contract import CONTRACT_MONTHS

# Spring Festival (lunar new year) dates, public knowledge: the simulator's travel season
# follows them, and the demand model's calendar defaults to them.
SPRING_FESTIVAL_DATES = (
    "2018-02-16", "2019-02-05", "2020-01-25", "2021-02-12", "2022-02-01", "2023-01-22",
    "2024-02-10", "2025-01-29", "2026-02-17", "2027-02-06", "2028-01-26", "2029-02-13",
    "2030-02-03", "2031-01-23", "2032-02-11", "2033-01-31", "2034-02-19", "2035-02-08",
)  # fmt: skip


def add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Add calendar months to datetime64[D] values, clipping the day to the month's length."""
    day_values = days.astype("datetime64[D]")
    month_start = day_values.astype("datetime64[M]")
    day_of_month = (day_values - month_start.astype("datetime64[D]")).astype(np.int64)
    target = month_start + np.asarray(months, dtype=np.int64)
    target_length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64
    )
    return target.astype("datetime64[D]") + np.minimum(day_of_month, target_length - 1)


def whole_months_between(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Completed calendar months from `start` to `end` (both datetime64), never negative."""
    start_d, end_d = start.astype("datetime64[D]"), end.astype("datetime64[D]")
    months = end_d.astype("datetime64[M]").astype(np.int64) - start_d.astype(
        "datetime64[M]"
    ).astype(np.int64)
    not_yet = add_months(start_d, months) > end_d
    return np.maximum(months - not_yet, 0)


def term_end_after(signup: np.ndarray, term_months: np.ndarray, when: np.ndarray) -> np.ndarray:
    """End of the term running at `when`, for datetime64[ns] arrays and terms in months.

    A term of k months signed on day d renews every k months on day d; the running term
    ends at the first renewal strictly after `when`.
    """
    signup = signup.astype("datetime64[ns]")
    when = when.astype("datetime64[ns]")
    term = np.maximum(np.asarray(term_months, dtype=np.int64), 1)
    renewals = whole_months_between(signup, when) // term + 1
    time_of_day = signup - signup.astype("datetime64[D]")
    day = signup.astype("datetime64[D]")
    end = add_months(day, renewals * term).astype("datetime64[ns]") + time_of_day
    # whole_months_between counts days: on the renewal day itself it may lie hours ahead
    previous = add_months(day, (renewals - 1) * term).astype("datetime64[ns]") + time_of_day
    return np.where(previous > when, previous, end)


def contract_end_after(
    signup_at: pd.Series, contract_type: pd.Series, at: pd.Series | pd.Timestamp
) -> pd.Series:
    """End of the commitment term running at `at` (NaT for month_to_month or an unknown type)."""
    signup = signup_at.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    if isinstance(at, pd.Timestamp):
        when = np.full(len(signup), at.tz_convert("UTC").tz_localize(None).to_datetime64())
    else:
        when = at.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    term = contract_type.map(CONTRACT_MONTHS)
    has_end = (term > 1).to_numpy()  # month_to_month and unknown types have no term end
    months = term.fillna(1).to_numpy(dtype=np.int64)
    ends = term_end_after(signup, months, when)
    return pd.Series(ends, index=signup_at.index).dt.tz_localize("UTC").where(has_end)
