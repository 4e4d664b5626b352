"""Hotline and online agents per region, day and hour, from the service-load forecast.

The weekly service-load forecast (P90 by default: staff for the peak we promise to meet)
is split over the lines agents answer by each region's channel mix, over days by a
day-of-week profile and over hours by an hour-of-day profile, all estimated from the
tickets' `opened_at` in recent history. Each hour's contacts become agents on the line by
Erlang C: the fewest agents who answer the target share of contacts within the answer
time without exceeding the maximum occupancy. Shrinkage (breaks, training) turns agents
on the line into scheduled staff. Holiday-mode days (public holidays, the Spring Festival,
term starts) get an uplift and a green channel, a priority line with a tighter target.

Tickets carry no talk time, so handle times come from configuration. Store visits are
not planned here: their share of the forecast belongs to no line. Times are UTC, as the
tickets' timestamps and the forecast weeks are.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.lifecycle.contract import TABLES
from features.lifecycle.validate import resolve_as_of
from training.demand.calendar import term_start_dates
from training.demand.errors import DemandDataError
from training.demand.settings import AgentStaffing, DemandCalendar, Staffing

GREEN = "green_channel"
DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)
SECONDS_PER_HOUR = 3600.0
FILES = {"staffing": "daily", "staffing_hourly": "hourly"}  # file stem -> plan table


def _utc(moment: pd.Timestamp) -> pd.Timestamp:
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


# --- Erlang C ------------------------------------------------------------------------------
def erlang_b(traffic: Any, agents: Any) -> np.ndarray:
    """Blocking probability of `agents` servers offered `traffic` erlangs.

    By the recursion B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1)), which stays within [0, 1]
    for any load, where the factorial sum overflows beyond about 170 agents.
    """
    a, n = np.broadcast_arrays(np.asarray(traffic, dtype=float), np.asarray(agents, dtype=int))
    b = np.ones(a.shape)
    for k in range(1, int(n.max(initial=0)) + 1):
        b = np.where(k <= n, a * b / (k + a * b), b)
    return b


def erlang_c(traffic: Any, agents: Any) -> np.ndarray:
    """Probability that a contact waits at all (1 when the agents cannot keep up)."""
    a, n = np.broadcast_arrays(np.asarray(traffic, dtype=float), np.asarray(agents, dtype=int))
    b = erlang_b(a, n)
    stable = n > a
    with np.errstate(divide="ignore", invalid="ignore"):
        waiting = n * b / (n - a * (1 - b))
    return np.where(stable, waiting, 1.0)


def service_level(traffic: Any, agents: Any, aht_seconds: Any, answer_seconds: Any) -> np.ndarray:
    """Share of contacts answered within `answer_seconds`: 1 - C exp(-(N - A) T / AHT)."""
    a, n = np.broadcast_arrays(np.asarray(traffic, dtype=float), np.asarray(agents, dtype=int))
    decay = np.exp(-np.maximum(n - a, 0) * np.asarray(answer_seconds) / np.asarray(aht_seconds))
    return np.where(n > a, 1 - erlang_c(a, n) * decay, 0.0)


def average_speed_of_answer(traffic: Any, agents: Any, aht_seconds: Any) -> np.ndarray:
    """Mean wait in seconds, C AHT / (N - A); infinite when the agents cannot keep up."""
    a, n = np.broadcast_arrays(np.asarray(traffic, dtype=float), np.asarray(agents, dtype=int))
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = erlang_c(a, n) * np.asarray(aht_seconds) / (n - a)
    return np.where(n > a, wait, np.inf)


def agents_needed(
    calls_per_hour: Any,
    aht_seconds: Any,
    target: Any,
    answer_seconds: Any,
    max_occupancy: float = 1.0,
) -> np.ndarray:
    """The fewest agents on the line meeting the target service level and max occupancy.

    Vectorised over rows: agent counts rise together while the Erlang B recursion advances
    one step per count, so a row needing N agents costs N steps, not N^2.
    """
    calls, aht, goal, answer = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (calls_per_hour, aht_seconds, target, answer_seconds))
    )
    finite = np.isfinite(calls) & np.isfinite(aht) & np.isfinite(answer)
    if not finite.all() or np.any(calls < 0) or np.any(aht <= 0) or np.any(answer <= 0):
        raise ValueError("calls must be finite and >= 0, AHT and answer time finite and > 0")
    if np.any(~((goal > 0) & (goal < 1))):
        raise ValueError("the target service level must lie in (0, 1)")
    traffic = calls * aht / SECONDS_PER_HOUR
    needed = np.zeros(traffic.shape, dtype=int)
    done = traffic <= 0  # nothing to answer: no agent needed for it
    b = np.ones(traffic.shape)
    k = 0
    while not done.all():
        k += 1
        b = traffic * b / (k + traffic * b)
        with np.errstate(divide="ignore", invalid="ignore"):
            waits = k * b / (k - traffic * (1 - b))
            level = 1 - waits * np.exp(-(k - traffic) * answer / aht)
        ok = (k > traffic) & (traffic / k <= max_occupancy) & (level >= goal) & ~done
        needed[ok] = k
        done |= ok
    return needed


# --- profiles from the tickets -------------------------------------------------------------
@dataclass(frozen=True)
class Profiles:
    """How a region's weekly contacts split over lines, weekdays and hours (shares sum to 1)."""

    line_share: pd.DataFrame  # region, line, share (of all the region's contacts)
    day_of_week: pd.DataFrame  # line, weekday (Monday = 0), share
    hour_of_day: pd.DataFrame  # line, hour, share


