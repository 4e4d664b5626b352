"""Who is active at a snapshot, which instants are snapshots, and the churn label's window.

A customer is active at t when signed up strictly before t and not gone by t (a churn at
exactly t ends the customer). A label row is a customer active at a month-end snapshot
whose window (t, t + H days] is over by the as-of instant; its label says whether the
customer churned in that window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.labels import SNAPSHOT, churn_entity_rows, label_column
from features.request_time import REQUEST_TIME_FIELD
from tests.features.reference_build import (
    active_at,
    customer_profile,
    epoch_seconds,
    snapshot_times,
)

T = pd.Timestamp("2026-03-01", tz="UTC")
SECOND = pd.Timedelta(seconds=1)
DAY = pd.Timedelta(days=1)
UTC_NS = "datetime64[ns, UTC]"
LONG_AGO = pd.Timestamp("2024-01-01", tz="UTC")


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _customers(signups: dict[str, pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(signups), "signup_at": list(signups.values())}).astype(
        {"signup_at": UTC_NS}
    )


def _churn(churned: dict[str, pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": list(churned), "churned_at": list(churned.values())}
    ).astype({"customer_id": str, "churned_at": UTC_NS})


# --- epoch seconds and snapshot instants --------------------------------------------------


def test_epoch_seconds_are_whole_seconds_rounded_down_in_int64() -> None:
    stamps = pd.Series(
        [_utc("1970-01-01 00:00:01.999"), _utc("2026-03-01"), _utc("1969-12-31 23:59:59.5")]
    )
    seconds = epoch_seconds(stamps)
    assert seconds.tolist() == [1, 1_772_323_200, -1]
    assert seconds.dtype == "int64"


def test_snapshots_are_the_month_starts_after_the_first_month_and_the_as_of_instant() -> None:
    first = _utc("2026-01-01")
    assert snapshot_times(first, _utc("2026-04-01")).tolist() == [
        _utc("2026-02-01"),
        _utc("2026-03-01"),
        _utc("2026-04-01"),  # the as-of instant is a month start: once
    ]
    assert snapshot_times(first, _utc("2026-03-15 12:00")).tolist() == [
        _utc("2026-02-01"),
        _utc("2026-03-01"),
        _utc("2026-03-15 12:00"),
    ]
    assert snapshot_times(first, _utc("2026-01-20")).tolist() == [_utc("2026-01-20")]
    assert snapshot_times(first, _utc("2026-04-01")).tz is not None


# --- active_at ------------------------------------------------------------------------------


def test_active_at_excludes_signups_at_t_and_churns_at_t() -> None:
    customers = _customers(
        {
            "signs_up_at_t": T,
            "signed_up_a_second_before": T - SECOND,
            "signs_up_after": T + SECOND,
            "gone_at_t": LONG_AGO,
            "gone_a_second_after": LONG_AGO,
            "gone_a_second_before": LONG_AGO,
            "never_gone": LONG_AGO,
        }
    )
    churn = _churn(
        {"gone_at_t": T, "gone_a_second_after": T + SECOND, "gone_a_second_before": T - SECOND}
    )
    mask = active_at(customers, churn, T)
    assert isinstance(mask, np.ndarray)
    assert dict(zip(customers["customer_id"], mask.tolist(), strict=True)) == {
        "signs_up_at_t": False,
        "signed_up_a_second_before": True,
        "signs_up_after": False,
        "gone_at_t": False,
        "gone_a_second_after": True,
        "gone_a_second_before": False,
        "never_gone": True,
    }


# --- customer profile -----------------------------------------------------------------------


def test_the_profile_holds_from_signup_with_every_attribute_and_the_account_manager_flag() -> None:
    signup = [_utc("2025-05-01 10:00:00.5"), _utc("2026-01-02")]
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "signup_at": signup,
            "segment": ["consumer", "enterprise"],
            "age_band": ["18-24", "60+"],
            "is_student": [True, False],
            "region": ["north", "south"],
            "cell_site_id": ["N1", "S1"],
            "plan_id": ["p1", "p2"],
            "monthly_fee": [20, 120],  # whole currency units: the profile holds them as float64
            "contract_type": ["month_to_month", "two_year"],
            "payment_method": ["credit_card", "bank_transfer"],
            "paperless_billing": [True, False],
            "large_print": [False, True],
            "account_manager_id": [None, "m7"],
            "consent_sms": [True, False],
            "consent_app_push": [False, True],
            "consent_email": [True, True],
            "consent_phone": [False, False],
        }
    )
    profile = customer_profile(customers)
    expected = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "event_timestamp": signup,
            "signup_epoch_s": [1_746_093_600, 1_767_312_000],
            **{
                c: customers[c]
                for c in [
                    "segment",
                    "age_band",
                    "is_student",
                    "region",
                    "cell_site_id",
                    "plan_id",
                ]
            },
            "monthly_fee": [20.0, 120.0],
            **{c: customers[c] for c in ["contract_type", "payment_method", "paperless_billing"]},
            "large_print": [False, True],
            "has_account_manager": [False, True],
            **{f"consent_{c}": customers[f"consent_{c}"] for c in ("sms", "app_push", "email")},
            "consent_phone": [False, False],
        }
    )
    pd.testing.assert_frame_equal(profile, expected)


# --- the churn label ------------------------------------------------------------------------

FIRST_MONTH = _utc("2026-01-01")


def _labels(
    customers: pd.DataFrame, churn: pd.DataFrame, as_of: pd.Timestamp, horizon: int = 30
) -> pd.DataFrame:
    return churn_entity_rows(customers, churn, FIRST_MONTH, as_of, horizon)


def test_the_label_is_a_churn_in_the_half_open_window_after_the_snapshot() -> None:
    customers = _customers(
        dict.fromkeys(["at_t", "second_after", "at_edge", "past_edge", "before", "stays"], LONG_AGO)
    )
    churn = _churn(
        {
            "at_t": T,
            "second_after": T + SECOND,
            "at_edge": T + 30 * DAY,
            "past_edge": T + 30 * DAY + SECOND,
            "before": T - SECOND,
        }
    )
    rows = _labels(customers, churn, _utc("2026-05-01"))
    at_t = rows[rows[SNAPSHOT] == T].set_index("customer_id")["churned_within_30d"]
    assert at_t.to_dict() == {
        "second_after": True,
        "at_edge": True,
        "past_edge": False,
        "stays": False,
    }


def test_rows_are_keyed_by_snapshot_with_its_request_instant_in_epoch_seconds() -> None:
    rows = _labels(_customers({"a": LONG_AGO}), _churn({}), _utc("2026-03-31"))
    assert list(rows.columns) == ["customer_id", SNAPSHOT, "churned_within_30d", REQUEST_TIME_FIELD]
    assert rows[SNAPSHOT].tolist() == [_utc("2026-02-01"), _utc("2026-03-01")]
    assert rows[REQUEST_TIME_FIELD].tolist() == [1_769_904_000, 1_772_323_200]
    assert rows.dtypes.astype(str).tolist() == ["object", UTC_NS, "bool", "int64"]
    assert rows.index.equals(pd.RangeIndex(2))  # one label per row across snapshots
    assert label_column(90) == "churned_within_90d"


def test_a_snapshot_counts_once_its_window_ends_at_or_before_as_of() -> None:
    customers = _customers({"a": LONG_AGO})
    as_of = T + 30 * DAY  # 2026-03-31: T's window ends exactly at as-of
    assert _labels(customers, _churn({}), as_of)[SNAPSHOT].max() == T
    assert _labels(customers, _churn({}), as_of - SECOND)[SNAPSHOT].max() == T - pd.DateOffset(
        months=1
    )


def test_only_month_end_snapshots_are_rows_whatever_the_horizon() -> None:
    """With H = 0 every window is over: a mid-month as-of instant is still no snapshot."""
    customers = _customers({"a": LONG_AGO})
    for as_of in (_utc("2026-03-15"), _utc("2026-03-01 12:00"), _utc("2026-03-01 00:00:01")):
        rows = _labels(customers, _churn({}), as_of, horizon=0)
        assert rows[SNAPSHOT].tolist() == [_utc("2026-02-01"), T], as_of
        assert not rows["churned_within_0d"].any()


def test_a_customer_signing_up_at_a_snapshot_is_first_labelled_at_the_next_one() -> None:
    customers = _customers({"joins_at_t": T, "joined_before": T - SECOND})
    rows = _labels(customers, _churn({}), _utc("2026-06-01"))
    snapshots = rows.groupby("customer_id")[SNAPSHOT].min()
    assert snapshots.to_dict() == {"joins_at_t": _utc("2026-04-01"), "joined_before": T}


_CHURN_OFFSET = st.one_of(
    st.none(),
    st.sampled_from([-1, 0, 1, 30 * 86_400, 30 * 86_400 + 1, 31 * 86_400]),
    st.integers(-40 * 86_400, 100 * 86_400),
)


@settings(max_examples=20)
@given(offsets=st.lists(st.tuples(_CHURN_OFFSET, st.integers(-60, 60)), min_size=1, max_size=6))
def test_every_active_customer_is_labelled_by_whether_it_churned_in_the_window(
    offsets: list[tuple[int | None, int]],
) -> None:
    """Churn and signup instants near the snapshot T (seconds), checked against the rule."""
    ids = [f"c{i}" for i in range(len(offsets))]
    signups = {c: T + pd.Timedelta(days=d) for c, (_, d) in zip(ids, offsets, strict=True)}
    churned = {
        c: T + pd.Timedelta(seconds=s)
        for c, (s, _) in zip(ids, offsets, strict=True)
        if s is not None and T + pd.Timedelta(seconds=s) > signups[c]
    }
    rows = _labels(_customers(signups), _churn(churned), _utc("2026-06-01"))
    at_t = rows[rows[SNAPSHOT] == T].set_index("customer_id")["churned_within_30d"].to_dict()
    expected = {
        c: c in churned and T < churned[c] <= T + 30 * DAY
        for c in ids
        if signups[c] < T and not (c in churned and churned[c] <= T)
    }
    assert at_t == expected
