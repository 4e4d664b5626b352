"""Complaint follow-up: the call within 72 hours of a closed complaint or fault ticket that
confirms the customer is satisfied, and what follows when nobody made it in time.

A follow-up is a service duty, not marketing: no marketing consent or weekly cap applies,
but quiet hours and the do-not-call list do (a customer who may not be phoned gets an SMS
survey instead). A closed ticket opens one follow-up, whatever the retries
(`ticket:<id>` is its idempotency key). Past its deadline an open follow-up is escalated
(listed, counted on /metrics, pushed to the CRM sink) instead of expiring silently; a
"not satisfied" opens a second-level task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from serving.contact import check
from serving.domain import (
    ActionRecord,
    ActionStatus,
    Channel,
    CustomerScore,
    NewAction,
    Proposal,
)

if TYPE_CHECKING:
    from serving.decisions import DecisionService

CHANNELS: tuple[Channel, ...] = ("phone", "sms")  # a call, else an SMS survey


@dataclass(frozen=True)
class ClosedTicket:
    ticket_id: str
    customer_id: str
    ticket_type: str
    closed_at: datetime
    level: int = 1  # 2: the task a "not satisfied" opens


@dataclass(frozen=True)
class Opened:
    """What a closed ticket came to: the follow-up (None: the type is not followed up, or
    the customer is unknown), whether this call made it, and why not when there is none."""

    ticket: ClosedTicket
    action: ActionRecord | None
    created: bool
    note: str | None = None


class FollowUpService:
    def __init__(self, decisions: DecisionService) -> None:
        self.decisions = decisions
        self.last_counts: dict[str, int] = {}  # the latest escalation run's, for /metrics

    def key(self, ticket: ClosedTicket) -> str:
        return f"ticket:{ticket.ticket_id}" + (f":{ticket.level}" if ticket.level > 1 else "")

    def open(self, tickets: list[ClosedTicket], now: datetime) -> list[Opened]:
        """A follow-up for each closed ticket of a followed-up type, due its configured
        time after the ticket closed (the second level: after now)."""
        rule = self.decisions.settings.actions.follow_ups
        wanted = [t for t in tickets if t.ticket_type in rule.ticket_types]
        skipped = [
            Opened(t, None, False, f"tickets of type {t.ticket_type} are not followed up")
            for t in tickets
            if t.ticket_type not in rule.ticket_types
        ]
        ids = list(dict.fromkeys(t.customer_id for t in wanted))
        scores: dict[str, CustomerScore] = {}
        histories: dict[str, Any] = {}
        for found, history in self.decisions._scored(ids, now):
            scores.update({s.customer_id: s for s in found if isinstance(s, CustomerScore)})
            histories.update(history)
        new, made_for = [], []
        for ticket in wanted:
            item = scores.get(ticket.customer_id)
            if item is None:
                skipped.append(Opened(ticket, None, False, "unknown or inactive customer"))
                continue
            proposal = self._proposal(ticket, now)
            verdict = check(
                proposal,
                item.contact,
                histories.get(ticket.customer_id, []),
                self.decisions.settings.contact,
                now,
            )
            new.append(
                self.decisions.new_action(
                    item, proposal, verdict, now, "follow_up", self.key(ticket)
                )
            )
            made_for.append(ticket)
        recorded = self.decisions._log().record(new, now) if new else []
        return [
            *(
                Opened(t, record, created)
                for t, (record, created) in zip(made_for, recorded, strict=True)
            ),
            *skipped,
        ]

    def _proposal(self, ticket: ClosedTicket, now: datetime) -> Proposal:
        rule = self.decisions.settings.actions.follow_ups
        if ticket.level > 1:
            due = now + timedelta(hours=rule.second_level_hours)
            why = (
                "second-level follow-up: the customer was not satisfied after "
                f"{ticket.ticket_type.replace('_', ' ')} {ticket.ticket_id}"
            )
        else:
            due = ticket.closed_at + timedelta(hours=rule.due_hours)
            why = (
                f"{ticket.ticket_type.replace('_', ' ')} {ticket.ticket_id} closed "
                f"{ticket.closed_at:%d %b %H:%M} UTC: confirm the customer is satisfied"
            )
        return Proposal(
            "follow_up",
            0.0,
            CHANNELS,
            why,
            {
                "ticket_id": ticket.ticket_id,
                "ticket_type": ticket.ticket_type,
                "closed_at": ticket.closed_at.isoformat(),
                "level": ticket.level,
            },
            priority=float(ticket.level),
            due_at=due,
        )

    def record_outcome(
        self, action_id: str, outcome: str, now: datetime
    ) -> tuple[ActionRecord | None, Opened | None]:
        """What the follow-up found; a "not satisfied" opens the second-level task (once).
        (the follow-up, the second-level task if one was opened)"""
        log = self.decisions._log()
        record = log.set_outcome(action_id, outcome, now)
        if record is None or record.action_type != "follow_up":
            return record, None
        if record.status != ActionStatus.NOT_SATISFIED:
            return record, None
        level = int(record.details.get("level", 1))
        ticket = ClosedTicket(
            str(record.details["ticket_id"]),
            record.customer_id,
            str(record.details.get("ticket_type", "complaint")),
            datetime.fromisoformat(str(record.details["closed_at"])),
            level + 1,
        )
        opened = self.open([ticket], now)
        return record, opened[0]

    def escalate_overdue(self, now: datetime) -> list[ActionRecord]:
        """Escalate the open follow-ups past their deadline: each once, its escalation
        queued for the CRM sink; the counts for /metrics are refreshed."""
        log = self.decisions._log()
        overdue = log.follow_ups.overdue(now)
        escalations = [self._escalation(record, now) for record in overdue]
        escalated = log.follow_ups.escalate(overdue, escalations, now) if overdue else []
        self.last_counts = log.follow_ups.counts(now)
        return escalated

    def _escalation(self, record: ActionRecord, now: datetime) -> NewAction:
        assert record.due_at is not None  # a follow-up always has its deadline
        late = (now - record.due_at).total_seconds() / 3600
        return NewAction(
            customer_id=record.customer_id,
            action_type="escalation",
            dedupe_key=f"escalation:{record.id}",
            status=ActionStatus.QUEUED,
            source="follow_up",
            channel=None,  # to the CRM's supervisor queue, not to the customer
            priority=record.priority,
            region=record.region,
            due_at=now,
            details={
                "reason": f"follow-up of {record.details.get('ticket_id')} is {late:.0f} h "
                "past its deadline",
                "follow_up_id": record.id,
                "ticket_id": record.details.get("ticket_id"),
                "due_at": record.due_at.isoformat(),
                "hours_late": round(late, 1),
            },
        )


def closed_tickets(
    tickets: pd.DataFrame, since: datetime, until: datetime, types: list[str]
) -> list[ClosedTicket]:
    """The tickets of the followed-up types closed in [since, until), from the service
    tickets table (ticket_id, customer_id, ticket_type, closed_at)."""
    missing = {"ticket_id", "customer_id", "ticket_type", "closed_at"} - set(tickets.columns)
    if missing:
        raise ValueError(f"service tickets: missing columns {sorted(missing)}")
    closed = pd.to_datetime(tickets["closed_at"], utc=True)
    chosen = tickets[
        (closed >= pd.Timestamp(since))
        & (closed < pd.Timestamp(until))
        & tickets["ticket_type"].isin(types)
    ]
    return [
        ClosedTicket(str(r.ticket_id), str(r.customer_id), str(r.ticket_type), c.to_pydatetime())
        for r, c in zip(chosen.itertuples(), closed[chosen.index], strict=True)
    ]
