"""The churn label: which customers to learn from at each snapshot, and whether they left.

Rows are (customer, snapshot) for every customer active at a month-end snapshot whose
label window is complete by the data's as-of instant. The label is 1 when the customer
churned in (snapshot, snapshot + H days]: a churn exactly at the snapshot belongs to no
row (the customer is no longer active), one a second later is the row's label, and so is
one at exactly snapshot + H.
"""

from __future__ import annotations

import numpy as np
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


ACTION = "action"
PROPENSITY = "assignment_probability"


def campaign_entity_rows(
    campaigns: pd.DataFrame, churn: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Randomized assignments whose outcome window is over by `as_of`, labelled.

    One row per campaign row with a logged assignment probability (rows without one were
    not randomized and cannot teach an effect): the customer, the assignment instant (the
    features are those known then), the action (`none` for the no-contact control), its
    probability, and whether the customer churned within the horizon after it."""
    horizon = pd.Timedelta(days=horizon_days)
    if PROPENSITY not in campaigns:  # an export without it: nothing was randomized
        campaigns = campaigns.assign(**{PROPENSITY: np.nan})
    randomized = campaigns[campaigns[PROPENSITY].notna()]
    sent = pd.to_datetime(randomized["sent_at"], utc=True)
    matured = randomized[sent + horizon <= as_of]
    sent = sent[matured.index]
    churned_at = matured["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    rows = pd.DataFrame(
        {
            "customer_id": matured["customer_id"].to_numpy(),
            SNAPSHOT: sent.to_numpy(),
            ACTION: matured["offer_id"].where(matured["treated"], "none").to_numpy(),
            PROPENSITY: matured[PROPENSITY].to_numpy(dtype="float64"),
            label_column(horizon_days): ((churned_at > sent) & (churned_at <= sent + horizon))
            .fillna(False)
            .to_numpy(dtype=bool),
        }
    )
    rows[SNAPSHOT] = pd.to_datetime(rows[SNAPSHOT], utc=True)
    rows[REQUEST_TIME_FIELD] = epoch_seconds(rows[SNAPSHOT])
    return rows.sort_values([SNAPSHOT, "customer_id"], ignore_index=True)
