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
ACCEPTED = "accepted"  # 1.0 taken up, 0.0 not, NaN unknown or no action


def _taken_up(campaigns: pd.DataFrame) -> np.ndarray:
    """Whether each treated customer took the action up (1/0); NaN where nothing was
    offered or the export does not say."""
    if ACCEPTED not in campaigns:
        return np.full(len(campaigns), np.nan)
    taken = pd.to_numeric(campaigns[ACCEPTED], errors="coerce").astype("float64")
    return taken.where(campaigns["treated"].astype(bool)).to_numpy(dtype="float64")


def campaign_entity_rows(
    campaigns: pd.DataFrame, churn: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Randomized assignments whose outcome window is over by `as_of`, labelled.

    One row per campaign row with a logged assignment probability (rows without one were
    not randomized and cannot teach an effect): the customer, the assignment instant (the
    features are those known then), the action (`none` for the no-contact control), its
    probability, whether the customer took it up, and whether the customer churned within
    the horizon after it."""
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
            ACCEPTED: _taken_up(matured),
            label_column(horizon_days): ((churned_at > sent) & (churned_at <= sent + horizon))
            .fillna(False)
            .to_numpy(dtype=bool),
        }
    )
    rows[SNAPSHOT] = pd.to_datetime(rows[SNAPSHOT], utc=True)
    rows[REQUEST_TIME_FIELD] = epoch_seconds(rows[SNAPSHOT])
    return rows.sort_values([SNAPSHOT, "customer_id"], ignore_index=True)


UNTREATED_BEFORE = pd.Timedelta(days=31)  # an action's effect lasts into the next month


def untreated_entity_rows(
    customers: pd.DataFrame,
    churn: pd.DataFrame,
    contacts: pd.DataFrame,
    first_month: pd.Timestamp,
    as_of: pd.Timestamp,
    horizon_days: int,
    limit: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Month-start snapshots of customers nobody contacted, for the no-action baseline.

    Rows as `churn_entity_rows` (action `none`, no assignment probability: they were not
    randomized), keeping only customer-months with no contact from `UNTREATED_BEFORE`
    before the snapshot to the end of its outcome window; `contacts` holds every
    campaign or engine contact (`customer_id`, `sent_at`), whatever its arm. At most
    `limit` rows, a uniform sample: the baseline needs the population's variety, not
    every month of it, and the sample keeps the feature join's size bounded.

    Who was contacted depended on what the operator observed (a rule on risk, a random
    draw) and not on the outcome, so among customers with the same features the
    untouched ones churn as the no-action arm would: their outcome model is the
    no-action outcome model, learnt from many more rows than the campaigns' control arm.
    """
    label = label_column(horizon_days)
    horizon = pd.Timedelta(days=horizon_days)
    empty = pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=customers["customer_id"].dtype),
            SNAPSHOT: pd.Series(dtype="datetime64[ns, UTC]"),
            ACTION: pd.Series(dtype=object),
            PROPENSITY: pd.Series(dtype="float64"),
            ACCEPTED: pd.Series(dtype="float64"),
            label: pd.Series(dtype=bool),
        }
    )
    if limit <= 0:
        return empty.assign(**{REQUEST_TIME_FIELD: pd.Series(dtype="int64")})
    months = [
        t
        for t in snapshot_times(first_month, as_of)
        if t + horizon <= as_of and t.day == 1 and t.normalize() == t
    ]
    masks = [active_at(customers, churn, t) for t in months]
    total = sum(int(m.sum()) for m in masks)
    # oversample by half: the contacted months are dropped after sampling
    share = min(1.0, 1.5 * limit / max(total, 1))
    rng = np.random.default_rng(seed)
    churned_at = customers["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    frames = [empty]
    for t, active in zip(months, masks, strict=True):
        chosen = active & (rng.random(len(active)) < share)
        leaves = churned_at[chosen]
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": customers.loc[chosen, "customer_id"].to_numpy(),
                    SNAPSHOT: t,
                    ACTION: "none",
                    PROPENSITY: np.nan,
                    ACCEPTED: np.nan,
                    label: ((leaves > t) & (leaves <= t + horizon)).to_numpy(),
                }
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    rows[SNAPSHOT] = pd.to_datetime(rows[SNAPSHOT], utc=True)
    sent = pd.DataFrame(
        {
            "customer_id": contacts["customer_id"].to_numpy(),
            "sent_at": pd.to_datetime(contacts["sent_at"], utc=True).to_numpy(),
        }
    )
    pairs = rows[["customer_id", SNAPSHOT]].reset_index().merge(sent, on="customer_id")
    touched = pairs.loc[
        (pairs["sent_at"] >= pairs[SNAPSHOT] - UNTREATED_BEFORE)
        & (pairs["sent_at"] < pairs[SNAPSHOT] + horizon),
        "index",
    ]
    rows = rows.drop(index=touched.unique())
    if len(rows) > limit:
        rows = rows.sample(n=limit, random_state=seed)
    rows = rows.sort_values([SNAPSHOT, "customer_id"], ignore_index=True)
    rows[REQUEST_TIME_FIELD] = epoch_seconds(rows[SNAPSHOT])
    return rows
