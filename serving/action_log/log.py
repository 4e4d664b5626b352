"""Actions recorded once per idempotency key, their outcomes, and outage events.

One row per (customer, action type, dedupe key) (`serving.action_log.keys`): a repeated
call finds the existing action instead of queueing a second one. An action to deliver
gets its outbox row in the same transaction; a callback books its slot of the day's
capacity there too, or waits for one. Outcomes move an action along `TRANSITIONS` only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update

from serving.action_log import capacity, retention
from serving.action_log.database import (
    actions,
    from_db,
    in_transaction,
    outage_events,
    outbox,
    outcomes,
    to_db,
    upsert_for,
)
from serving.action_log.follow_up_store import FollowUpStore
from serving.action_log.outage_store import OutageStore
from serving.action_log.outbox import TO_DELIVER, enqueue
from serving.action_log.records import columns_of, record_of
from serving.domain import ActionRecord, ActionStatus, NewAction, PastAction
from serving.outages import Outage

WAITING = capacity.WAITING
FOLLOW_UP_OUTCOMES = ("satisfied", "not_satisfied", "unreachable")
OUTCOMES = ("accepted", "declined", "no_answer", "delivered", "failed", *FOLLOW_UP_OUTCOMES)
PENDING = frozenset({ActionStatus.QUEUED, ActionStatus.DEFERRED, ActionStatus.WAITING_CAPACITY})
# which outcomes may follow which status; anything else is refused (409)
TRANSITIONS: dict[str, frozenset[str]] = {
    **{status: frozenset(OUTCOMES) for status in PENDING},
    ActionStatus.DELIVERED: frozenset(
        {"accepted", "declined", "no_answer", "failed", *FOLLOW_UP_OUTCOMES}
    ),
    # a follow-up tried without an answer, or escalated past its deadline, is still closed
    # by what the call found
    ActionStatus.NO_ANSWER: frozenset(FOLLOW_UP_OUTCOMES),
    ActionStatus.ESCALATED: frozenset(FOLLOW_UP_OUTCOMES),
}
# a follow-up is closed by what the customer said (or could not be reached), an offer by
# what the customer did with it
FOLLOW_UP_ONLY = frozenset(FOLLOW_UP_OUTCOMES)
NOT_FOR_FOLLOW_UPS = frozenset({"accepted", "declined"})


class TransitionError(ValueError):
    """An outcome that cannot follow the action's current status."""


class ActionLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.upsert = upsert_for(engine)
        self.outages = OutageStore(engine)
        self.follow_ups = FollowUpStore(engine, self._record)

    @property
    def local(self) -> bool:
        """Whether the log is an embedded database (no network round trip per call)."""
        return self.engine.dialect.name == "sqlite"

    def record(self, new: Sequence[NewAction], now: datetime) -> list[tuple[ActionRecord, bool]]:
        """Insert the actions not already there (one transaction); return each stored
        action and whether this call created it.

        A new callback books a slot of its region-day's capacity (`capacity.book`); without
        a free slot it is stored as waiting, not dropped. Callbacks book by priority,
        highest first, within the call too.
        """
        now = to_db(now)
        return in_transaction(self.engine, lambda connection: self._record(connection, new, now))

    def _record(
        self, connection: Any, new: Sequence[NewAction], now: datetime
    ) -> list[tuple[ActionRecord, bool]]:
        created: set[int] = set()  # positions in `new`: a key twice in one call is made once
        for position in sorted(range(len(new)), key=lambda i: -(new[i].priority or 0.0)):
            item = new[position]  # highest priority first; the sort is stable
            action_id = str(uuid.uuid4())
            statement = (
                self.upsert(actions)
                .values(id=action_id, **columns_of(item), created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["customer_id", "action_type", "dedupe_key"])
                # RETURNING tells whether a row went in: psycopg reports no rowcount
                # (-1) for INSERT ... ON CONFLICT DO NOTHING
                .returning(actions.c.id)
            )
            if connection.execute(statement).first() is None:
                continue  # made earlier: returned below as it is
            created.add(position)
            status = item.status
            # a callback deferred by quiet hours takes its slot like one queued now
            if status in TO_DELIVER and item.capacity is not None and item.capacity_day:
                region, day, slots = item.region or "", str(item.capacity_day), item.capacity
                # those already waiting with the same or a higher priority go first
                capacity.promote(
                    connection,
                    self.upsert,
                    day,
                    capacity.fixed(slots),
                    now,
                    region=region,
                    above=item.priority or 0.0,
                )
                if not capacity.book(connection, self.upsert, region, day, slots):
                    status = WAITING
                    connection.execute(
                        update(actions).where(actions.c.id == action_id).values(status=status)
                    )
            if status in TO_DELIVER:
                enqueue(connection, action_id, item.send_after or now)
        stored = []
        for position, item in enumerate(new):
            row = connection.execute(
                select(actions).where(
                    actions.c.customer_id == item.customer_id,
                    actions.c.action_type == item.action_type,
                    actions.c.dedupe_key == item.dedupe_key,
                )
            ).one()
            stored.append((record_of(row._mapping), position in created))
        return stored

    def promote_waiting(
        self, day: str, slots: capacity.Capacity, now: datetime, expire_before: datetime
    ) -> tuple[int, int]:
        """Give the free callback slots of `day` to waiting callbacks, highest priority
        first, and expire those waiting since before `expire_before`; (promoted, expired).
        Safe to run from several processes at once."""
        now = to_db(now)

        def work(connection: Any) -> tuple[int, int]:
            expired = capacity.expire(connection, now, to_db(expire_before))
            return capacity.promote(connection, self.upsert, day, slots, now), expired

        return in_transaction(self.engine, work)

    def waiting_callbacks(self) -> list[ActionRecord]:
        """Callbacks waiting for capacity, in the order they will get it."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions)
                .where(actions.c.status == WAITING)
                .order_by(actions.c.priority.desc(), actions.c.created_at, actions.c.id)
            ).all()
        return [record_of(r._mapping) for r in rows]

    def history(
        self, customer_ids: Iterable[str], now: datetime, days: int
    ) -> dict[str, list[PastAction]]:
        """Each customer's actions of the last `days` days, for the contact policy."""
        ids = list(dict.fromkeys(customer_ids))
        found: dict[str, list[PastAction]] = {c: [] for c in ids}
        since = to_db(now - timedelta(days=days))
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                rows = connection.execute(
                    select(
                        actions.c.customer_id,
                        actions.c.action_type,
                        actions.c.channel,
                        actions.c.status,
                        actions.c.created_at,
                    ).where(
                        actions.c.customer_id.in_(ids[start : start + 500]),
                        actions.c.created_at >= since,
                    )
                )
                for row in rows:
                    created = from_db(row.created_at)
                    assert created is not None  # NOT NULL
                    found[row.customer_id].append(
                        PastAction(row.action_type, row.channel, row.status, created)
                    )
        return found

    def spent(self, action_type: str, since: datetime, until: datetime) -> float:
        """What the actions of a type created in [since, until] cost (their `cost` detail):
        everything decided to go out, whatever became of it; suppressed, expired and
        control-group (held back) actions spend nothing."""
        cost = actions.c.details["cost"].as_float()
        statement = select(func.coalesce(func.sum(cost), 0.0)).where(
            actions.c.action_type == action_type,
            actions.c.created_at >= to_db(since),
            actions.c.created_at <= to_db(until),
            actions.c.status.not_in(
                [ActionStatus.SUPPRESSED, ActionStatus.EXPIRED, ActionStatus.CONTROL]
            ),
        )
        with self.engine.connect() as connection:
            return float(connection.execute(statement).scalar_one())

    def decisions(self, since: datetime, until: datetime) -> list[ActionRecord]:
        """Marketing decisions (those with an experiment arm) made in [since, until)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions).where(
                    actions.c.created_at >= to_db(since),
                    actions.c.created_at < to_db(until),
                    actions.c.action_type.in_(["retention_offer", "callback"]),
                )
            )
            found = [record_of(row._mapping) for row in rows]
        return [record for record in found if "arm" in record.details]

    def delivered(self, since: datetime, until: datetime) -> list[tuple[ActionRecord, datetime]]:
        """Actions the channel accepted in [since, until), with the moment it did (failed
        ones, settled by giving up, are not among them)."""
        reached = [
            ActionStatus.DELIVERED,
            ActionStatus.ACCEPTED,
            ActionStatus.DECLINED,
            ActionStatus.NO_ANSWER,
        ]
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions, outbox.c.delivered_at.label("sent"))
                .join(outbox, outbox.c.action_id == actions.c.id)
                .where(
                    outbox.c.delivered_at >= to_db(since),
                    outbox.c.delivered_at < to_db(until),
                    actions.c.status.in_(reached),
                )
            )
            found = []
            for row in rows:
                sent = from_db(row.sent)
                assert sent is not None  # filtered on
                found.append((record_of(row._mapping), sent))
        return found

    def made_since(
        self, customer_ids: Iterable[str], since: datetime
    ) -> dict[str, list[ActionRecord]]:
        """Each customer's actions created at or after `since`, oldest first."""
        ids = list(dict.fromkeys(customer_ids))
        found: dict[str, list[ActionRecord]] = {c: [] for c in ids}
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                rows = connection.execute(
                    select(actions)
                    .where(
                        actions.c.customer_id.in_(ids[start : start + 500]),
                        actions.c.created_at >= to_db(since),
                    )
                    .order_by(actions.c.created_at, actions.c.id)
                )
                for row in rows:
                    found[row.customer_id].append(record_of(row._mapping))
        return found

    def customer_actions(self, customer_id: str) -> list[ActionRecord]:
        """Every action of the customer, newest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions)
                .where(actions.c.customer_id == customer_id)
                .order_by(actions.c.created_at.desc())
            ).all()
        return [record_of(r._mapping) for r in rows]

    def set_outcome(self, action_id: str, outcome: str, now: datetime) -> ActionRecord | None:
        """Record what happened to an action; None when there is no such action.

        Only outcomes that can follow the current status are taken (`TRANSITIONS`); the same
        outcome twice is a no-op. An outcome for a message still waiting in the outbox
        settles it there, so it is not sent afterwards.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        now = to_db(now)
        with self.engine.begin() as connection:
            found = connection.execute(
                select(actions.c.status, actions.c.action_type).where(actions.c.id == action_id)
            ).first()
            if found is None:
                return None
            current, action_type = found
            follow_up = action_type == "follow_up"
            if (outcome in FOLLOW_UP_ONLY and not follow_up) or (
                follow_up and outcome in NOT_FOR_FOLLOW_UPS
            ):
                raise TransitionError(f"action {action_id} is a {action_type}: not {outcome}")
            if current != outcome:
                if outcome not in TRANSITIONS.get(current, frozenset()):
                    raise TransitionError(f"action {action_id} is {current}: cannot be {outcome}")
                connection.execute(
                    update(actions)
                    .where(actions.c.id == action_id)
                    .values(status=outcome, updated_at=now)
                )
                connection.execute(
                    update(outbox)
                    .where(outbox.c.action_id == action_id, outbox.c.delivered_at.is_(None))
                    .values(delivered_at=now, last_error=f"settled by outcome {outcome}")
                )
                connection.execute(
                    outcomes.insert().values(action_id=action_id, outcome=outcome, recorded_at=now)
                )
            row = connection.execute(select(actions).where(actions.c.id == action_id)).one()
        return record_of(row._mapping)

    def pseudonymize(self, before: datetime, secret: bytes, batch: int) -> tuple[int, int]:
        """Replace the personal fields of the decisions made before `before` with a keyed
        pseudonym and their analytic fields (`retention`), `batch` actions per
        transaction; (actions, outcome rows) changed. Decisions still to be delivered keep
        their customer; those already pseudonymized are left as they are, so a second
        call changes nothing."""
        cutoff = to_db(before)
        total_actions = total_outcomes = 0
        while True:
            done, outcomes_done = in_transaction(
                self.engine,
                lambda connection: retention.pseudonymize_batch(connection, cutoff, secret, batch),
            )
            total_actions += done
            total_outcomes += outcomes_done
            if done < batch:
                return total_actions, total_outcomes

    def pseudonymize_audit(self, before: datetime, secret: bytes, batch: int) -> int:
        """The audit rows older than `before` under the customers' pseudonyms; the count."""
        cutoff = to_db(before)
        total = 0
        while True:
            done = in_transaction(
                self.engine,
                lambda connection: retention.pseudonymize_audit_batch(
                    connection, cutoff, secret, batch
                ),
            )
            total += done
            if done < batch:
                return total

    def outage(self, event_id: str) -> dict[str, Any] | None:
        """An outage event recorded earlier (its row: payload, counts, state...), or None."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(outage_events).where(outage_events.c.event_id == event_id)
            ).first()
        return None if row is None else dict(row._mapping)

    def record_outage(
        self, event_id: str, payload: dict[str, Any], counts: dict[str, int], now: datetime
    ) -> None:
        """Keep a reported outage (confirmed) with its counts; the first record of an id
        stays. `payload`: sites, start, expected_end, severity, kind, cause."""
        start = payload.get("start")
        end = payload.get("expected_end")
        outage = Outage(
            event_id=event_id,
            sites=list(payload.get("sites", [])),
            severity=str(payload.get("severity", "major")),
            kind="planned" if payload.get("kind") == "planned" else "unplanned",
            source="reported",
            state="confirmed",
            start=datetime.fromisoformat(start) if isinstance(start, str) else now,
            expected_end=datetime.fromisoformat(end) if isinstance(end, str) else None,
            detected_at=now,
            cause=payload.get("cause"),
        )
        _, created = self.outages.open(outage, "reported", now)
        if created:
            self.outages.set_counts(event_id, counts)
