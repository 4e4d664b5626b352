"""The churn label: which customers to learn from at each snapshot, and whether they left.

Rows are (customer, snapshot) for every customer active at a month-end snapshot whose
label window is complete by the data's as-of instant. The label is 1 when the customer
churned in (snapshot, snapshot + H days]: a churn exactly at the snapshot belongs to no
row (the customer is no longer active), one a second later is the row's label, and so is
one at exactly snapshot + H.
"""

from __future__ import annotations

import pandas as pd

from features.request_time import REQUEST_TIME_FIELD
from features.snapshots import active_at, epoch_seconds, snapshot_times

SNAPSHOT = "event_timestamp"


def label_column(horizon_days: int) -> str:
    return f"churned_within_{horizon_days}d"


def churn_entity_rows(
    customers: pd.DataFrame,
    churn: pd.DataFrame,
    first_month: pd.Timestamp,
    as_of: pd.Timestamp,
    horizon_days: int,
) -> pd.DataFrame:
    """Active customers at each month-end snapshot whose label window ends by `as_of`, labelled."""
    horizon = pd.Timedelta(days=horizon_days)
    churned_at = customers["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    frames = []
    for t in snapshot_times(first_month, as_of):
        if t + horizon > as_of or t.day != 1 or t.normalize() != t:
            continue  # the label window is not over yet, or not a month end
        active = active_at(customers, churn, t)
        leaves = churned_at[active]
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": customers.loc[active, "customer_id"].to_numpy(),
                    SNAPSHOT: t,
                    label_column(horizon_days): ((leaves > t) & (leaves <= t + horizon)).to_numpy(),
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    rows[REQUEST_TIME_FIELD] = epoch_seconds(rows[SNAPSHOT])
    return rows
