"""The reference feature pipeline in pandas: what the engines' SQL must reproduce.

The product builds feature tables with `features.build` (ibis expressions run by DuckDB
or Spark; its docstring states the point-in-time rules); this is the original,
loop-per-snapshot pandas form of the same definitions, kept for the parity tests, the
window tests on tiny inline tables, and the benchmark of the path it replaced.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.snapshots import (
    COMPLAINT_LIKE,
    DAY,
    OFFER_KNOWN_AFTER,
    PACKAGES,
    TICKET_TYPES,
    active_at,
    demand_weeks,
    epoch_seconds,
    snapshot_times,
)
from features.snapshots import week_start as _week_start


@dataclass(frozen=True)
class FeatureTables:
    customer_profile: pd.DataFrame
    customer_activity: pd.DataFrame
    cell_site_quality: pd.DataFrame
    region_weekly_demand: pd.DataFrame

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [
            ("customer_profile", self.customer_profile),
            ("customer_activity", self.customer_activity),
            ("cell_site_quality", self.cell_site_quality),
            ("region_weekly_demand", self.region_weekly_demand),
        ]


def customer_profile(customers: pd.DataFrame) -> pd.DataFrame:
    """Slowly changing attributes, valid from signup (event time = `signup_at`)."""
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "event_timestamp": customers["signup_at"],
            "signup_epoch_s": epoch_seconds(customers["signup_at"]),
            "segment": customers["segment"],
            "age_band": customers["age_band"],
            "is_student": customers["is_student"],
            "region": customers["region"],
            "cell_site_id": customers["cell_site_id"],
            "plan_id": customers["plan_id"],
            "monthly_fee": customers["monthly_fee"].astype("float64"),
            "contract_type": customers["contract_type"],
            "payment_method": customers["payment_method"],
            "paperless_billing": customers["paperless_billing"],
            "large_print": customers["large_print"],
            "has_account_manager": customers["account_manager_id"].notna(),
            # contact permissions: read by the action engine, never by a model
            "consent_sms": customers["consent_sms"],
            "consent_app_push": customers["consent_app_push"],
            "consent_email": customers["consent_email"],
            "consent_phone": customers["consent_phone"],
        }
    )


def _usage_windows(usage: pd.DataFrame, ids: pd.Index, t: pd.Timestamp) -> pd.DataFrame:
    """Usage and billing over the last 1, 3 and 6 months fully billed by `t`."""
    billed = usage[usage["month"] + pd.offsets.MonthBegin(1) <= t]
    last_month = billed["month"].max()
    frame = pd.DataFrame(index=ids)
    if pd.isna(last_month):
        return frame
    months_back = (last_month.year - billed["month"].dt.year) * 12 + (
        last_month.month - billed["month"].dt.month
    )
    recent = billed[months_back < 6].assign(months_back=months_back[months_back < 6])

    def window(months: int) -> pd.core.groupby.DataFrameGroupBy:
        return recent[recent["months_back"] < months].groupby("customer_id")

    last, q, h = window(1), window(3), window(6)
    previous = recent[recent["months_back"].between(1, 3)].groupby("customer_id")
    previous_3 = previous["bill_amount"]
    frame["data_gb_30d"] = last["data_gb"].sum()
    frame["data_gb_mean_90d"] = q["data_gb"].mean()
    frame["data_gb_mean_180d"] = h["data_gb"].mean()
    frame["voice_min_mean_90d"] = q["voice_min"].mean()
    frame["roaming_days_90d"] = q["roaming_days"].sum()
    frame["bill_30d"] = last["bill_amount"].sum()
    frame["bill_mean_90d"] = q["bill_amount"].mean()
    frame["bill_mean_180d"] = h["bill_amount"].mean()
    frame["bill_change_vs_prev_3m"] = frame["bill_30d"] / previous_3.mean().replace(0, np.nan) - 1
    frame["overage_30d"] = last["overage_amount"].sum()
    frame["overage_90d"] = q["overage_amount"].sum()
    frame["late_payments_180d"] = h["late_payment"].sum()
    frame["months_billed_180d"] = h.size()
    counted = ["roaming_days_90d", "late_payments_180d", "months_billed_180d"]
    frame[counted] = frame[counted].fillna(0).astype("int64")  # none billed yet: 0, not NaN
    frame["bill_change_vs_6m"] = frame["bill_30d"] / frame["bill_mean_180d"].replace(0, np.nan) - 1
    for column in ("data_gb", "voice_min"):
        before = previous[column].mean().replace(0, np.nan)
        frame[f"{column}_change_vs_prev_3m"] = last[column].sum() / before - 1
    by_customer = billed.groupby("customer_id")
    frame["months_billed_lifetime"] = by_customer.size()
    frame["late_payments_lifetime"] = by_customer["late_payment"].sum()
    return frame.reindex(ids)


def _ticket_windows(tickets: pd.DataFrame, ids: pd.Index, t: pd.Timestamp) -> pd.DataFrame:
    """Service-ticket counts, openness, repeats, sentiment and resolution before `t`."""
    known = tickets[tickets["opened_at"] < t]
    age = t - known["opened_at"]
    frame = pd.DataFrame(index=ids)
    w90 = known[age <= 90 * DAY]
    counts = w90.groupby(["customer_id", "ticket_type"]).size().unstack(fill_value=0)
    for ticket_type in TICKET_TYPES:
        frame[f"tickets_{ticket_type}_90d"] = counts.get(ticket_type, pd.Series(dtype="int64"))
    frame["tickets_30d"] = known[age <= 30 * DAY].groupby("customer_id").size()
    frame["tickets_180d"] = known[age <= 180 * DAY].groupby("customer_id").size()
    still_open = known["closed_at"].isna() | (known["closed_at"] > t)
    frame["unresolved_tickets"] = known[still_open].groupby("customer_id").size()
    complaint_like = w90["ticket_type"].isin(COMPLAINT_LIKE)
    frame["repeat_complaints_90d"] = (
        w90[complaint_like & w90["is_repeat"]].groupby("customer_id").size()
    )
    frame["sentiment_mean_90d"] = w90.groupby("customer_id")["sentiment"].mean()
    frame["sentiment_min_90d"] = w90.groupby("customer_id")["sentiment"].min()
    w180 = known[age <= 180 * DAY]
    frame["first_contact_resolution_180d"] = w180.groupby("customer_id")[
        "first_contact_resolved"
    ].mean()
    last_complaint = (
        known[known["ticket_type"].isin(COMPLAINT_LIKE)].groupby("customer_id")["opened_at"].max()
    )
    frame["days_since_last_complaint"] = (t - last_complaint) / DAY
    w30 = known[age <= 30 * DAY]
    complaints = known[known["ticket_type"].isin(COMPLAINT_LIKE)]
    complaint_age = t - complaints["opened_at"]
    frame["complaints_30d"] = complaints[complaint_age <= 30 * DAY].groupby("customer_id").size()
    frame["complaints_30_to_90d"] = (
        complaints[(complaint_age > 30 * DAY) & (complaint_age <= 90 * DAY)]
        .groupby("customer_id")
        .size()
    )
    frame["tickets_relocation_30d"] = (
        w30[w30["ticket_type"] == "relocation"].groupby("customer_id").size()
    )
    frame["sentiment_mean_30d"] = w30.groupby("customer_id")["sentiment"].mean()
    frame["sentiment_mean_lifetime"] = known.groupby("customer_id")["sentiment"].mean()
    frame["complaints_lifetime"] = complaints.groupby("customer_id").size()
    counts = ("tickets_", "unresolved", "repeat_", "complaints_")
    counted = [c for c in frame.columns if c.startswith(counts)]
    frame[counted] = frame[counted].fillna(0).astype("int64")
    return frame


def site_outage_hours(events: pd.DataFrame, t: pd.Timestamp, days: int) -> pd.Series:
    """Outage hours per cell site in the `days` before `t`, ongoing outages clipped at `t`."""
    start = t - days * DAY
    begins = events["started_at"].clip(lower=start)
    ends = events["ended_at"].fillna(t).clip(upper=t)
    hours = ((ends - begins) / pd.Timedelta(hours=1)).clip(lower=0)
    return hours[events["started_at"] < t].groupby(events["cell_site_id"]).sum()


def _site_quality(quality: pd.DataFrame, events: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    recent = quality[(quality["day"] < t) & (quality["day"] >= t - 30 * DAY)]
    by_site = recent.groupby("cell_site_id")
    frame = pd.DataFrame(
        {
            "drop_rate_mean_30d": by_site["drop_rate"].mean(),
            "drop_rate_max_30d": by_site["drop_rate"].max(),
            "load_mean_30d": by_site["load"].mean(),
        }
    )
    hours_90d = site_outage_hours(events, t, 90)  # every site with an outage before t
    frame = frame.reindex(frame.index.union(hours_90d.index))  # reported quality days or not
    frame["outage_hours_30d"] = site_outage_hours(events, t, 30)
    frame["outage_hours_90d"] = hours_90d
    started = events[(events["started_at"] < t) & (events["started_at"] >= t - 30 * DAY)]
    frame["outage_events_30d"] = started.groupby("cell_site_id").size()
    counted = ["outage_hours_30d", "outage_hours_90d", "outage_events_30d"]
    frame[counted] = frame[counted].fillna(0)
    frame["outage_events_30d"] = frame["outage_events_30d"].astype("int64")
    return frame


def _campaign_windows(campaigns: pd.DataFrame, ids: pd.Index, t: pd.Timestamp) -> pd.DataFrame:
    """Offers actually received (treated rows only: the control group never hears of it)."""
    sent = campaigns[campaigns["treated"] & (campaigns["sent_at"] < t)]
    recent = sent[sent["sent_at"] >= t - 180 * DAY]
    decided = recent[recent["sent_at"] <= t - OFFER_KNOWN_AFTER]
    frame = pd.DataFrame(index=ids)
    frame["offers_180d"] = recent.groupby("customer_id").size()
    frame["offers_accepted_180d"] = decided.groupby("customer_id")["accepted"].sum()
    frame["days_since_last_offer"] = (t - sent.groupby("customer_id")["sent_at"].max()) / DAY
    frame[["offers_180d", "offers_accepted_180d"]] = (
        frame[["offers_180d", "offers_accepted_180d"]].fillna(0).astype("int64")
    )
    return frame


def _package_windows(purchases: pd.DataFrame, ids: pd.Index, t: pd.Timestamp) -> pd.DataFrame:
    known = purchases[purchases["purchased_at"] < t]
    age = t - known["purchased_at"]
    w90, w180 = known[age <= 90 * DAY], known[age <= 180 * DAY]
    frame = pd.DataFrame(index=ids)
    frame["packages_90d"] = w90.groupby("customer_id").size()
    frame["package_spend_90d"] = w90.groupby("customer_id")["price"].sum()
    for package in PACKAGES:
        frame[f"{package}_180d"] = w180[w180["package_id"] == package].groupby("customer_id").size()
    frame = frame.fillna(0)
    counted = ["packages_90d", *(f"{p}_180d" for p in PACKAGES)]
    frame[counted] = frame[counted].astype("int64")
    return frame


def customer_activity(
    tables: dict[str, pd.DataFrame], snapshots: pd.DatetimeIndex, site_quality: pd.DataFrame
) -> pd.DataFrame:
    """One row per customer active at each snapshot, with every rolling aggregate.

    `site_quality` is the `cell_site_quality` table: the home cell's figures come from it.
    """
    customers = tables["customers"]
    home_cell = customers.set_index("customer_id")["cell_site_id"]
    frames = []
    for t in snapshots:
        ids = pd.Index(
            customers.loc[active_at(customers, tables["churn_events"], t), "customer_id"],
            name="customer_id",
        )
        if ids.empty:
            continue
        sites = site_quality[site_quality["event_timestamp"] == t].set_index("cell_site_id")
        cells = home_cell.reindex(ids)
        frame = pd.concat(
            [
                _usage_windows(tables["usage_monthly"], ids, t),
                _ticket_windows(tables["service_tickets"], ids, t),
                _campaign_windows(tables["campaigns"], ids, t),
                _package_windows(tables["package_purchases"], ids, t),
            ],
            axis=1,
        )
        frame["home_cell_drop_rate_30d"] = cells.map(sites["drop_rate_mean_30d"]).to_numpy()
        frame["home_cell_outage_hours_30d"] = (
            cells.map(sites["outage_hours_30d"]).fillna(0).to_numpy()
        )
        frame["home_cell_outage_hours_90d"] = (
            cells.map(sites["outage_hours_90d"]).fillna(0).to_numpy()
        )
        frame = _change_features(frame)
        frames.append(frame.reset_index().assign(event_timestamp=t))
    activity = pd.concat(frames, ignore_index=True)
    floats = activity.select_dtypes("number").columns.difference(
        activity.select_dtypes("integer").columns
    )
    activity[floats] = activity[floats].astype("float64")
    return activity


def _change_features(frame: pd.DataFrame) -> pd.DataFrame:
    """churn_v2's features of change, after every churn_v1 column, in the engines' order."""
    months = frame.pop("months_billed_lifetime").fillna(0).astype("int64")
    late = frame.pop("late_payments_lifetime")
    complaints = frame.pop("complaints_lifetime")
    changes = [
        "data_gb_change_vs_prev_3m",
        "voice_min_change_vs_prev_3m",
        "bill_change_vs_6m",
        "complaints_30d",
        "complaints_30_to_90d",
        "tickets_relocation_30d",
        "sentiment_mean_30d",
        "sentiment_mean_lifetime",
    ]
    moved = {name: frame.pop(name) for name in changes}
    for name in changes:
        frame[name] = moved[name]
    frame["months_billed_lifetime"] = months
    frame["late_payment_rate_lifetime"] = late / months.replace(0, np.nan)
    frame["complaints_per_month_lifetime"] = complaints / months.replace(0, np.nan)
    return frame


def cell_site_quality(tables: dict[str, pd.DataFrame], snapshots: pd.DatetimeIndex) -> pd.DataFrame:
    sites = tables["cell_sites"][["cell_site_id"]]
    frames = [
        sites.join(
            _site_quality(tables["cell_quality_daily"], tables["network_events"], t),
            on="cell_site_id",
        )
        .fillna({"outage_hours_30d": 0.0, "outage_hours_90d": 0.0, "outage_events_30d": 0})
        .assign(event_timestamp=t)
        for t in snapshots
    ]
    quality = pd.concat(frames, ignore_index=True)
    quality["outage_events_30d"] = quality["outage_events_30d"].astype("int64")
    return quality


def weekly_outage_hours(events: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Outage hours per cell site and week, each outage split over the weeks it covered.

    A week's figure holds only hours inside that week (an outage running on past the
    week's end counts its later hours in the following week), and an outage still open
    at `as_of` counts up to `as_of`: a week's row is final once the week has ended.
    """
    start = events["started_at"]
    end = events["ended_at"].fillna(as_of).clip(upper=as_of)
    first = _week_start(start)
    spans = ((_week_start(end) - first) // (7 * DAY)).clip(lower=0).astype("int64") + 1
    repeated = events.loc[events.index.repeat(spans), ["cell_site_id"]]
    offset = repeated.groupby(level=0).cumcount().to_numpy()
    week_start = first.loc[repeated.index] + pd.to_timedelta(offset * 7, unit="D")
    inside_from = np.maximum(start.loc[repeated.index], week_start)
    inside_to = np.minimum(end.loc[repeated.index], week_start + 7 * DAY)
    hours = ((inside_to - inside_from) / pd.Timedelta(hours=1)).clip(lower=0.0)
    return pd.DataFrame(
        {
            "cell_site_id": repeated["cell_site_id"].to_numpy(),
            "week_start": week_start.to_numpy(),
            "hours": hours.to_numpy(),
        }
    )


def region_weekly_demand(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """Per region and complete week: package purchases, service contacts, outages (hours, and
    hours x the customers of the site at the week's start), base size, and the tickets still
    open at the week's end.

    The row's event time is the end of the week, when its totals are known.
    """
    customers = tables["customers"]
    region_of = customers.set_index("customer_id")["region"]
    weeks = demand_weeks(tables["usage_monthly"]["month"].min(), as_of)
    index = pd.MultiIndex.from_product(
        [sorted(customers["region"].unique()), weeks], names=["region", "week_start"]
    )
    frame = pd.DataFrame(index=index)

    purchases = tables["package_purchases"]
    bought = purchases.assign(
        region=purchases["customer_id"].map(region_of),
        week_start=_week_start(purchases["purchased_at"]),
    )
    counts = bought.groupby(["region", "week_start", "package_id"]).size().unstack(fill_value=0)
    for package in PACKAGES:
        frame[f"purchases_{package}"] = counts.get(package, pd.Series(dtype="int64"))

    tickets = tables["service_tickets"]
    opened = tickets.assign(
        region=tickets["customer_id"].map(region_of), week_start=_week_start(tickets["opened_at"])
    )
    frame["service_contacts"] = opened.groupby(["region", "week_start"]).size()
    frame["network_fault_contacts"] = (
        opened[opened["ticket_type"] == "network_fault"].groupby(["region", "week_start"]).size()
    )

    site_region = tables["cell_sites"].set_index("cell_site_id")["region"]
    outages = weekly_outage_hours(tables["network_events"], as_of).assign(
        region=lambda f: f["cell_site_id"].map(site_region)
    )

    churned_at = customers["customer_id"].map(
        tables["churn_events"].set_index("customer_id")["churned_at"]
    )
    active, students, served, backlog = [], [], {}, []
    for week in weeks:
        live = (customers["signup_at"] < week) & ~(churned_at <= week)
        active.append(customers[live].groupby("region").size().rename(week))
        students.append(
            customers[live & customers["is_student"]].groupby("region").size().rename(week)
        )
        # each home site's customers at the week's start: who its outages that week cut off
        for site, n in customers.loc[live, "cell_site_id"].value_counts().items():
            served[(site, week)] = n
        # the backlog at the week's end: opened before it and not closed by it
        end = week + 7 * DAY
        still_open = (tickets["opened_at"] < end) & ~(tickets["closed_at"] <= end)
        backlog.append(opened[still_open].groupby("region").size().rename(week))
    frame["active_customers"] = pd.concat(active, axis=1).stack().reorder_levels([0, 1])
    frame["active_students"] = pd.concat(students, axis=1).stack().reorder_levels([0, 1])
    frame["open_tickets"] = pd.concat(backlog, axis=1).stack().reorder_levels([0, 1])
    frame = frame.fillna(0).astype("int64")
    frame["outage_hours"] = (
        outages.groupby(["region", "week_start"])["hours"].sum().reindex(index).fillna(0.0)
    )
    cut_off = [
        hours * served.get((site, week), 0)
        for site, week, hours in outages[["cell_site_id", "week_start", "hours"]].itertuples(
            index=False
        )
    ]
    frame["outage_customer_hours"] = (
        outages.assign(customer_hours=cut_off)
        .groupby(["region", "week_start"])["customer_hours"]
        .sum()
        .reindex(index)
        .fillna(0.0)
    )
    result = frame.reset_index()
    result["event_timestamp"] = result["week_start"] + 7 * DAY
    result["week_of_year"] = result["week_start"].dt.isocalendar().week.astype("int64")
    return result


def build_feature_tables(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> FeatureTables:
    """All feature tables for every snapshot of the history up to `as_of`."""
    snapshots = snapshot_times(tables["usage_monthly"]["month"].min(), as_of)
    site_quality = cell_site_quality(tables, snapshots)  # once: customers read their home cell's
    return FeatureTables(
        customer_profile=customer_profile(tables["customers"]),
        customer_activity=customer_activity(tables, snapshots, site_quality),
        cell_site_quality=site_quality,
        region_weekly_demand=region_weekly_demand(tables, as_of),
    )


def write_feature_tables(tables: FeatureTables, directory: Path) -> dict[str, int]:
    """Write each feature table atomically (temp file + rename): readers never see half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, frame in tables.items():
        target = directory / f"{name}.parquet"
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".parquet")
        os.close(handle)
        try:
            frame.to_parquet(temporary, index=False)
            os.replace(temporary, target)
        finally:
            Path(temporary).unlink(missing_ok=True)
        counts[name] = len(frame)
    return counts