def line_of(agents: AgentStaffing) -> dict[str, str]:
    """Ticket channel -> the line that answers it (channels of no line, e.g. store: none)."""
    return {source: name for name, line in agents.lines.items() for source in line.sources}


def contact_profiles(
    tickets: pd.DataFrame,
    regions: pd.DataFrame,
    agents: AgentStaffing,
    until: pd.Timestamp,
) -> Profiles:
    """Line, weekday and hour shares from the tickets of the `history_weeks` before `until`.

    `regions` maps customer_id -> region. Weekday shares are rates per calendar day of
    that weekday in the window, so a window holding one Monday more does not tilt them.
    """
    missing = {"customer_id", "opened_at", "channel"} - set(tickets.columns)
    if missing:
        raise DemandDataError(f"service_tickets lacks column(s) {', '.join(sorted(missing))}")
    since = until - agents.history_weeks * WEEK
    recent = tickets[(tickets["opened_at"] >= since) & (tickets["opened_at"] < until)]
    recent = recent.merge(regions[["customer_id", "region"]], on="customer_id", how="inner")
    recent = recent.assign(line=recent["channel"].map(line_of(agents)))
    # every region gets every line (share 0 when none of its tickets came that way), so
    # each line keeps its minimum staffing
    counts = recent.groupby(["region", "line"], dropna=False).size()
    shares = (counts / counts.groupby(level="region").transform("sum")).unstack("line")
    line_share = (
        shares.reindex(columns=list(agents.lines), fill_value=0.0)
        .fillna(0.0)
        .rename_axis(columns="line")
        .stack()
        .rename("share")
        .reset_index()
    )
    answered = recent.dropna(subset=["line"])
    empty = sorted(set(agents.lines) - set(answered["line"]))
    if empty:
        raise DemandDataError(
            f"no service_tickets of line(s) {', '.join(empty)} (channels "
            f"{', '.join(s for e in empty for s in agents.lines[e].sources)}) in the "
            f"{agents.history_weeks} weeks before {until:%Y-%m-%d}: no profile to plan by"
        )
    weekday_days = (
        pd.Series(pd.date_range(since.normalize(), until - DAY, freq="D").dayofweek)
        .value_counts()
        .reindex(range(7), fill_value=0)
    )
    by_day = (
        answered.groupby(["line", answered["opened_at"].dt.dayofweek.rename("weekday")])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=range(7), fill_value=0)
    ) / weekday_days.clip(lower=1).to_numpy()
    by_hour = (
        answered.groupby(["line", answered["opened_at"].dt.hour.rename("hour")])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=range(24), fill_value=0)
    )
    return Profiles(
        line_share=line_share,
        day_of_week=_shares(by_day, "weekday"),
        hour_of_day=_shares(by_hour, "hour"),
    )


def _shares(table: pd.DataFrame, column: str) -> pd.DataFrame:
    shares = table.div(table.sum(axis=1), axis=0)
    return shares.stack().rename("share").rename_axis(["line", column]).reset_index()


