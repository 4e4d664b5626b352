"""The assembled tables: one activity row per customer active at each snapshot, the home
cell's figures of that same snapshot, and every table built over the same instants."""

from __future__ import annotations

import pandas as pd
from feast.types import Float64

from features.lifecycle.contract import TICKET_TYPES
from features.repo.feature_views import CHANGE_FEATURES, CHANGE_FIELDS
from tests.features.reference_build import (
    PACKAGES,
    FeatureTables,
    build_feature_tables,
    customer_activity,
)

UTC_NS = "datetime64[ns, UTC]"
DAY = pd.Timedelta(days=1)
T0, T1, T2 = (pd.Timestamp(s, tz="UTC") for s in ("2025-12-01", "2026-02-01", "2026-02-15"))

ACTIVITY_COLUMNS = [
    "customer_id",
    "data_gb_30d",
    "data_gb_mean_90d",
    "data_gb_mean_180d",
    "voice_min_mean_90d",
    "roaming_days_90d",
    "bill_30d",
    "bill_mean_90d",
    "bill_mean_180d",
    "bill_change_vs_prev_3m",
    "overage_30d",
    "overage_90d",
    "late_payments_180d",
    "months_billed_180d",
    *(f"tickets_{kind}_90d" for kind in TICKET_TYPES),
    "tickets_30d",
    "tickets_180d",
    "unresolved_tickets",
    "repeat_complaints_90d",
    "sentiment_mean_90d",
    "sentiment_min_90d",
    "first_contact_resolution_180d",
    "days_since_last_complaint",
    "offers_180d",
    "offers_accepted_180d",
    "days_since_last_offer",
    "packages_90d",
    "package_spend_90d",
    *(f"{package}_180d" for package in PACKAGES),
    "home_cell_drop_rate_30d",
    "home_cell_outage_hours_30d",
    "home_cell_outage_hours_90d",
    *CHANGE_FEATURES,
    "event_timestamp",
]
FLOATS = {
    "data_gb_30d",
    "data_gb_mean_90d",
    "data_gb_mean_180d",
    "voice_min_mean_90d",
    "bill_30d",
    "bill_mean_90d",
    "bill_mean_180d",
    "bill_change_vs_prev_3m",
    "overage_30d",
    "overage_90d",
    "sentiment_mean_90d",
    "sentiment_min_90d",
    "first_contact_resolution_180d",
    "days_since_last_complaint",
    "days_since_last_offer",
    "package_spend_90d",
    "home_cell_drop_rate_30d",
    "home_cell_outage_hours_30d",
    "home_cell_outage_hours_90d",
    *(f.name for f in CHANGE_FIELDS if f.dtype == Float64),
}


def _frame(rows: list[tuple], columns: list[str], **types: str) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns).astype(types)


def _tables() -> dict[str, pd.DataFrame]:
    """a and b since before T1 (b's home cell has no figures), c gone at T1, d new in February."""
    signup = {"a": "2025-12-15", "b": "2026-01-10", "c": "2025-12-20", "d": "2026-02-05"}
    customers = pd.DataFrame(
        {
            "customer_id": list(signup),
            "signup_at": pd.to_datetime(list(signup.values()), utc=True),
            "cell_site_id": ["N", "X", "N", "N"],
            "region": "north",
            "is_student": [True, False, False, True],
        }
    )
    usage_columns = ["customer_id", "month", "data_gb", "voice_min", "sms", "roaming_days"]
    usage_columns += ["bill_amount", "overage_amount", "late_payment"]
    usage = _frame(
        [
            ("a", pd.Timestamp("2025-12-01", tz="UTC"), 1.0, 10.0, 0, 1, 20.0, 0.0, False),
            ("a", pd.Timestamp("2026-01-01", tz="UTC"), 3.0, 30.0, 0, 2, 40.0, 5.0, True),
            ("b", pd.Timestamp("2026-01-01", tz="UTC"), 8.0, 80.0, 0, 0, 60.0, 0.0, False),
            ("c", pd.Timestamp("2026-01-01", tz="UTC"), 9.0, 90.0, 0, 0, 90.0, 0.0, False),
            ("a", pd.Timestamp("2026-02-01", tz="UTC"), 5.0, 50.0, 0, 9, 99.0, 9.0, True),
        ],
        usage_columns,
        month=UTC_NS,
    )
    ticket_columns = ["customer_id", "opened_at", "closed_at", "ticket_type", "is_repeat"]
    ticket_columns += ["sentiment", "first_contact_resolved"]
    tickets = _frame(
        [("a", T1 - DAY, None, "complaint", True, -0.5, False)],
        ticket_columns,
        opened_at=UTC_NS,
        closed_at=UTC_NS,
    )
    campaigns = _frame(
        [("b", T1 - 10 * DAY, True, True)],
        ["customer_id", "sent_at", "treated", "accepted"],
        sent_at=UTC_NS,
    )
    purchases = _frame(
        [("a", "daily_pass", T1 + DAY, 3.0)],
        ["customer_id", "package_id", "purchased_at", "price"],
        purchased_at=UTC_NS,
    )
    return {
        "customers": customers,
        "churn_events": _frame([("c", T1)], ["customer_id", "churned_at"], churned_at=UTC_NS),
        "usage_monthly": usage,
        "service_tickets": tickets,
        "campaigns": campaigns,
        "package_purchases": purchases,
        "cell_sites": pd.DataFrame({"cell_site_id": ["N"], "region": ["north"]}),
        "cell_quality_daily": _frame(
            [("N", T1 - DAY, 0.25, 0.5), ("N", T2 - DAY, 0.75, 0.5)],
            ["cell_site_id", "day", "drop_rate", "load"],
            day=UTC_NS,
        ),
        "network_events": _frame(
            [("N", T1 - 2 * DAY, T1 - DAY), ("N", T2 - DAY, None)],
            ["cell_site_id", "started_at", "ended_at"],
            started_at=UTC_NS,
            ended_at=UTC_NS,
        ),
    }


