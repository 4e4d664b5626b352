"""Every edge of every customer window at a snapshot t, for each table that feeds one.

The rule: a feature at t sees only what was known strictly before t. An event at t itself,
or a second after it, is invisible; one a second before it counts. A d-day window holds
the events of age <= d days (exactly d days before t is in, a second more is out). Usage
months count once fully billed (the month's end at or before t), as the last 1/3/6 of
them. Counts are 0 for a customer without events and stay int64; means are NaN.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.lifecycle.contract import TICKET_TYPES
from tests.features.reference_build import (
    OFFER_KNOWN_AFTER,
    PACKAGES,
    _campaign_windows,
    _package_windows,
    _ticket_windows,
    _usage_windows,
)

T = pd.Timestamp("2026-03-01", tz="UTC")  # a month end: February is billed at this instant
SECOND = pd.Timedelta(seconds=1)
DAY = pd.Timedelta(days=1)
UTC_NS = "datetime64[ns, UTC]"
IDS = pd.Index(["a", "b", "c"], name="customer_id")

# --- usage: the last 1, 3 and 6 months billed by t --------------------------------------


def _month(back: int) -> pd.Timestamp:
    """The month `back` months before February 2026 (the last month billed at T)."""
    return pd.Timestamp("2026-02-01", tz="UTC") - pd.DateOffset(months=back)


USAGE_TYPES = {
    "data_gb": "float64",
    "voice_min": "float64",
    "sms": "int64",
    "roaming_days": "int64",
    "bill_amount": "float64",
    "overage_amount": "float64",
    "late_payment": "bool",
}


def _usage(rows: list[dict]) -> pd.DataFrame:
    base = {
        "data_gb": 0.0,
        "voice_min": 0.0,
        "sms": 0,
        "roaming_days": 0,
        "bill_amount": 0.0,
        "overage_amount": 0.0,
        "late_payment": False,
    }
    columns = ["customer_id", "month", *base]
    frame = pd.DataFrame([{**base, **row} for row in rows], columns=columns)
    return frame.astype({"customer_id": str, "month": UTC_NS, **USAGE_TYPES})


# months back from February 2026, -1 = March 2026 (not yet billed at T); 2..6 cross the year
BACK = [-1, 0, 1, 2, 3, 4, 5, 6]
USAGE_A = _usage(
    [
        {
            "customer_id": "a",
            "month": _month(back),
            "data_gb": data,
            "voice_min": voice,
            "roaming_days": roaming,
            "bill_amount": bill,
            "overage_amount": overage,
            "late_payment": late,
        }
        for back, data, voice, roaming, bill, overage, late in zip(
            BACK,
            [384.0, 3.0, 6.0, 12.0, 24.0, 48.0, 96.0, 192.0],
            [999.0, 10.0, 20.0, 30.0, 4000.0, 5000.0, 6000.0, 7000.0],
            [31, 1, 2, 4, 8, 16, 30, 31],
            [9999.0, 100.0, 40.0, 50.0, 60.0, 1000.0, 2000.0, 4000.0],
            [512.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            [True, True, False, True, False, True, True, True],
            strict=True,
        )
    ]
)


def test_usage_windows_are_the_last_1_3_and_6_months_billed_by_the_snapshot() -> None:
    """March (billed after T) is left out; the 6-month window stops before August 2025."""
    row = _usage_windows(USAGE_A, IDS, T).loc["a"]
    assert row.to_dict() == {
        "data_gb_30d": 3.0,
        "data_gb_mean_90d": (3.0 + 6.0 + 12.0) / 3,
        "data_gb_mean_180d": (3.0 + 6.0 + 12.0 + 24.0 + 48.0 + 96.0) / 6,
        "voice_min_mean_90d": 20.0,
        "roaming_days_90d": 1 + 2 + 4,
        "bill_30d": 100.0,
        "bill_mean_90d": (100.0 + 40.0 + 50.0) / 3,
        "bill_mean_180d": (100.0 + 40.0 + 50.0 + 60.0 + 1000.0 + 2000.0) / 6,
        "bill_change_vs_prev_3m": 100.0 / 50.0 - 1,  # the 3 months before the last: 40, 50, 60
        "overage_30d": 1.0,  # the last month billed alone
        "overage_90d": 1.0 + 2.0 + 4.0,
        "late_payments_180d": 4,  # the late August 2025 is 6 months back: outside
        "months_billed_180d": 6,
        "bill_change_vs_6m": 100.0 / ((100.0 + 40.0 + 50.0 + 60.0 + 1000.0 + 2000.0) / 6) - 1,
        "data_gb_change_vs_prev_3m": 3.0 / ((6.0 + 12.0 + 24.0) / 3) - 1,
        "voice_min_change_vs_prev_3m": 10.0 / ((20.0 + 30.0 + 4000.0) / 3) - 1,
        "months_billed_lifetime": 7,  # every month billed by T, August 2025 included
        "late_payments_lifetime": 5,
    }


def test_a_month_counts_from_the_instant_it_ends_and_not_a_second_before() -> None:
    at_end = _usage_windows(USAGE_A, IDS, T).loc["a"]
    before_end = _usage_windows(USAGE_A, IDS, T - SECOND).loc["a"]
    assert at_end["data_gb_30d"] == 3.0  # February
    assert before_end["data_gb_30d"] == 6.0  # January: February is not billed yet
    assert before_end["months_billed_180d"] == 6
    assert before_end["late_payments_180d"] == 4  # January back to August 2025 (4 late)


def test_mid_month_snapshots_see_the_months_billed_before_them() -> None:
    row = _usage_windows(USAGE_A, IDS, T + 15 * DAY).loc["a"]
    assert row["data_gb_30d"] == 3.0  # March is still running
    assert row["bill_30d"] == 100.0


def test_a_customer_without_a_billed_month_has_zero_counts_and_unknown_amounts() -> None:
    """Counts are 0 and int64 (Feast declares them Int64); sums and means of usage are NaN."""
    usage = pd.concat(
        [USAGE_A, _usage([{"customer_id": "b", "month": _month(-1), "data_gb": 7.0}])],
        ignore_index=True,
    )
    frame = _usage_windows(usage, IDS, T)
    counts = ["roaming_days_90d", "late_payments_180d", "months_billed_180d"]
    assert frame.loc[["b", "c"], counts].to_numpy().tolist() == [[0, 0, 0], [0, 0, 0]]
    assert (frame[counts].dtypes == "int64").all()
    amounts = frame.columns.difference(counts)
    assert frame.loc[["b", "c"], amounts].isna().all().all()


def test_before_any_month_is_billed_there_are_no_usage_figures() -> None:
    frame = _usage_windows(USAGE_A, IDS, _month(6) + SECOND)  # a second into the first month
    assert list(frame.columns) == []
    assert frame.index.equals(IDS)


def test_the_bill_change_compares_the_last_month_with_the_mean_of_the_three_before() -> None:
    usage = _usage(
        [
            {"customer_id": "a", "month": _month(back), "bill_amount": bill}
            for back, bill in zip([0, 1, 2, 3, 4], [30.0, 10.0, 20.0, 30.0, 1000.0], strict=True)
        ]
    )
    assert _usage_windows(usage, IDS, T).loc["a", "bill_change_vs_prev_3m"] == 30.0 / 20.0 - 1


# --- service tickets --------------------------------------------------------------------


def _ticket(
    customer: str,
    opened: pd.Timestamp,
    kind: str,
    closed: pd.Timestamp | None = None,
    *,
    repeat: bool = False,
    sentiment: float = 0.0,
    resolved: bool = False,
) -> dict:
    return {
        "customer_id": customer,
        "opened_at": opened,
        "closed_at": closed,
        "ticket_type": kind,
        "is_repeat": repeat,
        "sentiment": sentiment,
        "first_contact_resolved": resolved,
    }


def _tickets(rows: list[dict]) -> pd.DataFrame:
    columns = list(_ticket("x", T, "complaint"))
    return pd.DataFrame(rows, columns=columns).astype(
        {
            "customer_id": str,
            "opened_at": UTC_NS,
            "closed_at": UTC_NS,
            "ticket_type": str,
            "is_repeat": bool,
            "sentiment": "float64",
            "first_contact_resolved": bool,
        }
    )


TICKETS = _tickets(
    [
        _ticket("a", T - SECOND, "complaint", repeat=True, sentiment=-1.0),
        _ticket("a", T, "complaint", sentiment=-1.0),  # opened at t: not yet known
        _ticket("a", T + SECOND, "technical_support", sentiment=-1.0),
        _ticket(
            "a",
            T - 30 * DAY,
            "network_fault",
            T - 29 * DAY,
            repeat=True,
            sentiment=0.5,
            resolved=True,
        ),
        _ticket("a", T - 30 * DAY - SECOND, "billing_dispute", T, resolved=True),  # closed at t
        _ticket("a", T - 90 * DAY, "package_question", T + SECOND, repeat=True, sentiment=0.25),
        _ticket(
            "a", T - 90 * DAY - SECOND, "complaint", T - 80 * DAY, repeat=True, sentiment=-0.75
        ),
        _ticket("a", T - 180 * DAY, "relocation", resolved=False, sentiment=-0.5),
        _ticket("a", T - 180 * DAY - SECOND, "complaint", sentiment=-0.5),  # open, out of 180d
        _ticket("b", T - 200 * DAY, "billing_dispute", T - 199 * DAY),
    ]
)


def test_ticket_counts_cover_exactly_30_90_and_180_days_before_the_snapshot() -> None:
    frame = _ticket_windows(TICKETS, IDS, T)
    assert frame.loc["a"].to_dict() == {
        "tickets_network_fault_90d": 1,
        "tickets_billing_dispute_90d": 1,
        "tickets_package_question_90d": 1,
        "tickets_complaint_90d": 1,  # the one a second before t; not the one at 90 days + 1 s
        "tickets_relocation_90d": 0,
        "tickets_technical_support_90d": 0,  # opened after t
        "tickets_30d": 2,  # a second before t and exactly 30 days before
        "tickets_180d": 6,
        "unresolved_tickets": 4,  # never closed, or closed after t; whatever the age
        "repeat_complaints_90d": 2,  # complaint-like repeats only: not the package question
        "sentiment_mean_90d": (-1.0 + 0.5 + 0.0 + 0.25) / 4,
        "sentiment_min_90d": -1.0,
        "first_contact_resolution_180d": 2 / 6,
        "days_since_last_complaint": SECOND / DAY,
        "complaints_30d": 2,  # complaint-like: the complaint and the fault of exactly 30 days
        "complaints_30_to_90d": 1,  # the dispute 30 days + 1 s back; not the one at 90 days + 1 s
        "tickets_relocation_30d": 0,
        "sentiment_mean_30d": (-1.0 + 0.5) / 2,
        "sentiment_mean_lifetime": (-1.0 + 0.5 + 0.0 + 0.25 - 0.75 - 0.5 - 0.5) / 7,
        "complaints_lifetime": 5,  # every complaint-like ticket known at t, however old
    }


def test_a_ticket_closed_after_the_snapshot_is_open_at_it_and_one_closed_at_it_is_not() -> None:
    def unresolved(closed: pd.Timestamp | None) -> int:
        tickets = _tickets([_ticket("a", T - 10 * DAY, "complaint", closed)])
        return int(_ticket_windows(tickets, IDS, T).loc["a", "unresolved_tickets"])

    assert unresolved(None) == 1
    assert unresolved(T + SECOND) == 1
    assert unresolved(T) == 0
    assert unresolved(T - SECOND) == 0


def test_days_since_the_last_complaint_has_no_window() -> None:
    frame = _ticket_windows(TICKETS, IDS, T)
    assert frame.loc["b", "days_since_last_complaint"] == 200.0  # a billing dispute
    assert frame.loc["b", "tickets_180d"] == 0


def test_customers_without_tickets_count_zero_in_int64_and_have_no_means() -> None:
    frame = _ticket_windows(TICKETS, IDS, T)
    counted = [c for c in frame.columns if frame[c].dtype == "int64"]
    assert counted == [
        *(f"tickets_{kind}_90d" for kind in TICKET_TYPES),
        "tickets_30d",
        "tickets_180d",
        "unresolved_tickets",
        "repeat_complaints_90d",
        "complaints_30d",
        "complaints_30_to_90d",
        "tickets_relocation_30d",
        "complaints_lifetime",
    ]
    assert frame.loc["c", counted].tolist() == [0] * len(counted)
    means = ["sentiment_mean_90d", "sentiment_min_90d", "first_contact_resolution_180d"]
    means.append("sentiment_mean_30d")
    assert frame.loc[["b", "c"], means].isna().all().all()
    # b's only ticket is 200 days old: it still speaks for the customer's habits
    assert pd.isna(frame.loc["c", "sentiment_mean_lifetime"])
    assert frame.loc["b", "sentiment_mean_lifetime"] == 0.0
    assert pd.isna(frame.loc["c", "days_since_last_complaint"])


def test_only_complaint_like_repeats_count_as_repeat_complaints() -> None:
    tickets = _tickets(
        [
            _ticket("a", T - DAY, "complaint", repeat=False),
            _ticket("a", T - DAY, "relocation", repeat=True),
            _ticket("a", T - DAY, "billing_dispute", repeat=True),
        ]
    )
    assert _ticket_windows(tickets, IDS, T).loc["a", "repeat_complaints_90d"] == 1


# --- offers -------------------------------------------------------------------------------


def _offers(rows: list[tuple[str, pd.Timestamp, bool, bool]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "sent_at", "treated", "accepted"])
    return frame.astype({"customer_id": str, "sent_at": UTC_NS, "treated": bool, "accepted": bool})


OFFERS = _offers(
    [
        ("a", T - SECOND, True, True),  # sent: counted; its answer is not known yet
        ("a", T, True, True),  # sent at t: invisible
        ("a", T - OFFER_KNOWN_AFTER + SECOND, True, True),  # answer not known yet
        ("a", T - OFFER_KNOWN_AFTER, True, True),  # decided
        ("a", T - 20 * DAY, True, False),  # decided: declined
        ("a", T - 180 * DAY, True, True),  # the window's far edge: in
        ("a", T - 180 * DAY - SECOND, True, True),  # out
        ("a", T - 10 * DAY, False, False),  # random control: never heard of it
        ("b", T - DAY, False, False),
        ("b", T - 200 * DAY, True, True),
    ]
)


def test_offers_count_180_days_of_treated_sends_and_acceptances_known_by_the_snapshot() -> None:
    frame = _campaign_windows(OFFERS, IDS, T)
    assert frame.loc["a"].to_dict() == {
        "offers_180d": 5,
        "offers_accepted_180d": 2,  # 7 days and 180 days before t
        "days_since_last_offer": SECOND / DAY,
    }


def test_an_offer_sent_within_7_days_before_the_snapshot_is_sent_but_not_decided() -> None:
    for sent in (T - SECOND, T - 3 * DAY, T - OFFER_KNOWN_AFTER + SECOND):
        row = _campaign_windows(_offers([("a", sent, True, True)]), IDS, T).loc["a"]
        assert (row["offers_180d"], row["offers_accepted_180d"]) == (1, 0), sent
    row = _campaign_windows(_offers([("a", T - OFFER_KNOWN_AFTER, True, True)]), IDS, T).loc["a"]
    assert (row["offers_180d"], row["offers_accepted_180d"]) == (1, 1)
    assert OFFER_KNOWN_AFTER == 7 * DAY


def test_control_rows_and_old_offers_give_zero_counts_and_an_unwindowed_last_offer() -> None:
    frame = _campaign_windows(OFFERS, IDS, T)
    assert frame.loc["b"].to_dict() == {
        "offers_180d": 0,
        "offers_accepted_180d": 0,
        "days_since_last_offer": 200.0,
    }
    assert frame.loc["c", ["offers_180d", "offers_accepted_180d"]].tolist() == [0, 0]
    assert pd.isna(frame.loc["c", "days_since_last_offer"])
    assert frame.dtypes.astype(str).to_dict() == {
        "offers_180d": "int64",
        "offers_accepted_180d": "int64",
        "days_since_last_offer": "float64",
    }


# --- package purchases --------------------------------------------------------------------


def _purchases(rows: list[tuple[str, str, pd.Timestamp, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "package_id", "purchased_at", "price"])
    return frame.astype(
        {"customer_id": str, "package_id": str, "purchased_at": UTC_NS, "price": "float64"}
    )


PURCHASES = _purchases(
    [
        ("a", "daily_pass", T - SECOND, 1.0),
        ("a", "daily_pass", T, 2.0),  # at t: invisible
        ("a", "roaming_pack", T + SECOND, 4.0),  # after t: invisible
        ("a", "roaming_pack", T - 90 * DAY, 8.0),
        ("a", "campus_data_pack", T - 90 * DAY - SECOND, 16.0),  # 180 days only
        ("a", "family_upgrade", T - 180 * DAY, 32.0),
        ("a", "family_upgrade", T - 180 * DAY - SECOND, 64.0),  # out
        ("b", "daily_pass", T - 200 * DAY, 128.0),
    ]
)
NO_PURCHASES = {
    "packages_90d": 0,
    "package_spend_90d": 0.0,
    **{f"{p}_180d": 0 for p in PACKAGES},
}


def test_package_windows_cover_exactly_90_and_180_days_before_the_snapshot() -> None:
    frame = _package_windows(PURCHASES, IDS, T)
    assert frame.loc["a"].to_dict() == {
        "packages_90d": 2,
        "package_spend_90d": 9.0,
        "campus_data_pack_180d": 1,
        "roaming_pack_180d": 1,
        "daily_pass_180d": 1,
        "family_upgrade_180d": 1,
    }
    assert frame.loc["b"].to_dict() == NO_PURCHASES
    assert frame.loc["c"].to_dict() == NO_PURCHASES
    assert frame.dtypes.astype(str).to_dict() == {
        "packages_90d": "int64",
        "package_spend_90d": "float64",
        **{f"{p}_180d": "int64" for p in PACKAGES},
    }


@pytest.mark.parametrize(
    "after", [pd.Timedelta(0), SECOND, 12 * pd.Timedelta(hours=1), DAY - SECOND, DAY]
)
def test_package_purchases_up_to_a_day_after_the_snapshot_never_leak_into_its_features(
    after: pd.Timedelta,
) -> None:
    """A purchase at t or any time after it (say t + 23:59:59) is not known at t."""
    purchases = _purchases([("a", package, T + after, 5.0) for package in PACKAGES])
    assert _package_windows(purchases, IDS, T).loc["a"].to_dict() == NO_PURCHASES


def test_a_purchase_one_second_before_the_snapshot_is_visible() -> None:
    purchases = _purchases([("a", "roaming_pack", T - SECOND, 5.0)])
    row = _package_windows(purchases, IDS, T).loc["a"]
    assert (row["packages_90d"], row["package_spend_90d"], row["roaming_pack_180d"]) == (1, 5.0, 1)


# --- properties: nothing at or after t changes a feature at t; longer windows hold more ---

_EDGES = [d * 86_400 + s for d in (0, 7, 30, 90, 180) for s in (-1, 0, 1)]
_OFFSET = st.one_of(st.sampled_from(_EDGES), st.integers(-200 * 86_400, 2 * 86_400))
_FUTURE_OFFSET = st.one_of(st.sampled_from([0, 1, 86_399, 86_400]), st.integers(0, 5 * 86_400))
_CUSTOMER = st.sampled_from(list(IDS))
FEW = settings(max_examples=20)


def _at(seconds_before: int) -> pd.Timestamp:
    return T - pd.Timedelta(seconds=seconds_before)


@FEW
@given(
    past=st.lists(st.tuples(_CUSTOMER, st.sampled_from(PACKAGES), _OFFSET), max_size=6),
    future=st.lists(st.tuples(_CUSTOMER, st.sampled_from(PACKAGES), _FUTURE_OFFSET), max_size=4),
)
def test_no_purchase_at_or_after_the_snapshot_changes_any_package_feature(
    past: list[tuple[str, str, int]], future: list[tuple[str, str, int]]
) -> None:
    known = [(c, p, _at(s), 1.0) for c, p, s in past if _at(s) < T]
    later = [(c, p, T + pd.Timedelta(seconds=s), 1.0) for c, p, s in future]
    pd.testing.assert_frame_equal(
        _package_windows(_purchases(known + later), IDS, T),
        _package_windows(_purchases(known), IDS, T),
    )


@FEW
@given(
    rows=st.lists(
        st.tuples(
            _CUSTOMER,
            st.sampled_from(TICKET_TYPES),
            _OFFSET,
            st.one_of(st.none(), st.sampled_from([0, 1, 86_400]), st.integers(0, 60 * 86_400)),
            st.booleans(),
        ),
        max_size=8,
    )
)
def test_nothing_opened_or_closed_at_or_after_the_snapshot_changes_a_ticket_feature(
    rows: list[tuple[str, str, int, int | None, bool]],
) -> None:
    """Tickets opened at or after t are dropped, closings after t read as still open."""
    everything = _tickets(
        [
            _ticket(
                c,
                _at(s),
                kind,
                None if span is None else _at(s) + pd.Timedelta(seconds=span),
                repeat=repeat,
                sentiment=-0.5 if repeat else 0.5,
                resolved=not repeat,
            )
            for c, kind, s, span, repeat in rows
        ]
    )
    known = everything[everything["opened_at"] < T].assign(
        closed_at=lambda f: f["closed_at"].where(f["closed_at"] <= T)
    )
    frame = _ticket_windows(everything, IDS, T)
    pd.testing.assert_frame_equal(frame, _ticket_windows(known, IDS, T))
    in_90d = frame[[f"tickets_{kind}_90d" for kind in TICKET_TYPES]].sum(axis=1)
    assert (frame["tickets_180d"] >= in_90d).all()
    assert (in_90d >= frame["tickets_30d"]).all()


@FEW
@given(
    rows=st.lists(
        st.tuples(_CUSTOMER, st.integers(-6 * 86_400, 200 * 86_400), st.booleans(), st.booleans()),
        max_size=8,
    )
)
def test_neither_later_sends_nor_answers_not_yet_known_change_an_offer_feature(
    rows: list[tuple[str, int, bool, bool]],
) -> None:
    """Answers to offers sent less than 7 days before t may be anything: t cannot know them."""
    offers = _offers([(c, _at(s), treated, treated and yes) for c, s, treated, yes in rows])
    undecided = offers["sent_at"] > T - OFFER_KNOWN_AFTER
    flipped = offers.assign(accepted=offers["accepted"] ^ (undecided & offers["treated"]))
    known = offers[offers["sent_at"] < T]
    expected = _campaign_windows(known, IDS, T)
    pd.testing.assert_frame_equal(_campaign_windows(offers, IDS, T), expected)
    pd.testing.assert_frame_equal(_campaign_windows(flipped, IDS, T), expected)


@FEW
@given(
    values=st.lists(st.integers(0, 31), min_size=8, max_size=8),
    t=st.sampled_from([T - SECOND, T, T + SECOND, T + 20 * DAY, T + 31 * DAY - SECOND]),
)
def test_months_not_billed_by_the_snapshot_change_no_usage_feature(
    values: list[int], t: pd.Timestamp
) -> None:
    usage = USAGE_A.assign(roaming_days=values, data_gb=[float(v) for v in values])
    billed = usage[usage["month"] + pd.offsets.MonthBegin(1) <= t]
    pd.testing.assert_frame_equal(_usage_windows(usage, IDS, t), _usage_windows(billed, IDS, t))