# --- holiday mode --------------------------------------------------------------------------
def holiday_days(
    first: pd.Timestamp, last: pd.Timestamp, agents: AgentStaffing, calendar: DemandCalendar
) -> pd.Series:
    """Why each holiday-mode day from `first` to `last` (tz-naive days) is one, by date."""
    mode = agents.holidays
    reasons: dict[pd.Timestamp, list[str]] = {}

    def add(day: pd.Timestamp, reason: str) -> None:
        if first <= day <= last and reason not in reasons.setdefault(day, []):
            reasons[day].append(reason)

    years = range(first.year - 1, last.year + 1)
    for holiday in mode.dates:
        add(pd.Timestamp(holiday), "public holiday")
    for year in years:
        for month_day in mode.yearly:
            if month_day != "02-29" or pd.Timestamp(f"{year}-03-01").is_leap_year:
                add(pd.Timestamp(f"{year}-{month_day}"), "public holiday")
    for festival in calendar.spring_festival:
        for offset in range(mode.spring_festival_days):
            add(pd.Timestamp(festival) + offset * DAY, "Spring Festival")
    for start in term_start_dates(calendar, years):
        for offset in range(mode.term_start_days):
            add(start + offset * DAY, "term start")
    return pd.Series(
        {day: ", ".join(why) for day, why in sorted(reasons.items())}, dtype="object"
    ).rename("holiday_reason")


# --- the plan ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StaffingPlan:
    daily: pd.DataFrame  # region, week_start, date, line: contacts, peak hour, agents, staff
    hourly: pd.DataFrame  # region, date, hour, line: contacts, agents, service level, ...


