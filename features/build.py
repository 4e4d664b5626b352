"""The feature pipeline: lifecycle tables in, point-in-time feature tables out.

Written once as ibis expressions, so the same definitions run on DuckDB (embedded, the
default: one process streaming over the parquet files with a memory limit and spilling)
and on Spark (a cluster, or `local[N]`): ibis compiles them to each engine's SQL. We chose
ibis over hand-written SQL because the windows are built from Python values (the snapshot
instants, the package and ticket lists) and composed per table, which in SQL would mean
templating strings per dialect; and over pandas because pandas holds every intermediate in
one process's memory (33 GB at a million customers).

Every feature row carries an `event_timestamp` (the snapshot instant t) and is computed
only from what was known strictly before t: tickets opened before t (and still open at t
if closed later), usage months fully billed by t, outages clipped at t, offers sent
before t. Feast's point-in-time join then hands each training row the latest snapshot at
or before its own time, so nothing from the future can reach it.

Snapshots are every month boundary of the history (month ends) and the as-of instant
(the latest day). Windows of 30/90/180 days are exact for event tables and the last
1/3/6 billed months for the monthly usage table. Each window is one pass: the event table
is paired with the (few) snapshots it precedes and aggregated per (key, snapshot) with a
filter per window, which both engines run as a broadcast join and a hash aggregate.

`tests/features/reference_build.py` is the same definitions in pandas, one snapshot at a
time; the parity tests hold the two equal value for value.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import ibis
import pandas as pd
from ibis import _
from ibis.backends import BaseBackend
from ibis.expr.types import BooleanValue, Table, TimestampValue

from features.engine import EngineSettings, connect, read_table, write_parquet
from features.lifecycle.contract import TABLES
from features.snapshots import (
    COMPLAINT_LIKE,
    OFFER_KNOWN_AFTER,
    PACKAGES,
    TICKET_TYPES,
    as_utc,
    demand_weeks,
    snapshot_times,
)

SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600
_OFFER_KNOWN_AFTER_DAYS = OFFER_KNOWN_AFTER.days


@dataclass(frozen=True)
class FeatureTables:
    """The four feature tables as unevaluated expressions of one backend."""

    customer_profile: Table
    customer_activity: Table
    cell_site_quality: Table
    region_weekly_demand: Table

    def items(self) -> list[tuple[str, Table]]:
        return [
            ("customer_profile", self.customer_profile),
            ("customer_activity", self.customer_activity),
            ("cell_site_quality", self.cell_site_quality),
            ("region_weekly_demand", self.region_weekly_demand),
        ]


def lifecycle_tables(con: BaseBackend, directory: Path) -> dict[str, Table]:
    """Every contract table of `directory`, registered in the engine under its own name."""
    return {
        name: read_table(con, directory / spec.file_name, name) for name, spec in TABLES.items()
    }


def _days_before(t: TimestampValue, days: int) -> TimestampValue:
    return t - ibis.interval(days=days)


def _seconds_between(later: TimestampValue, earlier: TimestampValue) -> ibis.Value:
    return later.epoch_seconds().cast("int64") - earlier.epoch_seconds().cast("int64")


def _count(where: BooleanValue) -> ibis.Value:
    """Rows where `where` holds, as a 64-bit count (DuckDB sums integers into 128 bits)."""
    return ibis.ifelse(where, 1, ibis.null()).count()


def _fill(column: ibis.Value, value: object, dtype: str) -> ibis.Value:
    return column.fill_null(value).cast(dtype)


def _not_yet(ended_at: ibis.Value, t: TimestampValue) -> BooleanValue:
    """An end (a churn, a ticket's close) not reached at t: unknown (null) or after t."""
    return ended_at.isnull() | (ended_at > t)


def customer_profile(customers: Table) -> Table:
    """Slowly changing attributes, valid from signup (event time = `signup_at`)."""
    return customers.select(
        customer_id=customers.customer_id,
        event_timestamp=customers.signup_at,
        signup_epoch_s=customers.signup_at.epoch_seconds().cast("int64"),
        segment=customers.segment,
        age_band=customers.age_band,
        is_student=customers.is_student,
        region=customers.region,
        cell_site_id=customers.cell_site_id,
        plan_id=customers.plan_id,
        monthly_fee=customers.monthly_fee.cast("float64"),
        contract_type=customers.contract_type,
        payment_method=customers.payment_method,
        paperless_billing=customers.paperless_billing,
        large_print=customers.large_print,
        has_account_manager=customers.account_manager_id.notnull(),
        # contact permissions: read by the action engine, never by a model
        consent_sms=customers.consent_sms,
        consent_app_push=customers.consent_app_push,
        consent_email=customers.consent_email,
        consent_phone=customers.consent_phone,
    )


def active_customers(customers: Table, churn: Table, snapshots: Table) -> Table:
    """(customer_id, cell_site_id, t) for every customer signed up before t and not gone by t."""
    left = churn.select("customer_id", "churned_at")
    lives = customers.select("customer_id", "cell_site_id", "signup_at").left_join(
        left, "customer_id"
    )
    pairs = lives.cross_join(snapshots)
    return pairs.filter((pairs.signup_at < pairs.t) & _not_yet(pairs.churned_at, pairs.t)).select(
        "customer_id", "cell_site_id", "t"
    )


def _month_key(month: TimestampValue) -> ibis.Value:
    return month.year().cast("int64") * 12 + month.month().cast("int64")


def usage_windows(usage: Table, snapshots: Table) -> Table:
    """Usage and billing over the last 1, 3 and 6 months fully billed by each snapshot.

    The months are counted back from the latest month billed by t in the whole table, so a
    customer with no bill that month has no `data_gb_30d` (null) rather than a zero.
    """
    keyed = usage.mutate(month_key=_month_key(usage.month))
    months = keyed.select("month", "month_key").distinct()
    billed = months.cross_join(snapshots)
    last = (
        billed.filter(billed.month + ibis.interval(months=1) <= billed.t)
        .group_by("t")
        .aggregate(last_key=_.month_key.max())
    )
    back = ibis.memtable({"months_back": list(range(6))}, schema={"months_back": "int64"})
    windows = last.cross_join(back).mutate(month_key=_.last_key - _.months_back)
    rows = keyed.join(windows, "month_key")
    one, three = rows.months_back < 1, rows.months_back < 3
    previous = (rows.months_back >= 1) & (rows.months_back <= 3)
    sums = rows.group_by(["customer_id", "t"]).aggregate(
        data_gb_30d=rows.data_gb.sum(where=one),
        data_gb_mean_prev_3m=rows.data_gb.mean(where=previous),
        voice_min_30d=rows.voice_min.sum(where=one),
        voice_min_mean_prev_3m=rows.voice_min.mean(where=previous),
        data_gb_mean_90d=rows.data_gb.mean(where=three),
        data_gb_mean_180d=rows.data_gb.mean(),
        voice_min_mean_90d=rows.voice_min.mean(where=three),
        # summed as a double and cast back: DuckDB widens an integer sum to 128 bits
        roaming_days_90d=rows.roaming_days.cast("float64").sum(where=three).cast("int64"),
        bill_30d=rows.bill_amount.sum(where=one),
        bill_mean_90d=rows.bill_amount.mean(where=three),
        bill_mean_180d=rows.bill_amount.mean(),
        bill_mean_prev_3m=rows.bill_amount.mean(where=previous),
        overage_30d=rows.overage_amount.sum(where=one),
        overage_90d=rows.overage_amount.sum(where=three),
        late_payments_180d=_count(rows.late_payment),
        months_billed_180d=rows.count(),
    )
    # nothing in the months compared against: no ratio (null), neither infinity nor an error
    return sums.mutate(
        bill_change_vs_prev_3m=sums.bill_30d / sums.bill_mean_prev_3m.nullif(0) - 1,
        bill_change_vs_6m=sums.bill_30d / sums.bill_mean_180d.nullif(0) - 1,
        data_gb_change_vs_prev_3m=sums.data_gb_30d / sums.data_gb_mean_prev_3m.nullif(0) - 1,
        voice_min_change_vs_prev_3m=sums.voice_min_30d / sums.voice_min_mean_prev_3m.nullif(0) - 1,
    )


def usage_lifetime(usage: Table, snapshots: Table) -> Table:
    """Every month billed by each snapshot, since signup: how many and how many paid late.

    A habit of paying late is a trait of the customer, better measured over the whole
    relationship than over six months.
    """
    pairs = usage.cross_join(snapshots)
    billed = pairs.filter(pairs.month + ibis.interval(months=1) <= pairs.t)
    return billed.group_by(["customer_id", "t"]).aggregate(
        months_billed_lifetime=billed.count(),
        late_payments_lifetime=_count(billed.late_payment),
    )


def ticket_windows(tickets: Table, snapshots: Table) -> Table:
    """Service-ticket counts, openness, repeats, sentiment and resolution before each snapshot."""
    pairs = tickets.cross_join(snapshots)
    known = pairs.filter(pairs.opened_at < pairs.t)
    d30 = known.opened_at >= _days_before(known.t, 30)
    d90 = known.opened_at >= _days_before(known.t, 90)
    d180 = known.opened_at >= _days_before(known.t, 180)
    complaint_like = known.ticket_type.isin(COMPLAINT_LIKE)
    d30_to_90 = d90 & ~d30
    by_type = {
        f"tickets_{kind}_90d": _count(d90 & (known.ticket_type == kind)) for kind in TICKET_TYPES
    }
    return known.group_by(["customer_id", "t"]).aggregate(
        **by_type,
        tickets_30d=_count(d30),
        tickets_180d=_count(d180),
        unresolved_tickets=_count(_not_yet(known.closed_at, known.t)),
        repeat_complaints_90d=_count(d90 & complaint_like & known.is_repeat),
        sentiment_mean_90d=known.sentiment.mean(where=d90),
        sentiment_min_90d=known.sentiment.min(where=d90),
        first_contact_resolution_180d=known.first_contact_resolved.cast("float64").mean(where=d180),
        last_complaint_at=known.opened_at.max(where=complaint_like),
        complaints_30d=_count(d30 & complaint_like),
        complaints_30_to_90d=_count(d30_to_90 & complaint_like),
        tickets_relocation_30d=_count(d30 & (known.ticket_type == "relocation")),
        sentiment_mean_30d=known.sentiment.mean(where=d30),
        sentiment_mean_lifetime=known.sentiment.mean(),
        complaints_lifetime=_count(complaint_like),
    )


def campaign_windows(campaigns: Table, snapshots: Table) -> Table:
    """Offers actually received (treated rows only: the control group never hears of it)."""
    treated = campaigns.filter(campaigns.treated)
    pairs = treated.cross_join(snapshots)
    sent = pairs.filter(pairs.sent_at < pairs.t)
    recent = sent.sent_at >= _days_before(sent.t, 180)
    decided = recent & (sent.sent_at <= _days_before(sent.t, _OFFER_KNOWN_AFTER_DAYS))
    return sent.group_by(["customer_id", "t"]).aggregate(
        offers_180d=_count(recent),
        offers_accepted_180d=_count(decided & sent.accepted),
        last_offer_at=sent.sent_at.max(),
    )


def package_windows(purchases: Table, snapshots: Table) -> Table:
    pairs = purchases.cross_join(snapshots)
    known = pairs.filter(
        (pairs.purchased_at < pairs.t) & (pairs.purchased_at >= _days_before(pairs.t, 180))
    )
    d90 = known.purchased_at >= _days_before(known.t, 90)
    by_package = {f"{package}_180d": _count(known.package_id == package) for package in PACKAGES}
    return known.group_by(["customer_id", "t"]).aggregate(
        packages_90d=_count(d90),
        package_spend_90d=known.price.sum(where=d90),
        **by_package,
    )


def _outage_hours(events: Table, t: TimestampValue, days: int) -> ibis.Value:
    """Hours of each outage inside [t - days, t), an ongoing one counted up to t."""
    begins = ibis.greatest(events.started_at, _days_before(t, days))
    ends = ibis.least(events.ended_at.fill_null(t), t)
    return ibis.greatest(_seconds_between(ends, begins), 0) / SECONDS_PER_HOUR


def cell_site_quality(cell_sites: Table, quality: Table, events: Table, snapshots: Table) -> Table:
    """Per cell site and snapshot: drop rate and load over 30 days, outage hours and events."""
    days = quality.cross_join(snapshots)
    recent = days.filter((days.day < days.t) & (days.day >= _days_before(days.t, 30)))
    measured = recent.group_by(["cell_site_id", "t"]).aggregate(
        drop_rate_mean_30d=recent.drop_rate.mean(),
        drop_rate_max_30d=recent.drop_rate.max(),
        load_mean_30d=recent.load.mean(),
    )
    pairs = events.cross_join(snapshots)
    started = pairs.filter(pairs.started_at < pairs.t)
    outages = started.group_by(["cell_site_id", "t"]).aggregate(
        outage_hours_30d=_outage_hours(started, started.t, 30).sum(),
        outage_hours_90d=_outage_hours(started, started.t, 90).sum(),
        outage_events_30d=_count(started.started_at >= _days_before(started.t, 30)),
    )
    grid = cell_sites.select("cell_site_id").cross_join(snapshots)
    joined = grid.left_join(measured, ["cell_site_id", "t"]).left_join(
        outages, ["cell_site_id", "t"]
    )
    return joined.select(
        "cell_site_id",
        "drop_rate_mean_30d",
        "drop_rate_max_30d",
        "load_mean_30d",
        outage_hours_30d=_fill(joined.outage_hours_30d, 0.0, "float64"),
        outage_hours_90d=_fill(joined.outage_hours_90d, 0.0, "float64"),
        outage_events_30d=_fill(joined.outage_events_30d, 0, "int64"),
        event_timestamp=joined.t,
    )


def _days_since(t: TimestampValue, then: TimestampValue) -> ibis.Value:
    return _seconds_between(t, then) / SECONDS_PER_DAY


def customer_activity(tables: dict[str, Table], snapshots: Table, site_quality: Table) -> Table:
    """One row per customer active at each snapshot, with every rolling aggregate.

    `site_quality` is the `cell_site_quality` table: the home cell's figures come from it.
    """
    keys = ["customer_id", "t"]
    base = active_customers(tables["customers"], tables["churn_events"], snapshots)
    usage = usage_windows(tables["usage_monthly"], snapshots)
    lifetime = usage_lifetime(tables["usage_monthly"], snapshots)
    tickets = ticket_windows(tables["service_tickets"], snapshots)
    offers = campaign_windows(tables["campaigns"], snapshots)
    packages = package_windows(tables["package_purchases"], snapshots)
    home = site_quality.select(
        "cell_site_id",
        t=site_quality.event_timestamp,
        home_cell_drop_rate_30d=site_quality.drop_rate_mean_30d,
        home_cell_outage_hours_30d=site_quality.outage_hours_30d,
        home_cell_outage_hours_90d=site_quality.outage_hours_90d,
    )
    j = (
        base.left_join(usage, keys)
        .left_join(lifetime, keys)
        .left_join(tickets, keys)
        .left_join(offers, keys)
        .left_join(packages, keys)
        .left_join(home, ["cell_site_id", "t"])
    )
    return j.select(
        "customer_id",
        "data_gb_30d",
        "data_gb_mean_90d",
        "data_gb_mean_180d",
        "voice_min_mean_90d",
        roaming_days_90d=_fill(j.roaming_days_90d, 0, "int64"),
        bill_30d=j.bill_30d,
        bill_mean_90d=j.bill_mean_90d,
        bill_mean_180d=j.bill_mean_180d,
        bill_change_vs_prev_3m=j.bill_change_vs_prev_3m,
        overage_30d=j.overage_30d,
        overage_90d=j.overage_90d,
        late_payments_180d=_fill(j.late_payments_180d, 0, "int64"),
        months_billed_180d=_fill(j.months_billed_180d, 0, "int64"),
        **{f"tickets_{k}_90d": _fill(j[f"tickets_{k}_90d"], 0, "int64") for k in TICKET_TYPES},
        tickets_30d=_fill(j.tickets_30d, 0, "int64"),
        tickets_180d=_fill(j.tickets_180d, 0, "int64"),
        unresolved_tickets=_fill(j.unresolved_tickets, 0, "int64"),
        repeat_complaints_90d=_fill(j.repeat_complaints_90d, 0, "int64"),
        sentiment_mean_90d=j.sentiment_mean_90d,
        sentiment_min_90d=j.sentiment_min_90d,
        first_contact_resolution_180d=j.first_contact_resolution_180d,
        days_since_last_complaint=_days_since(j.t, j.last_complaint_at),
        offers_180d=_fill(j.offers_180d, 0, "int64"),
        offers_accepted_180d=_fill(j.offers_accepted_180d, 0, "int64"),
        days_since_last_offer=_days_since(j.t, j.last_offer_at),
        packages_90d=_fill(j.packages_90d, 0, "int64"),
        package_spend_90d=_fill(j.package_spend_90d, 0.0, "float64"),
        **{f"{p}_180d": _fill(j[f"{p}_180d"], 0, "int64") for p in PACKAGES},
        home_cell_drop_rate_30d=j.home_cell_drop_rate_30d,
        home_cell_outage_hours_30d=_fill(j.home_cell_outage_hours_30d, 0.0, "float64"),
        home_cell_outage_hours_90d=_fill(j.home_cell_outage_hours_90d, 0.0, "float64"),
        **_change_features(j),
        event_timestamp=j.t,
    )


def _change_features(j: Table) -> dict[str, ibis.Value]:
    """The features of change (churn_v2): the latest month against the months before, the
    last 30 days of service against the 60 before, and lifetime habits to compare with."""
    months = _fill(j.months_billed_lifetime, 0, "int64")
    complaints = _fill(j.complaints_lifetime, 0, "int64")
    return {
        "data_gb_change_vs_prev_3m": j.data_gb_change_vs_prev_3m,
        "voice_min_change_vs_prev_3m": j.voice_min_change_vs_prev_3m,
        "bill_change_vs_6m": j.bill_change_vs_6m,
        "complaints_30d": _fill(j.complaints_30d, 0, "int64"),
        "complaints_30_to_90d": _fill(j.complaints_30_to_90d, 0, "int64"),
        "tickets_relocation_30d": _fill(j.tickets_relocation_30d, 0, "int64"),
        "sentiment_mean_30d": j.sentiment_mean_30d,
        "sentiment_mean_lifetime": j.sentiment_mean_lifetime,
        "months_billed_lifetime": months,
        # no month billed yet: no rate (null) rather than a division by zero
        "late_payment_rate_lifetime": j.late_payments_lifetime.cast("float64")
        / months.nullif(0).cast("float64"),
        "complaints_per_month_lifetime": complaints.cast("float64")
        / months.nullif(0).cast("float64"),
    }


def region_weekly_demand(tables: dict[str, Table], weeks: pd.DatetimeIndex) -> Table:
    """Per region and complete week: package purchases, service contacts, outages, base size
    and the ticket backlog.

    The row's event time is the end of the week, when its totals are known. An outage
    counts in each week only the hours inside it, up to the as-of instant (the caller's
    `weeks` end a week before it, so an open outage is clipped there by the week's end);
    its customer-hours weigh those hours by the customers its site served at the week's
    start. The backlog is the tickets still open at the week's end.
    """
    customers = tables["customers"]
    starts = weeks.tz_localize("UTC") if weeks.tz is None else weeks
    calendar = ibis.memtable({"week_start": starts, "week_end": starts + pd.Timedelta(days=7)})
    regions = customers.select("region").distinct()
    grid = regions.cross_join(calendar)
    keys = ["region", "week_start"]
    region_of = customers.select("customer_id", "region")

    purchases = tables["package_purchases"].join(region_of, "customer_id")
    bought = (
        purchases.mutate(week_start=purchases.purchased_at.truncate("W"))
        .group_by(keys)
        .aggregate(
            **{f"purchases_{package}": _count(_.package_id == package) for package in PACKAGES}
        )
    )
    tickets = tables["service_tickets"].join(region_of, "customer_id")
    contacts = (
        tickets.mutate(week_start=tickets.opened_at.truncate("W"))
        .group_by(keys)
        .aggregate(
            service_contacts=_.count(),
            network_fault_contacts=_count(_.ticket_type == "network_fault"),
        )
    )
    held = tickets.cross_join(calendar)
    backlog = (
        held.filter((held.opened_at < held.week_end) & _not_yet(held.closed_at, held.week_end))
        .group_by(keys)
        .aggregate(open_tickets=_.count())
    )

    lives = customers.select(
        "customer_id", "region", "cell_site_id", "is_student", "signup_at"
    ).left_join(tables["churn_events"].select("customer_id", "churned_at"), "customer_id")
    pairs = lives.cross_join(calendar)
    active = pairs.filter(
        (pairs.signup_at < pairs.week_start) & _not_yet(pairs.churned_at, pairs.week_start)
    )
    base = active.group_by(keys).aggregate(
        active_customers=_.count(), active_students=_count(_.is_student)
    )
    # the customers a site served at the week's start: who an outage there left without service
    served = active.group_by(["cell_site_id", "week_start"]).aggregate(site_customers=_.count())

    sites = tables["cell_sites"].select("cell_site_id", "region")
    located = tables["network_events"].join(sites, "cell_site_id").cross_join(calendar)
    inside_from = ibis.greatest(located.started_at, located.week_start)
    inside_to = ibis.least(located.ended_at.fill_null(located.week_end), located.week_end)
    clipped = located.mutate(
        hours=ibis.greatest(_seconds_between(inside_to, inside_from), 0) / SECONDS_PER_HOUR
    ).left_join(served, ["cell_site_id", "week_start"])
    outages = clipped.group_by(keys).aggregate(
        outage_hours=clipped.hours.sum(),
        outage_customer_hours=(clipped.hours * clipped.site_customers.fill_null(0)).sum(),
    )

    j = (
        grid.left_join(bought, keys)
        .left_join(contacts, keys)
        .left_join(base, keys)
        .left_join(backlog, keys)
        .left_join(outages, keys)
    )
    counted = [
        *(f"purchases_{package}" for package in PACKAGES),
        "service_contacts",
        "network_fault_contacts",
        "active_customers",
        "active_students",
        "open_tickets",
    ]
    return j.select(
        "region",
        "week_start",
        **{name: _fill(j[name], 0, "int64") for name in counted},
        outage_hours=_fill(j.outage_hours, 0.0, "float64"),
        outage_customer_hours=_fill(j.outage_customer_hours, 0.0, "float64"),
        event_timestamp=j.week_start + ibis.interval(days=7),
        week_of_year=j.week_start.week_of_year().cast("int64"),
    )


def first_month(tables: dict[str, Table]) -> pd.Timestamp:
    """The first recorded usage month: where the snapshots (and demand weeks) begin."""
    return as_utc(pd.Timestamp(tables["usage_monthly"].month.min().execute()))


def build_feature_tables(tables: dict[str, Table], as_of: pd.Timestamp) -> FeatureTables:
    """All feature tables for every snapshot of the history up to `as_of` (unevaluated)."""
    start = first_month(tables)
    snapshots = ibis.memtable({"t": snapshot_times(start, as_of)})
    site_quality = cell_site_quality(
        tables["cell_sites"], tables["cell_quality_daily"], tables["network_events"], snapshots
    )
    return FeatureTables(
        customer_profile=customer_profile(tables["customers"]),
        customer_activity=customer_activity(tables, snapshots, site_quality).order_by(
            ["event_timestamp", "customer_id"]
        ),
        cell_site_quality=site_quality.order_by(["event_timestamp", "cell_site_id"]),
        region_weekly_demand=region_weekly_demand(tables, demand_weeks(start, as_of)).order_by(
            ["region", "week_start"]
        ),
    )


def write_feature_tables(
    con: BaseBackend, tables: FeatureTables, directory: Path
) -> dict[str, int]:
    """Run each table's expression and publish it atomically as `<name>.parquet`."""
    return {
        name: write_parquet(con, expr, directory / f"{name}.parquet")
        for name, expr in tables.items()
    }


def build_directory(
    lifecycle_dir: Path, tables_dir: Path, as_of: pd.Timestamp, engine: EngineSettings
) -> dict[str, int]:
    """Build every feature table of `lifecycle_dir` into `tables_dir` on the configured engine;
    returns the rows written per table. DuckDB spills to a private folder beside the tables."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=".spill-", dir=tables_dir) as spill,
        connect(engine, spill_dir=Path(spill)) as con,
    ):
        tables = lifecycle_tables(con, lifecycle_dir)
        return write_feature_tables(con, build_feature_tables(tables, as_of), tables_dir)
