"""Follow-up tasks in the action log: the overdue ones, and their escalation.

A follow-up is an action (`follow_up`) due at a deadline. One still open when the
deadline passes is escalated: its status becomes `escalated` and, in the same
transaction, an `escalation` action is queued for the CRM sink, once per follow-up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from serving.action_log.database import actions, in_transaction, to_db
from serving.action_log.records import record_of
from serving.domain import ActionRecord, ActionStatus, NewAction

# a follow-up nobody has closed yet: still to go out, out, or tried without an answer
OPEN = (
    ActionStatus.QUEUED,
    ActionStatus.DEFERRED,
    ActionStatus.DELIVERED,
    ActionStatus.NO_ANSWER,
)
FOLLOW_UP = "follow_up"


class FollowUpStore:
    def __init__(
        self,
        engine: Engine,
        record: Callable[[Any, Sequence[NewAction], datetime], list[tuple[ActionRecord, bool]]],
    ) -> None:
        self.engine = engine
        self._record = record  # the action log's insert, inside a caller's transaction

    def overdue(self, now: datetime, limit: int = 10_000) -> list[ActionRecord]:
        """Open follow-ups past their deadline, the most overdue first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions)
                .where(
                    actions.c.action_type == FOLLOW_UP,
                    actions.c.status.in_(list(OPEN)),
                    actions.c.due_at < to_db(now),
                )
                .order_by(actions.c.due_at, actions.c.id)
                .limit(limit)
            ).all()
        return [record_of(row._mapping) for row in rows]

    def listed(self, statuses: Sequence[str], limit: int = 1000) -> list[ActionRecord]:
        """Follow-ups in these statuses, soonest due first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions)
                .where(actions.c.action_type == FOLLOW_UP, actions.c.status.in_(list(statuses)))
                .order_by(actions.c.due_at, actions.c.id)
                .limit(limit)
            ).all()
        return [record_of(row._mapping) for row in rows]

    def counts(self, now: datetime) -> dict[str, int]:
        """Follow-ups open within their deadline, overdue (not escalated yet) and escalated."""
        due = actions.c.due_at < to_db(now)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions.c.status, due.label("late"), func.count())
                .where(actions.c.action_type == FOLLOW_UP)
                .group_by(actions.c.status, due)
            ).all()
        found = {"open": 0, "overdue": 0, "escalated": 0}
        for status, late, count in rows:
            if status == ActionStatus.ESCALATED:
                found["escalated"] += count
            elif status in OPEN:
                found["overdue" if late else "open"] += count
        return found

    def escalate(
        self, overdue: Sequence[ActionRecord], escalations: Sequence[NewAction], now: datetime
    ) -> list[ActionRecord]:
        """Mark the follow-ups escalated (those still open) and queue their escalation
        messages, in one transaction; the follow-ups escalated by this call."""
        at = to_db(now)
        by_id = {e.details["follow_up_id"]: e for e in escalations}

        def work(connection: Any) -> list[str]:
            moved = []
            for record in overdue:
                changed = connection.execute(
                    update(actions)
                    .where(actions.c.id == record.id, actions.c.status.in_(list(OPEN)))
                    .values(status=ActionStatus.ESCALATED, updated_at=at)
                ).rowcount
                if changed:
                    moved.append(record.id)
            self._record(connection, [by_id[i] for i in moved if i in by_id], at)
            return moved

        moved = set(in_transaction(self.engine, work))
        return [record for record in overdue if record.id in moved]