def hourly_load(
    forecast: pd.DataFrame,
    profiles: Profiles,
    staffing: Staffing,
    calendar: DemandCalendar,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """Contacts per region, day (from `start`), hour and line, holiday mode applied."""
    agents = staffing.agents
    load = service_load(forecast)[["region", "week_start", staffing.plan_for]]
    load = load.rename(columns={staffing.plan_for: "week_contacts"})
    # a quantile model may dip below zero on a quiet week; no one plans for negative calls
    load["week_contacts"] = load["week_contacts"].clip(lower=0.0)
    if load["week_start"].dt.tz is not None:
        load["week_start"] = load["week_start"].dt.tz_convert("UTC").dt.tz_localize(None)
    days = load.merge(pd.DataFrame({"offset": range(7)}), how="cross")
    days["date"] = days["week_start"] + days["offset"] * DAY
    days["weekday"] = days["date"].dt.dayofweek
    days = days[days["date"] >= _utc(start).tz_localize(None).normalize()]
    if days.empty:
        raise DemandDataError(f"the service-load forecast ends before {start:%Y-%m-%d}")
    unknown = sorted(set(days["region"]) - set(profiles.line_share["region"]))
    if unknown:
        raise DemandDataError(f"no service_tickets history for region(s) {', '.join(unknown)}")
    days = days.merge(profiles.line_share, on="region").merge(
        profiles.day_of_week, on=["line", "weekday"], suffixes=("", "_day")
    )
    holidays = holiday_days(days["date"].min(), days["date"].max(), agents, calendar)
    days["holiday_reason"] = days["date"].map(holidays).fillna("")
    days["holiday"] = days["holiday_reason"] != ""
    uplift = np.where(days["holiday"], agents.holidays.uplift, 1.0)
    days["contacts"] = days["week_contacts"] * days["share"] * days["share_day"] * uplift
    hours = days.merge(profiles.hour_of_day, on="line", suffixes=("", "_hour"))
    hours["contacts"] = hours["contacts"] * hours["share_hour"]
    # on holiday-mode days the green channel takes its share of its line's callers
    green = agents.holidays.green_channel
    diverted = hours["holiday"] & (hours["line"] == green.line)
    priority = hours[diverted].assign(line=GREEN)
    priority["contacts"] = priority["contacts"] * green.share
    hours.loc[diverted, "contacts"] *= 1 - green.share
    columns = ["region", "week_start", "date", "hour", "line", "contacts", "holiday"]
    return pd.concat([hours, priority], ignore_index=True)[[*columns, "holiday_reason"]]


def staff_hours(load: pd.DataFrame, agents: AgentStaffing) -> pd.DataFrame:
    """Agents on the line, scheduled staff and what they achieve, for each load row."""
    green = agents.holidays.green_channel
    is_green = (load["line"] == GREEN).to_numpy()
    aht_of = {name: line.aht_seconds for name, line in agents.lines.items()}
    aht = load["line"].map({**aht_of, GREEN: aht_of[green.line]}).to_numpy(dtype=float)
    target = np.where(is_green, green.service_level, agents.service_level)
    answer = np.where(is_green, green.answer_seconds, agents.answer_seconds)
    contacts = load["contacts"].to_numpy(dtype=float)
    needed = agents_needed(contacts, aht, target, answer, agents.max_occupancy)
    on_line = np.maximum(needed, agents.min_agents)
    traffic = contacts * aht / SECONDS_PER_HOUR
    with np.errstate(divide="ignore", invalid="ignore"):
        occupancy = np.where(on_line > 0, traffic / on_line, 0.0)
    return load.assign(
        traffic_erlangs=traffic,
        agents=on_line,
        scheduled=np.ceil(on_line / (1 - agents.shrinkage)).astype(int),
        service_level=np.where(contacts > 0, service_level(traffic, on_line, aht, answer), 1.0),
        asa_seconds=np.where(contacts > 0, average_speed_of_answer(traffic, on_line, aht), 0.0),
        occupancy=occupancy,
        target=target,
        answer_seconds=answer,
    )


def daily_plan(hourly: pd.DataFrame, agents: AgentStaffing) -> pd.DataFrame:
    """One row per region, day and line: contacts, the peak hour and the staff it takes."""
    keys = ["region", "week_start", "date", "line"]
    ordered = hourly.sort_values(
        [*keys, "agents", "contacts", "hour"], ascending=[*[True] * 4, False, False, True]
    )
    peak = ordered.groupby(keys, sort=False).head(1).set_index(keys)
    sums = hourly.groupby(keys).agg(
        contacts=("contacts", "sum"),
        agent_hours=("agents", "sum"),
        holiday=("holiday", "first"),
        holiday_reason=("holiday_reason", "first"),
        min_service_level=("service_level", "min"),
        target=("target", "first"),
        answer_seconds=("answer_seconds", "first"),
    )
    daily = sums.join(
        peak[["hour", "contacts", "agents", "scheduled"]].rename(
            columns={
                "hour": "peak_hour",
                "contacts": "peak_contacts",
                "agents": "peak_agents",
                "scheduled": "peak_scheduled",
            }
        )
    ).reset_index()
    daily["scheduled_hours"] = daily["agent_hours"] / (1 - agents.shrinkage)
    daily["staff"] = np.ceil(daily["scheduled_hours"] / agents.shift_hours).astype(int)
    return daily.sort_values(["date", "region", "line"], ignore_index=True)


def service_load(forecast: pd.DataFrame) -> pd.DataFrame:
    """The forecast's service-load rows, refused with a clear error when there are none."""
    missing = {"region", "series", "week_start", "p50", "p90"} - set(forecast.columns)
    if missing:
        raise DemandDataError(f"the forecast lacks column(s) {', '.join(sorted(missing))}")
    load = forecast[forecast["series"] == "service_load"]
    if load.empty:
        raise DemandDataError("the forecast has no 'service_load' series to staff for")
    return load


def staffing_plan(
    forecast: pd.DataFrame,
    tickets: pd.DataFrame,
    regions: pd.DataFrame,
    staffing: Staffing,
    calendar: DemandCalendar,
    start: pd.Timestamp,
) -> StaffingPlan:
    """Daily plan over the forecast's days from `start`; hourly plan for its first days."""
    agents = staffing.agents
    start = _utc(start)
    profiles = contact_profiles(tickets, regions, agents, start)
    hourly = staff_hours(hourly_load(forecast, profiles, staffing, calendar, start), agents)
    hourly["plan_for"] = staffing.plan_for
    daily = daily_plan(hourly, agents).assign(plan_for=staffing.plan_for)
    first = hourly["date"].min()
    soon = hourly[hourly["date"] < first + agents.hourly_days * DAY]
    hourly_columns = [
        "region", "date", "hour", "line", "contacts", "traffic_erlangs", "agents", "scheduled",
        "service_level", "asa_seconds", "occupancy", "target", "answer_seconds", "holiday",
        "plan_for",
    ]  # fmt: skip
    return StaffingPlan(
        daily=daily,
        hourly=soon.sort_values(["date", "hour", "region", "line"], ignore_index=True)[
            hourly_columns
        ],
    )


def peaks(daily: pd.DataFrame) -> pd.DataFrame:
    """Per region: the week and the day needing the most staff (ties: more contacts)."""
    rows = []
    for region, plan in daily.groupby("region"):
        weeks = plan.groupby("week_start")[["staff", "contacts"]].sum()
        week = weeks.sort_values(["staff", "contacts"], ascending=False).iloc[0]
        days = plan.groupby("date").agg(
            staff=("staff", "sum"), contacts=("contacts", "sum"), agents=("peak_agents", "sum")
        )
        day = days.sort_values(["staff", "contacts"], ascending=False).iloc[0]
        rows.append(
            {
                "region": region,
                "peak_week": week.name,
                "week_contacts": week["contacts"],
                "week_staff": int(week["staff"]),
                "peak_day": day.name,
                "day_contacts": day["contacts"],
                "day_staff": int(day["staff"]),
                "day_peak_agents": int(day["agents"]),
            }
        )
    return pd.DataFrame(rows)


# --- the page ------------------------------------------------------------------------------
def staffing_view(plan: pd.DataFrame, days: int = 7) -> dict[str, Any]:
    """The daily plan's first `days` days by region and day, formatted for the daily page.

    `plan` is the daily plan (`staffing.parquet`); each row of the view holds one region's
    day with, per line, the contacts forecast, the agents needed at the peak hour and that
    hour, and the staff to schedule over the day (all lines).
    """
    if plan.empty:
        return {"lines": [], "rows": [], "first": "", "last": "", "plan_for": ""}
    first = plan["date"].min()
    window = plan[plan["date"] < first + days * DAY]
    lines = sorted(window["line"].unique(), key=lambda name: (name == GREEN, name))
    rows = []
    for (region, day), group in window.groupby(["region", "date"]):
        by_line = group.set_index("line")
        cells = [
            {
                "contacts": f"{by_line.at[line, 'contacts']:,.1f}",
                "agents": int(by_line.at[line, "peak_agents"]),
                "peak_hour": f"{int(by_line.at[line, 'peak_hour']):02d}:00",
            }
            if line in by_line.index
            else None
            for line in lines
        ]
        rows.append(
            {
                "region": str(region),
                "date": f"{pd.Timestamp(day):%a %Y-%m-%d}",
                "holiday": str(group["holiday_reason"].iloc[0]),
                "cells": cells,
                "staff": int(group["staff"].sum()),
            }
        )
    targets = window.groupby("line")[["target", "answer_seconds"]].first()
    return {
        "lines": [
            {
                "name": name.replace("_", " "),
                "target": f"{targets.at[name, 'target']:.0%} within "
                f"{targets.at[name, 'answer_seconds']:g} s",
            }
            for name in lines
        ],
        "rows": rows,
        "first": f"{first:%Y-%m-%d}",
        "last": f"{window['date'].max():%Y-%m-%d}",
        "plan_for": str(plan["plan_for"].iloc[0]).upper(),
    }


# --- the job -------------------------------------------------------------------------------
def _read(path: Path, what: str, columns: list[str] | None = None, hint: str = "") -> pd.DataFrame:
    """A parquet table, or an error naming the file and what is wrong with it."""
    if not path.is_file():
        raise DemandDataError(f"no {what} at {path}{hint}")
    try:
        return pd.read_parquet(path, columns=columns)
    except (OSError, ValueError) as error:  # not parquet, or lacking a column
        raise DemandDataError(f"cannot read {what} at {path}: {error}") from error


def read_contacts(lifecycle_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lifecycle folder's tickets (who, when, which channel) and each customer's region."""
    tickets = _read(
        lifecycle_dir / TABLES["service_tickets"].file_name,
        "service_tickets table",
        ["customer_id", "opened_at", "channel"],
    )
    regions = _read(
        lifecycle_dir / TABLES["customers"].file_name, "customers table", ["customer_id", "region"]
    )
    return tickets, regions


def read_forecast(forecast_dir: Path) -> pd.DataFrame:
    """The published forecast (`retain forecast`), with its service-load rows checked."""
    forecast = _read(
        forecast_dir / "forecast.parquet", "forecast", hint=": run `retain forecast` first"
    )
    service_load(forecast)
    return forecast


def write_plan(plan: StaffingPlan, folder: Path) -> list[Path]:
    """Write both tables as parquet and CSV; each file appears whole or not at all."""
    written = []
    for stem, table in (("staffing", plan.daily), ("staffing_hourly", plan.hourly)):
        for suffix in ("parquet", "csv"):
            path = folder / f"{stem}.{suffix}"
            temporary = folder / f".{stem}.{uuid.uuid4().hex[:12]}.{suffix}"
            try:
                if suffix == "parquet":
                    table.to_parquet(temporary, index=False)
                else:
                    table.to_csv(temporary, index=False)
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
            written.append(path)
    return written


def plan_staffing(
    forecast_dir: Path,
    lifecycle_dir: Path,
    staffing: Staffing,
    calendar: DemandCalendar,
    as_of: pd.Timestamp | None = None,
) -> StaffingPlan:
    """Read the forecast and the tickets, plan from the day after `as_of`, write the plan.

    `as_of` defaults to the lifecycle data's as-of instant: profiles come from the weeks
    before it and the plan starts on its first whole day.
    """
    forecast = read_forecast(forecast_dir)
    tickets, regions = read_contacts(lifecycle_dir)
    start = resolve_as_of(lifecycle_dir, as_of).ceil("D")
    plan = staffing_plan(forecast, tickets, regions, staffing, calendar, start)
    write_plan(plan, forecast_dir)
    return plan
