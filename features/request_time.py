"""Features whose value depends on the moment of the request, computed in one place.

Tenure and days to contract end change every day, so storing them would make them
stale the moment they are written. Training (at each snapshot) and serving (now) both
call `request_time_features`, through the Feast on-demand feature view
`customer_request_time`, so the two can never disagree.
"""

from __future__ import annotations

import pandas as pd

from features.lifecycle.calendar import contract_end_after

REQUEST_TIME_FIELD = "request_epoch_s"  # the request instant, seconds since the epoch (UTC)
_SECONDS_PER_DAY = 86_400


def request_time_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """Tenure and days to the end of the running contract term at the request instant.

    `inputs` holds `signup_epoch_s`, `contract_type` and `request_epoch_s`; the result has
    `tenure_days` and `days_to_contract_end` (0 for month-to-month, which can leave any day).
    A customer unknown to the store (no signup) gets missing values, not an error.
    """
    known = inputs["signup_epoch_s"].notna() & inputs[REQUEST_TIME_FIELD].notna()
    signup = pd.to_datetime(
        inputs["signup_epoch_s"].where(known, 0).astype("int64"), unit="s", utc=True
    )
    at = pd.to_datetime(
        inputs[REQUEST_TIME_FIELD].where(known, 0).astype("int64"), unit="s", utc=True
    )
    contract = inputs["contract_type"].where(known, "month_to_month").astype(str)
    ends = contract_end_after(signup, contract, at)
    days_left = ((ends - at).dt.total_seconds().fillna(0.0) / _SECONDS_PER_DAY).round(2)
    tenure = (at - signup).dt.total_seconds() // _SECONDS_PER_DAY
    return pd.DataFrame(
        {
            "tenure_days": tenure.where(known).astype("Int64"),
            "days_to_contract_end": days_left.where(known).astype("float64"),
        },
        index=inputs.index,
    )
