"""Service KPIs by region and week, the rules that turn misses into alerts, and their views.

Pure functions of DataFrames and settings (`serving.kpi_job` reads the tables, publishes
the result and sends the alerts). A ticket counts in the week it was opened (Monday
00:00 UTC to the next Monday) and in its customer's region, exactly as the demand
forecast's `service_load` series counts service contacts
(`features.build.region_weekly_demand`), so weekly contacts compare with that forecast
like for like. Figures are as of an instant `until`: a ticket closed after it is open.

The KPIs (the operators' service guides): first-contact resolution, the repeat-complaint
rate, complaints per 1,000 active customers, resolution time by ticket type (median and
P90 hours of the tickets closed), the share of tickets resolved within their type's
deadline, and the week's contacts against the service-load forecast.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from serving.kpi_settings import KpiSettings

WEEK = pd.Timedelta(days=7)
HOUR = pd.Timedelta(hours=1)
KEYS = ["region", "week_start"]

CONTACTS = "contacts"
COMPLAINTS_PER_1K = "complaints_per_1k"
FIRST_CONTACT_RESOLUTION = "first_contact_resolution"
REPEAT_COMPLAINT_RATE = "repeat_complaint_rate"
RESOLUTION_MEDIAN = "resolution_median_hours"
RESOLUTION_P90 = "resolution_p90_hours"
RESOLVED_IN_TIME = "resolved_in_time"
SERVICE_LOAD = "service_load"  # the forecast series of weekly service contacts

TICKET_COLUMNS = (
    "ticket_id", "customer_id", "opened_at", "closed_at", "ticket_type",
    "first_contact_resolved", "is_repeat",
)  # fmt: skip
CUSTOMER_COLUMNS = ("customer_id", "region", "cell_site_id", "signup_at")
CHURN_COLUMNS = ("customer_id", "churned_at")
FORECAST_COLUMNS = ("region", "series", "origin", "week_start")
NOTICE_COLUMNS = ("event_id", "region", "started_at", "first_notice_at")


class KpiDataError(ValueError):
    """An input table lacks a column or holds a value the KPIs cannot use."""


def require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Refuse `frame` (called `name`) unless it has every one of `columns`."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KpiDataError(
            f"{name} lacks column(s) {', '.join(missing)}; expected {', '.join(columns)}"
        )


def _no_nulls(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    for column in columns:
        if frame[column].isna().any():
            raise KpiDataError(f"{name}.{column} has empty values; every row needs one")


def week_of(instants: pd.Series) -> pd.Series:
    """The start (Monday 00:00 UTC) of the ISO week of each instant."""
    day = pd.to_datetime(instants, utc=True).dt.floor("D")
    return day - pd.to_timedelta(day.dt.dayofweek, unit="D")


def complete_weeks(until: pd.Timestamp, count: int) -> pd.DatetimeIndex:
    """The starts of the `count` latest weeks that ended by `until`, oldest first."""
    current = week_of(pd.Series([pd.Timestamp(until)])).iloc[0]  # not over at `until`
    return pd.date_range(end=current - WEEK, periods=count, freq="7D")


def prepare_tickets(
    tickets: pd.DataFrame,
    customers: pd.DataFrame,
    until: pd.Timestamp,
    complaint_types: Iterable[str],
    deadlines: Mapping[str, float],
) -> pd.DataFrame:
    """The tickets opened before `until`, each with its customer's region and home cell,
    its week, its resolution hours (closed by `until`) and, for a type with a deadline
    (`deadlines`: hours by ticket type), whether it was due and resolved in time by then.

    Tickets of unknown customers are left out, as the forecast's contact counts leave
    them out."""
    require(tickets, TICKET_COLUMNS, "service_tickets")
    require(customers, CUSTOMER_COLUMNS, "customers")
    _no_nulls(tickets, ("customer_id", "opened_at", "ticket_type", "first_contact_resolved",
                        "is_repeat"), "service_tickets")  # fmt: skip
    _no_nulls(customers, ("customer_id", "region"), "customers")
    twice = customers["customer_id"].duplicated()
    if twice.any():
        customer = customers.loc[twice, "customer_id"].iloc[0]
        raise KpiDataError(f"customers: customer {customer} appears twice; one row each expected")
    opened = pd.to_datetime(tickets["opened_at"], utc=True)
    closed = pd.to_datetime(tickets["closed_at"], utc=True)
    backwards = closed < opened
    if backwards.any():
        ticket = tickets.loc[backwards, "ticket_id"].iloc[0]
        raise KpiDataError(f"service_tickets: ticket {ticket} is closed before it was opened")
    until = pd.Timestamp(until)
    frame = pd.DataFrame(
        {
            "ticket_id": tickets["ticket_id"].astype(str),
            "customer_id": tickets["customer_id"].astype(str),
            "ticket_type": tickets["ticket_type"].astype(str),
            "opened_at": opened,
            "closed_at": closed.where(closed <= until),  # closed later: still open then
            "first_contact_resolved": tickets["first_contact_resolved"].astype(bool),
            "is_repeat": tickets["is_repeat"].astype(bool),
        }
    )[(opened < until).to_numpy()]
    homes = customers[["customer_id", "region", "cell_site_id"]].astype({"customer_id": str})
    frame = frame.merge(homes, on="customer_id", how="inner", validate="many_to_one")
    frame["week_start"] = week_of(frame["opened_at"])
    frame["hours"] = (frame["closed_at"] - frame["opened_at"]) / HOUR
    frame["complaint"] = frame["ticket_type"].isin(list(complaint_types))
    limit = frame["ticket_type"].map(dict(deadlines)).astype("float64")
    frame["in_time"] = (frame["hours"] <= limit).fillna(False).astype(bool)
    passed = (frame["opened_at"] + limit * HOUR) <= until
    frame["due"] = frame["in_time"] | passed.fillna(False).astype(bool)
    frame["overdue"] = frame["due"] & ~frame["in_time"]
    return frame


def active_customers(
    customers: pd.DataFrame, churn: pd.DataFrame, weeks: pd.DatetimeIndex
) -> pd.DataFrame:
    """Customers active at the start of each week, by region (region, week_start,
    active): signed up before it and not churned by then, as the forecast counts them."""
    require(customers, CUSTOMER_COLUMNS, "customers")
    require(churn, CHURN_COLUMNS, "churn_events")
    left = pd.to_datetime(churn["churned_at"], utc=True).groupby(churn["customer_id"]).min()
    signup = pd.to_datetime(customers["signup_at"], utc=True)
    churned = customers["customer_id"].map(left)
    counts = [
        customers.loc[(signup < week) & (churned.isna() | (churned > week)), "region"]
        .value_counts()
        .rename_axis("region")
        .reset_index(name="active")
        .assign(week_start=week)
        for week in weeks
    ]
    found = pd.concat(counts, ignore_index=True) if counts else pd.DataFrame()
    return found.reindex(columns=["region", "week_start", "active"])


def _rows(
    kpi: str,
    ticket_type: str | None,
    value: pd.Series,
    count: pd.Series,
    target: float | None,
    direction: str,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kpi": kpi,
            "ticket_type": ticket_type,
            "value": value.astype("float64"),
            "count": count.astype("int64"),
            "target": np.nan if target is None else float(target),
            "direction": direction,
        }
    ).reset_index()


def weekly_kpis(
    prepared: pd.DataFrame,
    active: pd.DataFrame,
    weeks: pd.DatetimeIndex,
    settings: KpiSettings,
) -> pd.DataFrame:
    """Every KPI of every region and week, one row each: region, week_start, kpi,
    ticket_type (for the per-type KPIs), value (NaN when nothing to measure), count (what
    the value is measured on), target (NaN: none), direction (`min`: the value must reach
    the target; `max`: not exceed it). The contacts' target is the forecast's
    (`with_forecast`)."""
    regions = sorted(set(active["region"]) | set(prepared["region"]))
    grid = pd.MultiIndex.from_product([regions, weeks], names=KEYS)
    inside = prepared[prepared["week_start"].isin(weeks)]

    def count(mask: pd.Series) -> pd.Series:
        return inside[mask].groupby(KEYS).size().reindex(grid, fill_value=0)

    every = pd.Series(True, index=inside.index)
    contacts = count(every)
    complaints = count(inside["complaint"])
    base = active.set_index(KEYS)["active"].reindex(grid, fill_value=0)
    targets = settings.targets
    rows = [
        _rows(CONTACTS, None, contacts, contacts, None, "max"),
        _rows(
            COMPLAINTS_PER_1K, None, 1000 * complaints / base.where(base > 0), base,
            targets.complaints_per_1k_max, "max",
        ),
        _rows(
            FIRST_CONTACT_RESOLUTION, None,
            count(inside["first_contact_resolved"]) / contacts.where(contacts > 0), contacts,
            targets.first_contact_resolution_min, "min",
        ),
        _rows(
            REPEAT_COMPLAINT_RATE, None,
            count(inside["complaint"] & inside["is_repeat"]) / complaints.where(complaints > 0),
            complaints, targets.repeat_complaint_rate_max, "max",
        ),
    ]  # fmt: skip
    for ticket_type in sorted(set(inside["ticket_type"]) | set(targets.deadlines)):
        of_type = inside["ticket_type"] == ticket_type
        hours = inside[of_type & inside["hours"].notna()].groupby(KEYS)["hours"]
        closed = hours.size().reindex(grid, fill_value=0)
        rows.append(_rows(RESOLUTION_MEDIAN, ticket_type, hours.median().reindex(grid), closed,
                          None, "max"))  # fmt: skip
        rows.append(_rows(RESOLUTION_P90, ticket_type, hours.quantile(0.9).reindex(grid), closed,
                          None, "max"))  # fmt: skip
        deadline = targets.deadlines.get(ticket_type)
        if deadline is not None:
            due = count(of_type & inside["due"])
            in_time = count(of_type & inside["in_time"]) / due.where(due > 0)
            rows.append(_rows(RESOLVED_IN_TIME, ticket_type, in_time, due, deadline.min_share,
                              "min"))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def forecast_targets(
    forecast: pd.DataFrame, weeks: pd.DatetimeIndex, quantile: str
) -> pd.DataFrame:
    """The service-load forecast of each region and week (region, week_start, target,
    origin): `quantile` of the latest forecast whose origin (the end of the last week it
    knew) is at or before the week's start. Weeks no such forecast covers are absent."""
    require(forecast, (*FORECAST_COLUMNS, quantile), "forecast")
    load = forecast[forecast["series"] == SERVICE_LOAD]
    frame = pd.DataFrame(
        {
            "region": load["region"].astype(str),
            "week_start": pd.to_datetime(load["week_start"], utc=True),
            "origin": pd.to_datetime(load["origin"], utc=True),
            "target": load[quantile].astype("float64"),
        }
    )
    before = frame[(frame["origin"] <= frame["week_start"]) & frame["week_start"].isin(weeks)]
    latest = before.sort_values("origin").groupby(KEYS, as_index=False).tail(1)
    return latest[["region", "week_start", "target", "origin"]].reset_index(drop=True)