SITE_QUALITY = pd.DataFrame(
    {
        "cell_site_id": ["N", "N", "N"],
        "drop_rate_mean_30d": [0.125, 0.25, 0.5],
        "outage_hours_30d": [1.0, 3.0, 7.0],
        "outage_hours_90d": [2.0, 5.0, 11.0],
        "event_timestamp": [T0, T1, T2],
    }
)


def test_activity_has_a_row_per_customer_active_at_each_snapshot_and_its_home_cell() -> None:
    """Nobody is active at T0; c left at T1; b's home cell has no figures (drop rate unknown,
    no outage hours); the cell's figures are those of the row's own snapshot."""
    activity = customer_activity(_tables(), pd.DatetimeIndex([T0, T1, T2]), SITE_QUALITY)
    assert list(activity.columns) == ACTIVITY_COLUMNS
    home = ["home_cell_drop_rate_30d", "home_cell_outage_hours_30d", "home_cell_outage_hours_90d"]
    unknown = -1.0  # stands for NaN in the comparison
    seen = activity[["customer_id", "event_timestamp", *home]].fillna({home[0]: unknown})
    assert seen.to_numpy().tolist() == [
        ["a", T1, 0.25, 3.0, 5.0],
        ["b", T1, unknown, 0.0, 0.0],
        ["a", T2, 0.5, 7.0, 11.0],
        ["b", T2, unknown, 0.0, 0.0],
        ["d", T2, 0.5, 7.0, 11.0],
    ]
    assert activity.index.equals(pd.RangeIndex(5))  # one label per row across snapshots


def test_activity_windows_stop_at_each_snapshot() -> None:
    activity = customer_activity(_tables(), pd.DatetimeIndex([T0, T1, T2]), SITE_QUALITY)
    rows = activity.set_index(["customer_id", "event_timestamp"])
    assert rows.loc[("a", T1), "data_gb_30d"] == 3.0  # January, the last month billed at T1
    assert rows.loc[("a", T2), "data_gb_mean_90d"] == 2.0  # December and January: February runs
    assert rows.loc[("a", T1), "tickets_complaint_90d"] == 1
    assert rows.loc[("a", T1), "packages_90d"] == 0  # bought a day after T1
    assert rows.loc[("a", T2), "packages_90d"] == 1
    assert rows.loc[("b", T1), "offers_180d"] == 1
    assert rows.loc[("b", T2), "offers_accepted_180d"] == 1


def test_activity_keeps_counts_in_int64_and_the_rest_in_float64_at_a_mid_month_snapshot() -> None:
    """d joined in February: nothing billed at T2 yet, so 0 months billed, not a float NaN."""
    activity = customer_activity(_tables(), pd.DatetimeIndex([T0, T1, T2]), SITE_QUALITY)
    dtypes = activity.dtypes.astype(str).to_dict()
    assert {c for c, dtype in dtypes.items() if dtype == "float64"} == FLOATS
    ints = set(ACTIVITY_COLUMNS) - FLOATS - {"customer_id", "event_timestamp"}
    assert {c for c, dtype in dtypes.items() if dtype == "int64"} == ints
    d = activity.set_index("customer_id").loc["d"]
    assert (d["months_billed_180d"], d["late_payments_180d"], d["roaming_days_90d"]) == (0, 0, 0)
    assert pd.isna(d["data_gb_30d"])
    assert d["months_billed_lifetime"] == 0 and pd.isna(d["late_payment_rate_lifetime"])


def test_all_tables_are_built_over_the_same_snapshots() -> None:
    """Snapshots: every month start after the first usage month, and the as-of instant."""
    tables = _tables()
    profile_columns = {
        "segment": "consumer",
        "age_band": "25-34",
        "plan_id": "p",
        "monthly_fee": 30.0,
        "contract_type": "month_to_month",
        "payment_method": "credit_card",
        "paperless_billing": True,
        "large_print": False,
        "account_manager_id": None,
        **{f"consent_{c}": True for c in ("sms", "app_push", "email", "phone")},
    }
    tables["customers"] = tables["customers"].assign(**profile_columns)
    built = build_feature_tables(tables, T2)
    assert isinstance(built, FeatureTables)
    assert [name for name, _ in built.items()] == [
        "customer_profile",
        "customer_activity",
        "cell_site_quality",
        "region_weekly_demand",
    ]
    assert [table is getattr(built, name) for name, table in built.items()] == [True] * 4
    snapshots = [pd.Timestamp("2026-01-01", tz="UTC"), T1, T2]
    assert built.cell_site_quality["event_timestamp"].tolist() == snapshots
    assert built.customer_activity["event_timestamp"].unique().tolist() == snapshots
    quality = built.cell_site_quality.set_index("event_timestamp")
    activity = built.customer_activity.set_index(["customer_id", "event_timestamp"])
    assert quality.loc[T2, "outage_hours_30d"] == 24.0 + 24.0  # one ended at T1 - 1 day, one open
    assert activity.loc[("a", T2), "home_cell_outage_hours_30d"] == 48.0
    assert activity.loc[("a", T2), "home_cell_drop_rate_30d"] == (0.25 + 0.75) / 2
    assert built.customer_profile["customer_id"].tolist() == ["a", "b", "c", "d"]
    assert built.region_weekly_demand["week_start"].min() == pd.Timestamp("2025-12-01", tz="UTC")
