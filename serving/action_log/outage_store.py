"""Outages and their steps in the action log, and the notices that went out for them.

An outage row holds its current state; each step (reported, detected, confirmed, updated,
restored, cancelled, dismissed) adds a row to `outage_updates` in the same transaction, so
the history is complete. Withdrawing a waiting notice settles its outbox message, so a
notice of an outage already over is never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select, update

from serving.action_log.database import (
    actions,
    from_db,
    in_transaction,
    outage_events,
    outage_updates,
    outbox,
    to_db,
    upsert_for,
)
from serving.action_log.records import record_of
from serving.domain import ActionRecord, ActionStatus
from serving.outages import Outage, next_state, notice_prefix

WAITING = (ActionStatus.QUEUED, ActionStatus.DEFERRED, ActionStatus.WAITING_CAPACITY)
REACHED = frozenset(
    {ActionStatus.DELIVERED, ActionStatus.ACCEPTED, ActionStatus.DECLINED, ActionStatus.NO_ANSWER}
)


@dataclass(frozen=True)
class Notice:
    """A customer's notice of an outage and when the channel took it (None: not yet)."""

    action: ActionRecord
    delivered_at: datetime | None


def outage_of(row: Any) -> Outage:
    """A stored outage (its times as UTC)."""
    payload = row["payload"] or {}
    start = from_db(datetime.fromisoformat(payload["start"]))
    detected = from_db(row["detected_at"])
    assert start is not None and detected is not None  # written with every outage
    return Outage(
        event_id=row["event_id"],
        sites=list(payload.get("sites", [])),
        severity=row["severity"] or payload.get("severity", "major"),
        kind=row["kind"],
        source=row["source"],
        state=row["state"],
        start=start,
        expected_end=from_db(row["expected_end"]),
        detected_at=detected,
        ended_at=from_db(row["ended_at"]),
        cause=payload.get("cause"),
        counts=row["counts"],
    )


class OutageStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.upsert = upsert_for(engine)

    def get(self, event_id: str) -> Outage | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(outage_events).where(outage_events.c.event_id == event_id)
            ).first()
        return None if row is None else outage_of(row._mapping)

    def listed(self, states: Sequence[str] | None = None, limit: int = 1000) -> list[Outage]:
        """Outages, newest detected first; only those in `states` when given."""
        statement = select(outage_events).order_by(outage_events.c.detected_at.desc())
        if states is not None:
            statement = statement.where(outage_events.c.state.in_(list(states)))
        with self.engine.connect() as connection:
            rows = connection.execute(statement.limit(limit)).all()
        return [outage_of(row._mapping) for row in rows]

    def open(self, outage: Outage, step: str, now: datetime) -> tuple[Outage, bool]:
        """Record a new outage and its first step; (the stored outage, whether this call made
        it). An id known already is returned as it is: a repeated report changes nothing."""
        at = to_db(now)

        def work(connection: Any) -> bool:
            statement = (
                self.upsert(outage_events)
                .values(
                    event_id=outage.event_id,
                    payload=outage.details(),
                    counts=None,
                    received_at=at,
                    state=outage.state,
                    kind=outage.kind,
                    source=outage.source,
                    severity=outage.severity,
                    detected_at=to_db(outage.detected_at),
                    expected_end=to_db(outage.expected_end) if outage.expected_end else None,
                    ended_at=None,
                    updated_at=at,
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
                .returning(outage_events.c.event_id)
            )
            if connection.execute(statement).first() is None:
                return False
            connection.execute(
                outage_updates.insert().values(
                    event_id=outage.event_id, step=step, state=outage.state, payload=None, at=at
                )
            )
            return True

        created = in_transaction(self.engine, work)
        stored = self.get(outage.event_id)
        assert stored is not None  # just written, or there before
        return stored, created

    def move(
        self,
        event_id: str,
        step: str,
        now: datetime,
        changes: dict[str, Any] | None = None,
        note: dict[str, Any] | None = None,
    ) -> Outage:
        """Take a step of the lifecycle (`serving.outages.TRANSITIONS`) in one transaction,
        with its changes (expected_end, ended_at, severity) and a note in its history row.
        KeyError: no such outage; OutageStateError: the state does not allow the step."""
        at = to_db(now)
        changes = dict(changes or {})

        def work(connection: Any) -> None:
            row = connection.execute(
                select(outage_events).where(outage_events.c.event_id == event_id)
            ).first()
            if row is None:
                raise KeyError(event_id)
            current = outage_of(row._mapping)
            state = next_state(current, step)
            values: dict[str, Any] = {"state": state, "updated_at": at}
            payload = dict(row._mapping["payload"])
            for name in ("expected_end", "ended_at"):
                if name in changes:
                    moment = changes[name]
                    values[name] = to_db(moment) if moment is not None else None
                    if name == "expected_end":
                        payload["expected_end"] = moment.isoformat() if moment else None
            if "severity" in changes:
                values["severity"] = payload["severity"] = changes["severity"]
            values["payload"] = payload
            connection.execute(
                update(outage_events).where(outage_events.c.event_id == event_id).values(values)
            )
            connection.execute(
                outage_updates.insert().values(
                    event_id=event_id, step=step, state=state, payload=note, at=at
                )
            )

        in_transaction(self.engine, work)
        moved = self.get(event_id)
        assert moved is not None
        return moved

    def set_counts(self, event_id: str, counts: dict[str, int]) -> None:
        """Keep what the outage's notices came to (the answer to a repeated report)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(outage_events)
                .where(outage_events.c.event_id == event_id)
                .values(counts=counts)
            )

    def steps(self, event_id: str) -> list[dict[str, Any]]:
        """The outage's history, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(outage_updates)
                .where(outage_updates.c.event_id == event_id)
                .order_by(outage_updates.c.id)
            ).all()
        return [
            {"step": r.step, "state": r.state, "at": from_db(r.at), "note": r.payload} for r in rows
        ]

    def notices(self, key: str, every_step: bool = False) -> list[Notice]:
        """The outage notices made under one idempotency key (one step of one outage), or
        with `every_step` under the start notice's key and every key that extends it (all
        the outage's notices), with when each went out."""
        keyed = actions.c.dedupe_key == key
        if every_step:
            keyed = or_(keyed, actions.c.dedupe_key.startswith(f"{key}:", autoescape=True))
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions, outbox.c.delivered_at.label("sent"))
                .outerjoin(outbox, outbox.c.action_id == actions.c.id)
                .where(actions.c.action_type == "outage_notice", keyed)
                .order_by(actions.c.customer_id, actions.c.created_at)
            ).all()
        found = []
        for row in rows:
            record = record_of(row._mapping)
            # a withdrawn or failed notice's outbox row is settled too, but reached no one
            sent = from_db(row.sent) if record.status in REACHED else None
            found.append(Notice(record, sent))
        return found

    def patch_waiting(
        self, action_ids: Sequence[str], changes: dict[str, Any], now: datetime
    ) -> int:
        """Update the details of those actions still waiting to go out (a notice held by the
        quiet hours carries the latest repair time); how many."""
        at = to_db(now)

        def work(connection: Any) -> int:
            rows = connection.execute(
                select(actions.c.id, actions.c.details).where(
                    actions.c.id.in_(list(action_ids)), actions.c.status.in_(list(WAITING))
                )
            ).all()
            for row in rows:
                connection.execute(
                    update(actions)
                    .where(actions.c.id == row.id)
                    .values(details={**(row.details or {}), **changes}, updated_at=at)
                )
            return len(rows)

        return in_transaction(self.engine, work) if action_ids else 0

    def withdraw(self, action_ids: Sequence[str], now: datetime, reason: str) -> int:
        """Cancel the actions still waiting to go out, and settle their outbox messages so
        that no worker sends them; how many were withdrawn."""
        at = to_db(now)

        def work(connection: Any) -> int:
            count = 0
            for start in range(0, len(action_ids), 500):
                chunk = list(action_ids[start : start + 500])
                waiting = list(
                    connection.scalars(
                        select(actions.c.id).where(
                            actions.c.id.in_(chunk), actions.c.status.in_(list(WAITING))
                        )
                    )
                )
                if not waiting:
                    continue
                connection.execute(
                    update(actions)
                    .where(actions.c.id.in_(waiting))
                    .values(status=ActionStatus.CANCELLED, updated_at=at)
                )
                connection.execute(
                    update(outbox)
                    .where(outbox.c.action_id.in_(waiting), outbox.c.delivered_at.is_(None))
                    .values(delivered_at=at, claim=None, last_error=f"withdrawn: {reason}")
                )
                count += len(waiting)
            return count

        return in_transaction(self.engine, work)

    def start_notices(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """Each customer's start notice of the outages detected in [since, until): the
        outage, the customer's region, when the outage was detected or reported, and when
        the channel took the notice (None: not yet, or never). What time to notify is
        measured on (`serving.kpis.time_to_notify`)."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(outage_events.c.event_id, outage_events.c.detected_at).where(
                    outage_events.c.detected_at >= to_db(since),
                    outage_events.c.detected_at < to_db(until),
                )
            ).all()
        rows = []
        for event_id, detected in found:
            for notice in self.notices(notice_prefix(event_id)):
                rows.append(
                    {
                        "event_id": event_id,
                        "region": notice.action.region or "unknown",
                        "started_at": from_db(detected),
                        "first_notice_at": notice.delivered_at,
                    }
                )
        return rows
