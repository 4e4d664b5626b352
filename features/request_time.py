"""Features whose value depends on the moment of the request, computed in one place.

Tenure and days to contract end change every day, so storing them would make them
stale the moment they are written. Training (at each snapshot, through the Feast
on-demand feature view `customer_request_time`) and serving (now, through that view or
the scorer's direct path) all call `request_time_values`, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.lifecycle.calendar import term_end_after
from features.lifecycle.contract import CONTRACT_MONTHS

REQUEST_TIME_FIELD = "request_epoch_s"  # the request instant, seconds since the epoch (UTC)
_SECONDS_PER_DAY = 86_400
_NS_PER_SECOND = 1_000_000_000


def request_time_values(
    signup_epoch_s: np.ndarray, contract_type: Sequence[object], request_epoch_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tenure in whole days and days to the end of the running contract term (float64).

    `signup_epoch_s` and `request_epoch_s` are seconds since the epoch, NaN where unknown;
    month-to-month (or an unknown contract type) has 0 days left, as it can leave any day.
    A customer with no signup gets NaN for both, not an error.
    """
    signup_s = np.asarray(signup_epoch_s, dtype="float64")
    request_s = np.asarray(request_epoch_s, dtype="float64")
    known = ~np.isnan(signup_s) & ~np.isnan(request_s)
    signup = (np.where(known, signup_s, 0).astype("int64") * _NS_PER_SECOND).astype(
        "datetime64[ns]"
    )
    at = (np.where(known, request_s, 0).astype("int64") * _NS_PER_SECOND).astype("datetime64[ns]")
    term = np.array([CONTRACT_MONTHS.get(str(c), 0) for c in contract_type], dtype="int64")
    has_end = term > 1
    ends = term_end_after(signup, np.maximum(term, 1), at)
    seconds_left = (ends - at).astype("int64") / _NS_PER_SECOND
    days_left = np.round(np.where(has_end, seconds_left / _SECONDS_PER_DAY, 0.0), 2)
    tenure = ((at - signup).astype("int64") // _NS_PER_SECOND) // _SECONDS_PER_DAY
    return (
        np.where(known, tenure.astype("float64"), np.nan),
        np.where(known, days_left, np.nan),
    )


def request_time_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """`request_time_values` on a frame of `signup_epoch_s`, `contract_type` and
    `request_epoch_s`: `tenure_days` (Int64) and `days_to_contract_end` (float64)."""
    tenure, days_left = request_time_values(
        pd.to_numeric(inputs["signup_epoch_s"]).to_numpy(dtype="float64", na_value=np.nan),
        inputs["contract_type"].tolist(),
        pd.to_numeric(inputs[REQUEST_TIME_FIELD]).to_numpy(dtype="float64", na_value=np.nan),
    )
    return pd.DataFrame(
        {
            "tenure_days": pd.array(tenure, dtype="Float64").astype("Int64"),
            "days_to_contract_end": days_left,
        },
        index=inputs.index,
    )
