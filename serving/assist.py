"""Help for the agent on a live contact: who should take the customer, what the home cell
is doing, and the recent tickets, so the customer never has to tell the story again.

The rules are pure functions (`route`, `cell_status`, `unresolved_complaints`); tickets
and cell quality are not in the online feature store, so `AssistIndex` keeps what a
contact needs of the lifecycle tables in memory (the last K tickets per customer, the
last days of quality per site) and re-reads a table when its file changes. Open outages
come from the action log's outage events (`open_outages`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd
from sqlalchemy import select

from serving.action_log.database import from_db, outage_events, to_db
from serving.action_log.log import ActionLog
from serving.care import in_care
from serving.domain import CustomerScore
from serving.forecasts import Refreshing
from serving.outages import OPEN
from serving.settings import AgentAssist, Care, ServingSettings, TimeWindow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Route = Literal["senior_agent", "dedicated_agent", "standard"]
CellState = Literal["normal", "degraded", "outage", "unknown"]


class Ticket(NamedTuple):  # a tuple: an index of millions builds fast and stays small
    ticket_id: str
    ticket_type: str
    channel: str
    opened_at: datetime
    closed_at: datetime | None  # None: still open
    first_contact_resolved: bool

    def as_of(self, now: datetime) -> Ticket:
        """The ticket as it stood at `now`: one closed later was still open then."""
        if self.closed_at is not None and self.closed_at > now:
            return self._replace(closed_at=None)
        return self


@dataclass(frozen=True)
class CustomerTickets:
    """What the index keeps of a customer's tickets: the latest, newest first, and the
    opening times of the latest complaints not resolved at first contact (kept apart, so
    that other tickets do not push them out of the window the routing rule counts)."""

    recent: tuple[Ticket, ...]
    unresolved_complaints: tuple[datetime, ...]


@dataclass(frozen=True)
class SiteDay:
    day: datetime
    drop_rate: float
    load: float


@dataclass(frozen=True)
class SiteOutage:
    event_id: str
    severity: str
    start: datetime
    expected_end: datetime | None


@dataclass(frozen=True)
class CellStatus:
    """A site's latest day against its recent normal (the median drop rate of the days
    before it), and the outage open on it, if any."""

    cell_site_id: str
    state: CellState
    day: datetime | None = None
    drop_rate: float | None = None
    normal_drop_rate: float | None = None
    load: float | None = None
    outage: SiteOutage | None = None


@dataclass(frozen=True)
class Routing:
    route: Route
    script_id: str | None
    reason: str


@dataclass(frozen=True)
class Assistance:
    routing: Routing
    home_cell: CellStatus | None
    tickets: tuple[Ticket, ...]  # newest first, as they stood at the contact


# --- the rules ----------------------------------------------------------------------------


def unresolved_complaints(tickets: CustomerTickets, now: datetime, days: int) -> int:
    """Complaints opened in the `days` before `now` and not resolved at first contact."""
    since = now - timedelta(days=days)
    return sum(since < opened <= now for opened in tickets.unresolved_complaints)


def route(
    sentiment: float | None, complaints: int, care_reason: str | None, rules: AgentAssist
) -> Routing:
    """Who takes the contact: a senior agent with a de-escalation script for a caller angry
    now or for repeated unresolved complaints; a dedicated agent for a customer in care;
    anyone else. The reason names every rule that applied."""
    angry = sentiment is not None and sentiment < rules.negative_sentiment
    repeated = complaints >= rules.unresolved_complaints
    reasons = []
    if angry:
        reasons.append(f"live sentiment {sentiment:+.2f} is below {rules.negative_sentiment:+.2f}")
    if repeated:
        reasons.append(
            f"{complaints} complaints not resolved at first contact in the last "
            f"{rules.complaint_days} days"
        )
    if care_reason is not None:
        reasons.append(care_reason)
    reason = "; ".join(reasons) or "no anger, repeated complaints or care needs"
    if angry or repeated:
        script = rules.sentiment_script if angry else rules.complaints_script
        return Routing("senior_agent", script, reason)
    if care_reason is not None:
        return Routing("dedicated_agent", None, reason)
    return Routing("standard", None, reason)


def care_reason(score: CustomerScore, care: Care) -> str | None:
    """Why the customer is in care (older, large print), or None."""
    contact = score.contact
    if not in_care(contact, care):
        return None
    if contact.age_band in care.age_bands:
        return f"an older customer (age band {contact.age_band})"
    return "asked for large print"


def cell_status(
    site: str,
    days: Sequence[SiteDay],
    outage: SiteOutage | None,
    now: datetime,
    window_days: int,
    degraded_ratio: float,
) -> CellStatus:
    """The site's status at `now` from its days (oldest first) within `window_days`: an
    open outage first; else degraded when the latest drop rate reaches `degraded_ratio`
    times the recent normal; unknown without a day in the window (stale data is no status)."""
    since = now - timedelta(days=window_days)
    known = [d for d in days if since < d.day <= now]
    if not known:
        return CellStatus(site, "outage" if outage else "unknown", outage=outage)
    latest = known[-1]
    normal = statistics.median(d.drop_rate for d in known[:-1]) if len(known) > 1 else None
    state: CellState = "normal"
    if outage is not None:
        state = "outage"
    elif normal is not None and latest.drop_rate >= degraded_ratio * normal:
        state = "degraded"
    return CellStatus(site, state, latest.day, latest.drop_rate, normal, latest.load, outage)


def open_outage_of(payload: Mapping[str, Any], now: datetime, max_days: int) -> SiteOutage | None:
    """The outage an event describes, if it is open at `now`: started, and its expected
    end not passed (without one, open for at most `max_days`, the longest the API takes)."""
    start = datetime.fromisoformat(payload["start"])
    end = payload.get("expected_end")
    expected_end = datetime.fromisoformat(end) if end else None
    until = expected_end or start + timedelta(days=max_days)
    if not start <= now < until:
        return None
    return SiteOutage(str(payload["event_id"]), str(payload["severity"]), start, expected_end)


# an event's payload, when it was received, and its lifecycle state (`serving.outages`)
OutageRow = tuple[Mapping[str, Any], datetime | None, str]


def outage_events_since(log: ActionLog, since: datetime) -> list[OutageRow]:
    """The outage events the action log received from `since` on."""
    with log.engine.connect() as connection:
        rows = connection.execute(
            select(
                outage_events.c.payload, outage_events.c.received_at, outage_events.c.state
            ).where(outage_events.c.received_at >= to_db(since))
        ).all()
    return [(payload, from_db(received), state) for payload, received, state in rows]


def outage_window(now: datetime, window: TimeWindow) -> datetime:
    """Events received before this cannot be open at `now`: one announced
    `outage_lead_days` ahead lasts at most `outage_max_days`."""
    return now - timedelta(days=window.outage_lead_days + window.outage_max_days)


def open_outages(
    events: Iterable[OutageRow], sites: Iterable[str], now: datetime, max_days: int
) -> dict[str, SiteOutage]:
    """The outage open on each of `sites` at `now` (the most severe, then the latest to
    start, where several are); an event received after `now` was not known then, and one
    restored or cancelled is over whatever its expected end said."""
    wanted = set(sites)
    found: dict[str, SiteOutage] = {}
    for payload, received, state in events:
        if (received is not None and received > now) or state not in OPEN:
            continue
        outage = open_outage_of(payload, now, max_days)
        if outage is None:
            continue
        for site in wanted.intersection(payload["sites"]):
            kept = found.get(site)
            if kept is None or _rank(outage) > _rank(kept):
                found[site] = outage
    return found


SEVERITY_RANK = {"minor": 0, "major": 1, "critical": 2}


def _rank(outage: SiteOutage) -> tuple[int, datetime]:
    return SEVERITY_RANK.get(outage.severity, -1), outage.start


# --- the index ----------------------------------------------------------------------------


def _instants(column: pd.Series) -> list[datetime | None]:
    """A UTC time column as datetimes (None where missing), converted in one pass."""
    values = pd.to_datetime(column, utc=True)
    # microseconds since the epoch: far cheaper than a Timestamp per value
    micros = values.dt.floor("us").to_numpy(dtype="datetime64[us]").astype("int64")
    missing = values.isna().to_numpy()
    return [
        None if gone else EPOCH + timedelta(microseconds=int(us))
        for us, gone in zip(micros, missing, strict=True)
    ]


def read_tickets(
    path: Path, keep: int, complaint_types: Sequence[str], keep_complaints: int
) -> dict[str, CustomerTickets]:
    """Per customer the `keep` newest tickets and the opening times of the
    `keep_complaints` newest complaints not resolved at first contact (tickets without an
    opening time are left out)."""
    columns = [
        "ticket_id",
        "customer_id",
        "opened_at",
        "closed_at",
        "ticket_type",
        "channel",
        "first_contact_resolved",
    ]
    table = pd.read_parquet(path, columns=columns).dropna(subset=["customer_id", "opened_at"])
    table = table.sort_values(["customer_id", "opened_at"], ascending=[True, False], kind="stable")
    recent = table[table.groupby("customer_id").cumcount() < keep]
    unresolved = ~recent["first_contact_resolved"].fillna(False).astype(bool)
    complaints = table[
        table["ticket_type"].isin(complaint_types)
        & ~table["first_contact_resolved"].fillna(False).astype(bool)
    ]
    complaints = complaints[complaints.groupby("customer_id").cumcount() < keep_complaints]
    tickets: dict[str, list[Ticket]] = {}
    rows = zip(
        recent["customer_id"].astype(str),
        recent["ticket_id"].astype(str),
        recent["ticket_type"].astype(str),
        recent["channel"].astype(str),
        _instants(recent["opened_at"]),
        _instants(recent["closed_at"]),
        ~unresolved,
        strict=True,
    )
    for customer, ticket_id, kind, channel, opened, closed, resolved in rows:
        assert opened is not None  # dropped above
        tickets.setdefault(customer, []).append(
            Ticket(ticket_id, kind, channel, opened, closed, bool(resolved))
        )
    opened_at: dict[str, list[datetime]] = {}
    times = _instants(complaints["opened_at"])
    for customer, when in zip(complaints["customer_id"].astype(str), times, strict=True):
        if when is not None:
            opened_at.setdefault(customer, []).append(when)
    return {
        customer: CustomerTickets(tuple(found), tuple(opened_at.get(customer, ())))
        for customer, found in tickets.items()
    }


def read_cell_days(path: Path, days: int) -> dict[str, tuple[SiteDay, ...]]:
    """Per site its days of quality (oldest first) within `days` of the table's latest."""
    table = pd.read_parquet(path, columns=["cell_site_id", "day", "drop_rate", "load"])
    table["day"] = pd.to_datetime(table["day"], utc=True)
    table = table[table["day"] > table["day"].max() - pd.Timedelta(days=days)]
    table = table.sort_values(["cell_site_id", "day"], kind="stable")
    found: dict[str, list[SiteDay]] = {}
    for row in table.itertuples(index=False):
        found.setdefault(str(row.cell_site_id), []).append(
            SiteDay(row.day.to_pydatetime(), float(row.drop_rate), float(row.load))
        )
    return {site: tuple(rows) for site, rows in found.items()}