def with_forecast(kpis: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """`kpis` with each contacts row's target (and its forecast's origin) from `targets`."""
    joined = kpis.merge(
        targets.assign(kpi=CONTACTS).rename(columns={"target": "forecast"}),
        on=[*KEYS, "kpi"], how="left",
    )  # fmt: skip
    contacts = joined["kpi"] == CONTACTS
    joined.loc[contacts, "target"] = joined.loc[contacts, "forecast"]
    return joined.drop(columns="forecast")


def judge(kpis: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """`kpis` with `missed`: True or False against the target, None where not judged (no
    target, nothing measured, or a rate over fewer than `min_count` tickets)."""
    value, target = kpis["value"], kpis["target"]
    enough = (kpis["count"] >= min_count) | (kpis["kpi"] == CONTACTS)
    judged = value.notna() & target.notna() & enough
    missed = np.where(kpis["direction"] == "min", value < target, value > target)
    verdicts = [bool(m) if j else None for m, j in zip(missed, judged, strict=True)]
    return kpis.assign(missed=pd.Series(verdicts, index=kpis.index, dtype=object))


def failing(prepared: pd.DataFrame, kpi: str, ticket_type: str | None) -> pd.Series:
    """The tickets behind a KPI's shortfall (what drivers are counted on)."""
    if kpi == CONTACTS:
        return pd.Series(True, index=prepared.index)
    if kpi == COMPLAINTS_PER_1K:
        return prepared["complaint"]
    if kpi == FIRST_CONTACT_RESOLUTION:
        return ~prepared["first_contact_resolved"]
    if kpi == REPEAT_COMPLAINT_RATE:
        return prepared["complaint"] & prepared["is_repeat"]
    if kpi == RESOLVED_IN_TIME:
        return (prepared["ticket_type"] == ticket_type) & prepared["overdue"]
    raise ValueError(f"no failing tickets are defined for the KPI {kpi!r}")


def drivers(
    prepared: pd.DataFrame,
    mask: pd.Series,
    region: str,
    week: pd.Timestamp,
    baseline_weeks: int,
    top: int,
) -> dict[str, list[dict[str, Any]]]:
    """The ticket types and home cell sites whose tickets (those in `mask`) grew most in
    `region` in `week` against their weekly mean over the `baseline_weeks` before it (only
    the weeks the data covers): the `top` of each with growth, largest first."""
    rows = prepared[mask & (prepared["region"] == region)]
    first = prepared["week_start"].min()
    before = [week - k * WEEK for k in range(1, baseline_weeks + 1) if week - k * WEEK >= first]
    found: dict[str, list[dict[str, Any]]] = {}
    for column, name in (("ticket_type", "ticket_types"), ("cell_site_id", "cell_sites")):
        now = rows.loc[rows["week_start"] == week, column].value_counts()
        base = rows.loc[rows["week_start"].isin(before), column].value_counts() / max(
            len(before), 1
        )
        both = pd.DataFrame({"count": now, "baseline": base}).fillna(0.0)
        both["growth"] = both["count"] - both["baseline"]
        grown = both[both["growth"] > 0].rename_axis("key").reset_index()
        grown = grown.sort_values(["growth", "key"], ascending=[False, True]).head(top)
        found[name] = [
            {column: str(r.key), "count": int(r.count), "baseline": round(float(r.baseline), 2),
             "growth": round(float(r.growth), 2)}
            for r in grown.itertuples()
        ]  # fmt: skip
    return found


def missed_streaks(kpis: pd.DataFrame, weeks: pd.DatetimeIndex, consecutive: int) -> pd.DataFrame:
    """The (region, kpi, ticket_type) whose target was missed in each of the last
    `consecutive` weeks of `weeks` (the contacts' forecast excepted: it alerts at once)."""
    last = weeks[-consecutive:]
    if len(last) < consecutive:
        return pd.DataFrame(columns=["region", "kpi", "ticket_type"])
    recent = kpis[kpis["week_start"].isin(last) & (kpis["kpi"] != CONTACTS)]
    keys = ["region", "kpi", "ticket_type"]
    streak = recent.groupby(keys, dropna=False)["missed"].agg(
        lambda m: len(m) == consecutive and all(v is True for v in m)
    )
    return streak[streak].reset_index()[keys]


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def alerts_of(
    prepared: pd.DataFrame, kpis: pd.DataFrame, weeks: pd.DatetimeIndex, settings: KpiSettings
) -> list[dict[str, Any]]:
    """The alerts of the latest week: each KPI missing its target `consecutive_weeks`
    running in a region, and each region whose contacts exceeded the forecast, each with
    its likely drivers."""
    rules = settings.alerts
    last = weeks[-1]
    found: list[dict[str, Any]] = []
    for streak in missed_streaks(kpis, weeks, rules.consecutive_weeks).itertuples():
        ticket_type = None if pd.isna(streak.ticket_type) else str(streak.ticket_type)
        rows = kpis[
            (kpis["region"] == streak.region)
            & (kpis["kpi"] == streak.kpi)
            & (kpis["ticket_type"].isna() if ticket_type is None
               else kpis["ticket_type"] == ticket_type)
            & kpis["week_start"].isin(weeks[-rules.consecutive_weeks :])
        ].sort_values("week_start")  # fmt: skip
        found.append(
            {
                "kind": "kpi_missed",
                "region": streak.region,
                "kpi": streak.kpi,
                "ticket_type": ticket_type,
                "weeks": [w.date().isoformat() for w in rows["week_start"]],
                "values": [_number(v) for v in rows["value"]],
                "target": _number(rows["target"].iloc[-1]),
                "baseline_weeks": rules.baseline_weeks,
                "drivers": drivers(
                    prepared, failing(prepared, streak.kpi, ticket_type), streak.region, last,
                    rules.baseline_weeks, rules.top_drivers,
                ),
            }
        )  # fmt: skip
    over = kpis[(kpis["kpi"] == CONTACTS) & (kpis["week_start"] == last)]
    for row in over[over["missed"].map(lambda m: m is True)].itertuples():
        found.append(
            {
                "kind": "contacts_over_forecast",
                "region": row.region,
                "week_start": last.date().isoformat(),
                "contacts": int(row.count),
                "forecast": _number(row.target),
                "quantile": rules.forecast_quantile,
                "origin": pd.Timestamp(row.origin).isoformat(),
                "baseline_weeks": rules.baseline_weeks,
                "drivers": drivers(
                    prepared, failing(prepared, CONTACTS, None), row.region, last,
                    rules.baseline_weeks, rules.top_drivers,
                ),
            }
        )  # fmt: skip
    return found


def service_kpis(
    tickets: pd.DataFrame,
    customers: pd.DataFrame,
    churn: pd.DataFrame,
    forecast: pd.DataFrame | None,
    day: date,
    until: pd.Timestamp,
    settings: KpiSettings,
    weeks: int | None = None,
) -> dict[str, Any]:
    """The KPI result of the `weeks` complete weeks before `until` (default: the
    settings'), JSON-ready: the targets, one row per region, week and KPI, and the alerts.
    Without a forecast (None) the contacts have no target."""
    shown = complete_weeks(until, weeks or settings.weeks)
    # a streak needs its weeks even when fewer are shown
    judged = complete_weeks(until, max(len(shown), settings.alerts.consecutive_weeks))
    deadlines = {t: d.hours for t, d in settings.targets.deadlines.items()}
    prepared = prepare_tickets(tickets, customers, until, settings.complaint_types, deadlines)
    kpis = weekly_kpis(prepared, active_customers(customers, churn, judged), judged, settings)
    quantile = settings.alerts.forecast_quantile
    if forecast is not None:
        kpis = with_forecast(kpis, forecast_targets(forecast, judged, quantile))
    else:
        kpis = kpis.assign(origin=pd.NaT)
    kpis = judge(kpis, settings.alerts.min_count)
    alerts = alerts_of(prepared, kpis, judged, settings)
    table = kpis[kpis["week_start"].isin(shown)].sort_values(["region", "week_start"])
    return {
        "date": day.isoformat(),
        "until": pd.Timestamp(until).isoformat(),
        "weeks": [w.date().isoformat() for w in shown],
        "targets": settings.targets.model_dump(),
        "forecast_quantile": quantile if forecast is not None else None,
        "kpis": [_record(row) for row in table.to_dict("records")],
        "alerts": alerts,
    }


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """One KPI row as JSON values (dates as ISO strings, NaN as None)."""
    origin = row.get("origin")
    return {
        "region": row["region"],
        "week_start": pd.Timestamp(row["week_start"]).date().isoformat(),
        "kpi": row["kpi"],
        "ticket_type": None if pd.isna(row["ticket_type"]) else row["ticket_type"],
        "value": _number(row["value"]),
        "count": int(row["count"]),
        "target": _number(row["target"]),
        "direction": row["direction"],
        "missed": row["missed"],
        "origin": None if origin is None or pd.isna(origin) else pd.Timestamp(origin).isoformat(),
    }  # fmt: skip


def time_to_notify(frame: pd.DataFrame) -> pd.DataFrame:
    """Minutes from an outage's start to each customer's first notice, by region and the
    week the outage started: region, week_start, events, notified, not_notified (no notice
    yet), median_minutes, p95_minutes. `frame` holds one row per notified customer and
    outage (event_id, region, started_at, first_notice_at; NaT: not notified). A notice
    sent ahead of a planned outage counts as negative minutes."""
    require(frame, NOTICE_COLUMNS, "notices")
    _no_nulls(frame, ("event_id", "region", "started_at"), "notices")
    started = pd.to_datetime(frame["started_at"], utc=True)
    minutes = (pd.to_datetime(frame["first_notice_at"], utc=True) - started) / pd.Timedelta(
        minutes=1
    )
    rows = pd.DataFrame(
        {
            "region": frame["region"].astype(str),
            "week_start": week_of(started),
            "event_id": frame["event_id"],
            "minutes": minutes,
        }
    )
    grouped = rows.groupby(KEYS)
    found = pd.DataFrame(
        {
            "events": grouped["event_id"].nunique(),
            "notified": grouped["minutes"].count(),
            "not_notified": grouped["minutes"].apply(lambda m: int(m.isna().sum())),
            "median_minutes": grouped["minutes"].median(),
            "p95_minutes": grouped["minutes"].quantile(0.95),
        }
    )
    return found.reset_index().astype({"notified": "int64", "not_notified": "int64"})


# --- the table, on a terminal and on the daily page ---------------------------------------


def table_columns(result: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """The table's KPI columns: (kpi, ticket_type, label), the deadline types' last."""
    columns: list[tuple[str, str | None, str]] = [
        (CONTACTS, None, "contacts"),
        (COMPLAINTS_PER_1K, None, "complaints/1k"),
        (FIRST_CONTACT_RESOLUTION, None, "FCR"),
        (REPEAT_COMPLAINT_RATE, None, "repeat"),
    ]
    for ticket_type, deadline in result["targets"]["deadlines"].items():
        name = ticket_type.replace("_", " ")
        columns.append((RESOLVED_IN_TIME, ticket_type, f"{name} in {deadline['hours']:g}h"))
        columns.append((RESOLUTION_P90, ticket_type, f"{name} P90"))
    return columns


def figure(kpi: str, value: float | None) -> str:
    """A KPI value as shown: counts with separators, rates as percentages, hours."""
    if value is None:
        return "-"
    if kpi == CONTACTS:
        return f"{value:,.0f}"
    if kpi == COMPLAINTS_PER_1K:
        return f"{value:.1f}"
    if kpi in (RESOLUTION_MEDIAN, RESOLUTION_P90):
        return f"{value:.1f} h"
    return f"{100 * value:.1f} %"


def target_text(row: dict[str, Any]) -> str:
    """A row's target as shown (`>= 90.0 %`, `<= 1,234`), empty when it has none."""
    if row["target"] is None:
        return ""
    return f"{'>=' if row['direction'] == 'min' else '<='} {figure(row['kpi'], row['target'])}"


def cells(result: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The table's cells by (region, week): per column, the value, target and miss."""
    rows = {(r["region"], r["week_start"], r["kpi"], r["ticket_type"]): r for r in result["kpis"]}
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for region, week in sorted({(r["region"], r["week_start"]) for r in result["kpis"]}):
        found[(region, week)] = [
            {
                "text": figure(kpi, row["value"]) if row else "-",
                "target": target_text(row) if row else "",
                "missed": bool(row and row["missed"] is True),
            }
            for kpi, ticket_type, _ in table_columns(result)
            for row in [rows.get((region, week, kpi, ticket_type))]
        ]
    return found


def alert_text(alert: dict[str, Any]) -> str:
    """An alert in a line: what, where, and the drivers."""
    found = alert["drivers"]
    named = ", ".join(
        [f"{d['ticket_type']} +{d['growth']:g}" for d in found["ticket_types"]]
        + [f"cell {d['cell_site_id']} +{d['growth']:g}" for d in found["cell_sites"]]
    )
    before = f"the {alert['baseline_weeks']} weeks before"
    drivers_text = f"; grew most against {before}: {named}" if named else ""
    if alert["kind"] == "contacts_over_forecast":
        return (
            f"{alert['region']}: {alert['contacts']:,} contacts in the week of "
            f"{alert['week_start']}, above the forecast {alert['quantile'].upper()} "
            f"{alert['forecast']:,.0f}{drivers_text}"
        )
    kpi = alert["kpi"] + (f" ({alert['ticket_type']})" if alert["ticket_type"] else "")
    values = ", ".join(figure(alert["kpi"], v) for v in alert["values"])
    return (
        f"{alert['region']}: {kpi} missed its target {figure(alert['kpi'], alert['target'])} "
        f"{len(alert['weeks'])} weeks running ({values}; weeks of {', '.join(alert['weeks'])})"
        f"{drivers_text}"
    )


def kpis_view(result: dict[str, Any]) -> dict[str, Any]:
    """The daily page's KPI section (the `kpis` of `_kpis.html.j2`): the latest week's
    table, region by KPI, with targets and misses, and the alerts in words."""
    week = result["weeks"][-1]
    columns = table_columns(result)
    table = cells(result)
    return {
        "date": result["date"],
        "week": week,
        "columns": [label for _, _, label in columns],
        "rows": [
            {"region": region, "cells": found}
            for (region, of_week), found in table.items()
            if of_week == week
        ],
        "alerts": [alert_text(a) for a in result["alerts"]],
        "misses": sum(1 for r in result["kpis"] if r["week_start"] == week and r["missed"] is True),
    }
