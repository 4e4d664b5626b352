"""No future leaks into a training row; the label window is exactly (snapshot, snapshot + H]."""

from __future__ import annotations

import pandas as pd

from features.build import build_directory
from features.labels import churn_entity_rows, label_column
from features.lifecycle.profile import load_tables
from features.repo.feature_views import CHANGE_FEATURES
from features.settings import FeatureSettings
from features.store import apply, open_store
from features.training_set import training_set
from tests.features.conftest import AS_OF

DAY = pd.Timedelta(days=1)


def _joined_around(
    project: FeatureSettings, customer: str, t1: pd.Timestamp, t2: pd.Timestamp, service: str
) -> pd.DataFrame:
    """Feast's point-in-time join of `service` for `customer` at t1, 20 days later and t2,
    indexed by those instants."""
    store = open_store(project)
    apply(store)
    at = [t1, t1 + 20 * DAY, t2]
    rows = pd.DataFrame(
        {
            "customer_id": customer,
            "event_timestamp": at,
            "request_epoch_s": [int(t.timestamp()) for t in at],
        }
    )
    return training_set(store, rows, service).set_index("event_timestamp")


def _add_late_complaint(
    project: FeatureSettings,
    tables: dict[str, pd.DataFrame],
    customer: str,
    opened_at: pd.Timestamp,
    sentiment: float,
) -> None:
    """Add to the lifecycle tickets an open complaint of `customer` at `opened_at`."""
    complaint = (
        tables["service_tickets"]
        .iloc[[0]]
        .assign(
            ticket_id="T-LATE",
            customer_id=customer,
            ticket_type="complaint",
            opened_at=opened_at,
            closed_at=pd.NaT,
            is_repeat=False,
            sentiment=sentiment,
        )
    )
    tickets = pd.concat([tables["service_tickets"], complaint], ignore_index=True)
    tickets.to_parquet(project.lifecycle_dir / "service_tickets.parquet", index=False)


