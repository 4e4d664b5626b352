"""What a retention analyst checks first in a lifecycle dataset, as plain numbers.

Works on any dataset that meets the contract (simulated or an operator's export), so the
same figures can be compared side by side. Used by `retain data profile`, by the realism
tests of the simulator and in the notebooks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from features.lifecycle.calendar import contract_end_after
from features.lifecycle.contract import TABLES
from features.lifecycle.validate import read_table

_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Profile:
    monthly_churn_rate: float
    churn_rate_by_contract: dict[str, float]
    churn_rate_contract_ends_within_60d: float  # term contracts only
    churn_rate_contract_end_later: float
    churn_rate_after_bill_shock: float  # previous month's bill >= 125 % of the 3 before
    churn_rate_without_bill_shock: float
    churn_rate_after_outage: float  # home cell had >= 12 outage hours in the previous month
    churn_rate_without_outage: float  # no outage in the previous month
    network_faults_week_after_outage: float  # per 1,000 affected customers
    network_faults_week_before_outage: float
    campus_pack_term_start_ratio: float  # Feb, Mar, Sep vs the other months (per month)
    roaming_pack_holiday_ratio: float  # Spring Festival month, Jul, Aug vs the rest
    typhoon_share_in_season: float  # typhoon outages in July-October
    sites_per_fibre_cut: float
    churn_60d_after_offer_treated: float
    churn_60d_after_offer_control: float
    active_customers: int
    active_tenure_months_mean: float
    active_contract_mix: dict[str, float]
    active_monthly_fee_mean: float
    active_monthly_fee_range: tuple[float, float]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def load_tables(directory: Path, names: tuple[str, ...] | None = None) -> dict[str, pd.DataFrame]:
    return {name: read_table(directory / TABLES[name].file_name) for name in names or tuple(TABLES)}


def customer_months(
    customers: pd.DataFrame, churn: pd.DataFrame, first_month: pd.Timestamp, as_of: pd.Timestamp
) -> pd.DataFrame:
    """One row per customer and month (from `first_month`, the start of the recorded history)
    in which the customer was active at the month start, with `churned` = left during that
    month. The base of every churn-rate figure."""
    churned_at = customers["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    last = (as_of - _DAY).tz_convert("UTC").tz_localize(None).to_period("M")
    first = first_month.tz_convert("UTC").tz_localize(None).to_period("M")
    frames = []
    for period in pd.period_range(first, last, freq="M"):
        start = period.start_time.tz_localize("UTC")
        end = (period + 1).start_time.tz_localize("UTC")
        active = (customers["signup_at"] < start) & ~(churned_at < start)
        if not active.any():
            continue
        rows = customers.loc[
            active, ["customer_id", "contract_type", "signup_at", "cell_site_id"]
        ].copy()
        rows["month"] = start
        rows["churned"] = (churned_at[active] < end).to_numpy()
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def _rate(mask_churned: pd.Series) -> float:
    return float(mask_churned.mean()) if len(mask_churned) else float("nan")


def _monthly_outage_hours(events: pd.DataFrame) -> pd.DataFrame:
    """Outage hours per site and month of the outage start."""
    hours = (events["ended_at"].fillna(events["started_at"]) - events["started_at"]) / pd.Timedelta(
        hours=1
    )
    month = (
        events["started_at"]
        .dt.tz_localize(None)
        .dt.to_period("M")
        .dt.start_time.dt.tz_localize("UTC")
    )
    return (
        pd.DataFrame({"cell_site_id": events["cell_site_id"], "month": month, "hours": hours})
        .groupby(["cell_site_id", "month"], as_index=False)["hours"]
        .sum()
    )


def _bill_shock_months(usage: pd.DataFrame, signup: pd.Series) -> pd.DataFrame:
    """(customer_id, month) pairs whose bill was >= 125 % of the mean of the three before.

    The signup month is billed for part of a month only: it is left out, so the first
    full bill of a new customer is not mistaken for a shock.
    """
    signup_month = usage["customer_id"].map(signup).dt.tz_localize(None).dt.to_period("M")
    partial = usage["month"].dt.tz_localize(None).dt.to_period("M") == signup_month
    usage = usage[~partial.to_numpy()].sort_values(["customer_id", "month"])
    bills = usage.groupby("customer_id")["bill_amount"]
    previous = (bills.shift(1) + bills.shift(2) + bills.shift(3)) / 3
    shocked = usage.loc[usage["bill_amount"] >= 1.25 * previous, ["customer_id", "month"]]
    return shocked.assign(shock=True)


def _tickets_around_outages(
    tickets: pd.DataFrame, customers: pd.DataFrame, events: pd.DataFrame
) -> tuple[float, float]:
    """Network-fault tickets per 1,000 homed customers, 7 days after vs before major outages."""
    major = events[events["severity"] != "minor"].drop_duplicates("cell_site_id", keep="first")
    homed = customers.groupby("cell_site_id").size()
    faults = (
        tickets[tickets["ticket_type"] == "network_fault"]
        .merge(customers[["customer_id", "cell_site_id"]], on="customer_id")
        .merge(major[["cell_site_id", "started_at"]], on="cell_site_id")
    )
    delta = faults["opened_at"] - faults["started_at"]
    exposed = homed.reindex(major["cell_site_id"]).sum()
    after = ((delta >= pd.Timedelta(0)) & (delta < 7 * _DAY)).sum()
    before = ((delta < pd.Timedelta(0)) & (delta >= -7 * _DAY)).sum()
    return 1000 * after / exposed, 1000 * before / exposed


def profile(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> Profile:
    customers, churn = tables["customers"], tables["churn_events"]
    panel = customer_months(customers, churn, tables["usage_monthly"]["month"].min(), as_of)

    term = panel[panel["contract_type"] != "month_to_month"]
    ends = contract_end_after(term["signup_at"], term["contract_type"], term["month"])
    near_end = (ends - term["month"]) <= 60 * _DAY

    outages = _monthly_outage_hours(tables["network_events"])
    previous_month = (
        panel["month"]
        .dt.tz_localize(None)
        .dt.to_period("M")
        .sub(1)
        .dt.start_time.dt.tz_localize("UTC")
    )
    exposure = (
        pd.DataFrame({"cell_site_id": panel["cell_site_id"], "month": previous_month})
        .merge(outages, on=["cell_site_id", "month"], how="left")["hours"]
        .fillna(0)
        .to_numpy()
    )

    shocks = _bill_shock_months(
        tables["usage_monthly"], customers.set_index("customer_id")["signup_at"]
    ).rename(columns={"month": "previous_month"})
    shocked = (
        pd.DataFrame({"customer_id": panel["customer_id"], "previous_month": previous_month})
        .merge(shocks, on=["customer_id", "previous_month"], how="left")["shock"]
        .notna()
        .to_numpy()
    )

    purchases = tables["package_purchases"]
    month = purchases["purchased_at"].dt.month
    campus = purchases[purchases["package_id"] == "campus_data_pack"]
    campus_month = campus["purchased_at"].dt.month
    n_months = purchases["purchased_at"].dt.tz_localize(None).dt.to_period("M").nunique()
    term_months = (
        purchases.loc[month.isin([2, 3, 9]), "purchased_at"]
        .dt.tz_localize(None)
        .dt.to_period("M")
        .nunique()
    )
    campus_ratio = (campus_month.isin([2, 3, 9]).sum() / max(term_months, 1)) / (
        (~campus_month.isin([2, 3, 9])).sum() / max(n_months - term_months, 1)
    )
    roaming = purchases[purchases["package_id"] == "roaming_pack"]
    by_month = roaming.groupby(
        roaming["purchased_at"].dt.tz_localize(None).dt.to_period("M")
    ).size()
    peak = by_month.index.month.isin([1, 2, 7, 8])  # the festival falls in January or February
    roaming_ratio = by_month[peak].mean() / by_month[~peak].mean()

    events = tables["network_events"]
    typhoons = events[events["cause"] == "typhoon"]
    cuts = events[events["cause"] == "fibre_cut"]

    campaigns = tables["campaigns"].merge(churn, on="customer_id", how="left")
    observable = campaigns["sent_at"] <= as_of - 60 * _DAY
    campaigns = campaigns[observable]
    left = (campaigns["churned_at"] > campaigns["sent_at"]) & (
        campaigns["churned_at"] <= campaigns["sent_at"] + 60 * _DAY
    )

    churned_at = customers["customer_id"].map(churn.set_index("customer_id")["churned_at"])
    active = customers[churned_at.isna()]
    tenure = (as_of - active["signup_at"]) / (30.44 * _DAY)
    after_faults, before_faults = _tickets_around_outages(
        tables["service_tickets"], customers, events
    )

    return Profile(
        monthly_churn_rate=_rate(panel["churned"]),
        churn_rate_by_contract=panel.groupby("contract_type")["churned"].mean().round(5).to_dict(),
        churn_rate_contract_ends_within_60d=_rate(term.loc[near_end.to_numpy(), "churned"]),
        churn_rate_contract_end_later=_rate(term.loc[~near_end.to_numpy(), "churned"]),
        churn_rate_after_bill_shock=_rate(panel.loc[shocked, "churned"]),
        churn_rate_without_bill_shock=_rate(panel.loc[~shocked, "churned"]),
        churn_rate_after_outage=_rate(panel.loc[exposure >= 12, "churned"]),
        churn_rate_without_outage=_rate(panel.loc[exposure == 0, "churned"]),
        network_faults_week_after_outage=float(after_faults),
        network_faults_week_before_outage=float(before_faults),
        campus_pack_term_start_ratio=float(campus_ratio),
        roaming_pack_holiday_ratio=float(roaming_ratio),
        typhoon_share_in_season=float(typhoons["started_at"].dt.month.isin([7, 8, 9, 10]).mean())
        if len(typhoons)
        else float("nan"),
        sites_per_fibre_cut=float(cuts.groupby("event_id").size().mean())
        if len(cuts)
        else float("nan"),
        churn_60d_after_offer_treated=_rate(left[campaigns["treated"]]),
        churn_60d_after_offer_control=_rate(left[~campaigns["treated"]]),
        active_customers=len(active),
        active_tenure_months_mean=float(tenure.mean()),
        active_contract_mix=active["contract_type"].value_counts(normalize=True).round(3).to_dict(),
        active_monthly_fee_mean=float(active["monthly_fee"].mean()),
        active_monthly_fee_range=(
            float(active["monthly_fee"].min()),
            float(active["monthly_fee"].max()),
        ),
    )


__all__ = ["Profile", "customer_months", "load_tables", "profile"]
