"""The untreated customer-months the no-action baseline learns from.

A customer-month (a month-start snapshot, as the churn label's rows) is untreated when no
contact of any arm was sent from 31 days before the snapshot to the end of its outcome
window; its label is the churn label of the same customer-month; at most `limit` rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.labels import (
    ACCEPTED,
    ACTION,
    PROPENSITY,
    SNAPSHOT,
    campaign_entity_rows,
    churn_entity_rows,
    label_column,
    untreated_entity_rows,
)
from features.request_time import REQUEST_TIME_FIELD

UTC_NS = "datetime64[ns, UTC]"
FIRST = pd.Timestamp("2026-01-01", tz="UTC")
AS_OF = pd.Timestamp("2026-09-01", tz="UTC")
LABEL = label_column(60)


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _world(n: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i:03d}" for i in range(n)],
            "signup_at": pd.Timestamp("2025-06-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 300, n), unit="D"),
        }
    ).astype({"signup_at": UTC_NS})
    leavers = customers.sample(n // 3, random_state=1)["customer_id"]
    churn = pd.DataFrame(
        {
            "customer_id": leavers.to_numpy(),
            "churned_at": pd.Timestamp("2026-02-10", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 180, len(leavers)), unit="D"),
        }
    ).astype({"churned_at": UTC_NS})
    return customers, churn


def _contacts(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": [c for c, _ in pairs], "sent_at": [t for _, t in pairs]}
    ).astype({"sent_at": UTC_NS})


def test_without_contacts_the_rows_are_the_churn_label_rows_as_no_action() -> None:
    customers, churn = _world()
    rows = untreated_entity_rows(customers, churn, _contacts(), FIRST, AS_OF, 60, 10_000)
    expected = churn_entity_rows(customers, churn, FIRST, AS_OF, 60)
    expected = expected[expected[SNAPSHOT].dt.day == 1]  # month starts only
    key = ["customer_id", SNAPSHOT]
    merged = rows.merge(expected, on=key, suffixes=("", "_label"), validate="one_to_one")
    assert len(merged) == len(rows) == len(expected)
    assert (merged[LABEL] == merged[f"{LABEL}_label"]).all()
    assert (rows[ACTION] == "none").all()
    assert rows[PROPENSITY].isna().all()
    assert (rows[REQUEST_TIME_FIELD] == rows[SNAPSHOT].astype("int64") // 10**9).all()


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("2026-03-01 00:00", False),  # at the snapshot
        ("2026-02-01 00:00", False),  # 28 days before: its effect lasts into the month
        ("2026-01-29 00:00", False),  # 31 days before, the edge
        ("2026-01-28 23:59", True),  # earlier: over
        ("2026-04-29 23:59", False),  # inside the 60-day outcome window
        ("2026-04-30 00:00", True),  # at the window's end: after the outcome
    ],
)
def test_a_contact_near_the_month_removes_it(sent: str, kept: bool) -> None:
    customers, churn = _world()
    customer = customers.loc[~customers["customer_id"].isin(churn["customer_id"]), "customer_id"]
    who = str(customer.iloc[0])
    rows = untreated_entity_rows(customers, churn, _contacts((who, sent)), FIRST, AS_OF, 60, 10_000)
    march = rows[(rows["customer_id"] == who) & (rows[SNAPSHOT] == _utc("2026-03-01"))]
    assert len(march) == int(kept)
    others = rows[rows["customer_id"] != who]
    assert len(others) == len(
        untreated_entity_rows(customers, churn, _contacts(), FIRST, AS_OF, 60, 10_000).query(
            "customer_id != @who"
        )
    )


def test_the_limit_is_a_uniform_sample_and_reproducible() -> None:
    customers, churn = _world(400)
    every = untreated_entity_rows(customers, churn, _contacts(), FIRST, AS_OF, 60, 10**6)
    some = untreated_entity_rows(customers, churn, _contacts(), FIRST, AS_OF, 60, 300, seed=5)
    again = untreated_entity_rows(customers, churn, _contacts(), FIRST, AS_OF, 60, 300, seed=5)
    assert len(some) == 300 < len(every)
    pd.testing.assert_frame_equal(some, again)
    # every month is represented in proportion (a sample, not the first months)
    share = some[SNAPSHOT].value_counts(normalize=True)
    expected = every[SNAPSHOT].value_counts(normalize=True)
    assert (share.reindex(expected.index).fillna(0) - expected).abs().max() < 0.08


def test_a_zero_limit_gives_no_rows_with_the_columns() -> None:
    customers, churn = _world()
    rows = untreated_entity_rows(customers, churn, _contacts(), FIRST, AS_OF, 60, 0)
    assert rows.empty
    assert {"customer_id", SNAPSHOT, ACTION, PROPENSITY, LABEL, REQUEST_TIME_FIELD} <= set(rows)


def test_untreated_rows_have_no_take_up() -> None:
    customers, churn = _world()
    rows = untreated_entity_rows(customers, churn, _contacts(), FIRST, AS_OF, 60, 100)
    assert rows[ACCEPTED].isna().all() and rows[ACCEPTED].dtype == "float64"


def test_campaign_rows_carry_take_up_for_the_treated_only() -> None:
    _, churn = _world()
    sent = pd.Timestamp("2026-03-01 09:00", tz="UTC")
    campaigns = pd.DataFrame(
        {
            "customer_id": ["C000", "C001", "C002", "C003"],
            "campaign_id": "RET-2026-03",
            "offer_id": ["data_boost", "callback", "none", "data_boost"],
            "treated": [True, True, False, True],
            "sent_at": sent,
            "accepted": [True, False, False, None],
            "assignment_probability": 0.25,
        }
    )
    rows = campaign_entity_rows(campaigns, churn, AS_OF, 60).set_index("customer_id")
    assert rows[ACCEPTED].to_dict() == pytest.approx(
        {"C000": 1.0, "C001": 0.0, "C002": np.nan, "C003": np.nan}, nan_ok=True
    )
    without = campaign_entity_rows(campaigns.drop(columns="accepted"), churn, AS_OF, 60)
    assert without[ACCEPTED].isna().all()