def test_a_later_ticket_never_reaches_an_earlier_snapshot(project: FeatureSettings) -> None:
    tables = load_tables(project.lifecycle_dir)
    t1 = pd.Timestamp("2026-06-01", tz="UTC")
    t2 = pd.Timestamp("2026-07-01", tz="UTC")
    customers, churn = tables["customers"], tables["churn_events"]
    churned_at = customers["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    alive = customers[(customers["signup_at"] < t1) & ~(churned_at <= t2)]
    customer = alive["customer_id"].iloc[0]

    # A complaint opened one day after t1: a later feature value exists.
    _add_late_complaint(project, tables, customer, t1 + DAY, sentiment=-0.9)
    build_directory(project.lifecycle_dir, project.tables_dir, AS_OF, project.offline_engine)

    activity = pd.read_parquet(project.tables_dir / "customer_activity.parquet").set_index(
        ["customer_id", "event_timestamp"]
    )
    before, after = activity.loc[(customer, t1)], activity.loc[(customer, t2)]
    assert after["tickets_complaint_90d"] == before["tickets_complaint_90d"] + 1
    assert after["unresolved_tickets"] >= 1

    # Feast's point-in-time join hands rows at t1 (and just before t2) the t1 values.
    joined = _joined_around(project, customer, t1, t2, "churn_v1")
    assert joined.loc[t1, "tickets_complaint_90d"] == before["tickets_complaint_90d"]
    assert joined.loc[t1 + 20 * DAY, "tickets_complaint_90d"] == before["tickets_complaint_90d"]
    assert joined.loc[t2, "tickets_complaint_90d"] == after["tickets_complaint_90d"]
    assert joined.loc[t1, "sentiment_min_90d"] != -0.9


def test_later_events_never_reach_an_earlier_snapshots_features_of_change(
    project: FeatureSettings,
) -> None:
    """A complaint the day after t1 and the bill of t1's own month (billed only after t1)
    move churn_v2's features of change at t2, never at t1, in the table and in the join."""
    tables = load_tables(project.lifecycle_dir)
    t1 = pd.Timestamp("2026-06-01", tz="UTC")
    t2 = pd.Timestamp("2026-07-01", tz="UTC")
    usage = tables["usage_monthly"]
    customers, churn = tables["customers"], tables["churn_events"]
    churned_at = customers["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    alive = customers[(customers["signup_at"] < t1 - 200 * DAY) & ~(churned_at <= t2)]
    billed_june = set(usage.loc[usage["month"] == t1, "customer_id"])
    customer = next(c for c in alive["customer_id"] if c in billed_june)
    before_build = pd.read_parquet(project.tables_dir / "customer_activity.parquet").set_index(
        ["customer_id", "event_timestamp"]
    )

    _add_late_complaint(project, tables, customer, t1 + DAY, sentiment=-1.0)
    june = (usage["customer_id"] == customer) & (usage["month"] == t1)
    usage.loc[june, ["data_gb", "late_payment"]] = [1_000.0, True]
    usage.to_parquet(project.lifecycle_dir / "usage_monthly.parquet", index=False)
    build_directory(project.lifecycle_dir, project.tables_dir, AS_OF, project.offline_engine)

    activity = pd.read_parquet(project.tables_dir / "customer_activity.parquet").set_index(
        ["customer_id", "event_timestamp"]
    )
    changes = list(CHANGE_FEATURES)
    pd.testing.assert_series_equal(
        activity.loc[(customer, t1), changes], before_build.loc[(customer, t1), changes]
    )
    old, new = before_build.loc[(customer, t2)], activity.loc[(customer, t2)]
    assert new["complaints_30d"] == old["complaints_30d"] + 1
    assert new["complaints_per_month_lifetime"] > old["complaints_per_month_lifetime"]
    assert new["sentiment_mean_lifetime"] < (old["sentiment_mean_lifetime"] or 0.0)
    assert new["late_payment_rate_lifetime"] > old["late_payment_rate_lifetime"]
    assert new["data_gb_change_vs_prev_3m"] > old["data_gb_change_vs_prev_3m"]

    joined = _joined_around(project, customer, t1, t2, "churn_v2")
    for at, snapshot in ((t1, t1), (t1 + 20 * DAY, t1), (t2, t2)):
        pd.testing.assert_series_equal(
            joined.loc[at, changes].astype("float64"),
            activity.loc[(customer, snapshot), changes].astype("float64"),
            check_names=False,
        )


def test_the_label_window_is_exactly_snapshot_to_snapshot_plus_horizon() -> None:
    t = pd.Timestamp("2026-03-01", tz="UTC")
    horizon = 30
    customers = pd.DataFrame(
        {
            "customer_id": ["gone_at_t", "just_after", "at_edge", "past_edge", "stays"],
            "signup_at": pd.Timestamp("2024-01-01", tz="UTC"),
        }
    )
    churn = pd.DataFrame(
        {
            "customer_id": ["gone_at_t", "just_after", "at_edge", "past_edge"],
            "churned_at": [
                t,
                t + pd.Timedelta(seconds=1),
                t + horizon * DAY,
                t + horizon * DAY + pd.Timedelta(seconds=1),
            ],
        }
    )
    rows = churn_entity_rows(
        customers,
        churn,
        pd.Timestamp("2026-02-01", tz="UTC"),
        pd.Timestamp("2026-05-01", tz="UTC"),
        horizon,
    )
    at_t = rows[rows["event_timestamp"] == t].set_index("customer_id")[label_column(horizon)]
    assert "gone_at_t" not in at_t.index  # not active at the snapshot: no row
    assert at_t.to_dict() == {
        "just_after": True,
        "at_edge": True,
        "past_edge": False,
        "stays": False,
    }


def test_snapshots_whose_label_window_is_incomplete_are_left_out() -> None:
    customers = pd.DataFrame(
        {"customer_id": ["a"], "signup_at": pd.Timestamp("2024-01-01", tz="UTC")}
    )
    churn = pd.DataFrame(
        {"customer_id": pd.Series(dtype=str), "churned_at": pd.Series(dtype="datetime64[ns, UTC]")}
    )
    as_of = pd.Timestamp("2026-05-20", tz="UTC")
    rows = churn_entity_rows(customers, churn, pd.Timestamp("2026-01-01", tz="UTC"), as_of, 30)
    assert rows["event_timestamp"].max() == pd.Timestamp("2026-04-01", tz="UTC")
    assert (rows["event_timestamp"] + 30 * DAY <= as_of).all()
