"""Messages waiting for delivery: enqueued with their action, claimed by one worker at a
time, settled once.

An action to deliver gets its outbox row in the transaction that records it. A worker
claims a due message with a token (its next attempt pushed a lease into the future, so
others skip it) and only the holder of the claim may settle it: delivered, retried
later, or given up. A settled message is never reopened (at least once, never twice
by intent; the action id lets the receiver drop a repeat after a crash).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from serving.action_log.database import actions, outbox, to_db
from serving.action_log.records import record_of
from serving.domain import ActionRecord, ActionStatus

TO_DELIVER = frozenset({ActionStatus.QUEUED, ActionStatus.DEFERRED})


@dataclass(frozen=True)
class DueMessage:
    action: ActionRecord
    attempts: int  # failed attempts so far


def enqueue(connection: Any, action_id: str, at: datetime) -> None:
    """Put the action's message in the outbox, due at `at` (inside the caller's transaction)."""
    connection.execute(
        outbox.insert().values(action_id=action_id, attempts=0, next_attempt_at=to_db(at))
    )


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due(self, now: datetime, limit: int = 100) -> list[DueMessage]:
        """Messages whose time has come, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions, outbox.c.attempts)
                .join(outbox, outbox.c.action_id == actions.c.id)
                .where(outbox.c.delivered_at.is_(None), outbox.c.next_attempt_at <= to_db(now))
                .order_by(outbox.c.next_attempt_at)
                .limit(limit)
            ).all()
        return [DueMessage(record_of(row._mapping), int(row.attempts)) for row in rows]

    def claim(self, action_id: str, now: datetime, lease: timedelta) -> str | None:
        """Take a due message for one worker until `now + lease`; its claim token, or None
        when another worker took it first."""
        token = str(uuid.uuid4())
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(outbox)
                .where(
                    outbox.c.action_id == action_id,
                    outbox.c.delivered_at.is_(None),
                    outbox.c.next_attempt_at <= to_db(now),
                )
                .values(next_attempt_at=to_db(now + lease), claim=token)
            ).rowcount
        return token if taken == 1 else None

    def mark_delivered(self, action_id: str, claim: str, now: datetime) -> bool:
        """Settle a claimed message as delivered; False if the claim was lost meanwhile."""
        now = to_db(now)
        with self.engine.begin() as connection:
            settled = connection.execute(
                update(outbox)
                .where(
                    outbox.c.action_id == action_id,
                    outbox.c.claim == claim,
                    outbox.c.delivered_at.is_(None),
                )
                .values(delivered_at=now)
            ).rowcount
            connection.execute(
                update(actions)
                .where(actions.c.id == action_id, actions.c.status.in_(TO_DELIVER))
                .values(status=ActionStatus.DELIVERED, updated_at=now)
            )  # the channel took it, whoever settles: status follows what happened
        return bool(settled == 1)

    def mark_failed(
        self, action_id: str, claim: str, error: str, retry_at: datetime | None, now: datetime
    ) -> bool:
        """Count a failed attempt of a claimed message; with no `retry_at` give it up.

        Only the claim's holder may do this, and never to a delivered message.
        """
        now = to_db(now)
        with self.engine.begin() as connection:
            mine = (
                outbox.c.action_id == action_id,
                outbox.c.claim == claim,
                outbox.c.delivered_at.is_(None),
            )
            values: dict[str, Any] = {"attempts": outbox.c.attempts + 1, "last_error": error[:1000]}
            if retry_at is None:
                values["delivered_at"] = now  # settled: given up
            else:
                values["next_attempt_at"] = to_db(retry_at)
            settled = connection.execute(update(outbox).where(*mine).values(**values)).rowcount
            if settled == 1 and retry_at is None:
                connection.execute(
                    update(actions)
                    .where(actions.c.id == action_id, actions.c.status.in_(TO_DELIVER))
                    .values(status=ActionStatus.FAILED, updated_at=now)
                )
        return bool(settled == 1)