class AssistIndex:
    """Tickets per customer and cell quality per site, in memory, bounded (the last
    `recent_tickets` per customer, the last `cell_days` per site), re-read when a file
    changes; a missing file gives nothing (no tickets, an unknown cell status)."""

    def __init__(self, rules: AgentAssist) -> None:
        self.rules = rules
        self.tickets: Refreshing[dict[str, CustomerTickets]] = Refreshing(
            rules.tickets_file,
            lambda path: read_tickets(
                path, rules.recent_tickets, rules.complaint_types, rules.unresolved_complaints
            ),
            {},
            rules.refresh_s,
        )
        self.cells: Refreshing[dict[str, tuple[SiteDay, ...]]] = Refreshing(
            rules.cell_quality_file,
            lambda path: read_cell_days(path, rules.cell_days),
            {},
            rules.refresh_s,
        )
        self._events: tuple[float, datetime, list[OutageRow]] | None = None

    def outage_events(self, log: ActionLog, since: datetime) -> list[OutageRow]:
        """The action log's outage events from `since` on, read at most every
        `outage_refresh_s` (a read covering `since` is reused)."""
        cached = self._events
        clock = time.monotonic()
        fresh = cached is not None and clock - cached[0] < self.rules.outage_refresh_s
        if cached is not None and fresh and cached[1] <= since:
            return cached[2]
        events = outage_events_since(log, since)
        self._events = (clock, since, events)
        return events

    def load(self) -> AssistIndex:
        """Read the tables now (at start-up), not in the first contact's request."""
        self.tickets.get()
        self.cells.get()
        return self

    def wants(self, channel: str | None) -> bool:
        """Whether a contact on `channel` has an agent to help."""
        return channel is not None and channel in self.rules.channels

    def assist(
        self,
        scores: Sequence[CustomerScore],
        sentiment: float | None,
        now: datetime,
        log: ActionLog | None,
        settings: ServingSettings,
    ) -> dict[str, Assistance]:
        """Routing, home cell status and recent tickets per scored customer."""
        rules, tickets, cells = self.rules, self.tickets.get(), self.cells.get()
        sites = {s.contact.cell_site_id for s in scores if s.contact.cell_site_id}
        window = settings.time_window
        events = self.outage_events(log, outage_window(now, window)) if log and sites else []
        outages = open_outages(events, sites, now, window.outage_max_days)
        found = {}
        for score in scores:
            held = tickets.get(score.customer_id, CustomerTickets((), ()))
            complaints = unresolved_complaints(held, now, rules.complaint_days)
            routing = route(sentiment, complaints, care_reason(score, settings.contact.care), rules)
            site = score.contact.cell_site_id
            home = None
            if site:
                home = cell_status(
                    site,
                    cells.get(site, ()),
                    outages.get(site),
                    now,
                    rules.cell_days,
                    rules.degraded_ratio,
                )
            shown = tuple(t.as_of(now) for t in held.recent if t.opened_at <= now)
            found[score.customer_id] = Assistance(routing, home, shown)
        return found
