"""The action log and outbox: every decision, suppression and outcome, durably.

SQLite (WAL) by default, any SQLAlchemy URL (PostgreSQL) by configuration. One row per
(customer, action type, dedupe key): the key is the customer's local day for marketing
actions and the event for outage notices, so a repeated call finds the existing action
instead of queueing a second one. An action that is to be delivered gets an outbox row in
the same transaction; the delivery worker marks it delivered only after the channel has
accepted it (at-least-once).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from serving.contact import PastAction

metadata = MetaData()
actions = Table(
    "actions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("action_type", String(32), nullable=False),
    Column("dedupe_key", String(80), nullable=False),
    Column("status", String(20), nullable=False),
    Column("channel", String(16)),
    Column("expected_value", Float),
    Column("priority", Float),
    Column("region", String(64)),
    Column("due_at", DateTime(timezone=True)),
    Column("capacity_day", String(10)),  # callbacks: the day whose capacity they use
    Column("send_after", DateTime(timezone=True)),
    Column("details", JSON),
    Column("suppressions", JSON),
    Column("source", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("customer_id", "action_type", "dedupe_key", name="one_action_per_key"),
)
outbox = Table(
    "outbox",
    metadata,
    Column("action_id", String(36), ForeignKey("actions.id"), primary_key=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("claim", String(36)),  # the worker holding the message; only it may settle it
)
callback_capacity = Table(
    "callback_capacity",
    metadata,
    Column("region", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("capacity", Integer, nullable=False),
    Column("booked", Integer, nullable=False, default=0),
)
outage_events = Table(
    "outage_events",
    metadata,
    Column("event_id", String(80), primary_key=True),
    Column("payload", JSON, nullable=False),
    Column("counts", JSON),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action_id", String(36), ForeignKey("actions.id"), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

TO_DELIVER = frozenset({"queued", "deferred"})
OUTCOMES = ("accepted", "declined", "no_answer", "delivered", "failed")
# which outcomes may follow which status; anything else is refused (409)
PENDING = frozenset({"queued", "deferred", "waiting_capacity"})
WAITING = "waiting_capacity"
RETRYABLE = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization failure
T = TypeVar("T")
TRANSITIONS: dict[str, frozenset[str]] = {
    **{status: frozenset(OUTCOMES) for status in PENDING},
    "delivered": frozenset({"accepted", "declined", "no_answer", "failed"}),
}


def local_day(moment: datetime, zone: ZoneInfo) -> str:
    """`moment`'s calendar day where the customers live (YYYY-MM-DD)."""
    return moment.astimezone(zone).date().isoformat()


def dedupe_key(
    now: datetime,
    zone: ZoneInfo,
    *,
    event: str | None = None,
    campaign: str | None = None,
    suppressed: bool = False,
) -> str:
    """The idempotency key of an action: the log keeps one per customer, type and key.

    An event's action (an outage notice) is keyed by its event; a seasonal package by its
    campaign (once, ever), except that one the contact policy stopped is keyed to that
    day, so a later day of the campaign may try again; anything else by the customers'
    local day, so a repeated call that day finds the action it made.
    """
    if event is not None:
        return event
    if campaign is not None:
        return f"{campaign}:suppressed:{local_day(now, zone)}" if suppressed else campaign
    return local_day(now, zone)


class TransitionError(ValueError):
    """An outcome that cannot follow the action's current status."""


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    """Store UTC: SQLite keeps the clock time and drops the offset."""
    return None if value is None else value.astimezone(UTC)


@dataclass(frozen=True)
class NewAction:
    customer_id: str
    action_type: str
    dedupe_key: str
    status: str  # queued, deferred, waiting_capacity, suppressed
    source: str  # decide, outage, campaign
    channel: str | None = None
    expected_value: float | None = None
    priority: float | None = None
    region: str | None = None
    due_at: datetime | None = None
    send_after: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    suppressions: list[dict[str, Any]] = field(default_factory=list)
    capacity_day: str | None = None  # callbacks: book a slot of this region-day ...
    capacity: int | None = None  # ... of this many, or wait


def _columns(item: NewAction) -> dict[str, Any]:
    """The action's row values (the capacity is booked, not stored)."""
    values = {f.name: getattr(item, f.name) for f in fields(item) if f.name != "capacity"}
    values["due_at"], values["send_after"] = _as_utc(item.due_at), _as_utc(item.send_after)
    return values


def log_engine(url: str) -> Engine:
    """An engine for the action log (not connected yet); SQLite files get their folder, WAL,
    a 30 s busy timeout and foreign keys, other databases a liveness check per checkout."""
    # hide_parameters: customer ids in a failed statement must not reach the logs
    if not url.startswith("sqlite:///"):
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def open_engine(url: str) -> Engine:
    """The action log's engine, its tables created where missing and their columns checked."""
    engine = log_engine(url)
    metadata.create_all(engine)
    check_schema(engine)
    return engine


class ActionLogSchemaError(RuntimeError):
    """The action log was made by another version of this code."""


def check_schema(engine: Engine) -> None:
    """Refuse an existing action log whose tables lack columns this version writes.

    `create_all` creates missing tables but never alters existing ones, so an older log
    would fail at the first write; better to stop at start-up and say what to do.
    """
    existing = inspect(engine)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in existing.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in present]
        if missing:
            raise ActionLogSchemaError(
                f"action log {engine.url.render_as_string(hide_password=True)}: table "
                f"{table.name} lacks column(s) {', '.join(missing)} (made by an older "
                "version): migrate it, or move it aside to start a new log"
            )


class ActionLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # both dialects' inserts offer ON CONFLICT DO NOTHING; the generic one does not
        dialects: dict[str, Callable[[Table], Any]] = {
            "sqlite": sqlite.insert,
            "postgresql": postgresql.insert,
        }
        if engine.dialect.name not in dialects:
            raise ValueError(
                f"action log on {engine.dialect.name}: only SQLite and PostgreSQL are supported"
            )
        self._insert = dialects[engine.dialect.name]

    def record(self, new: Sequence[NewAction], now: datetime) -> list[tuple[dict[str, Any], bool]]:
        """Insert the actions not already there (one transaction); return each stored row
        and whether this call created it.

        A new callback books a slot of its region-day's capacity with one conditional
        UPDATE (atomic across requests and processes); without a free slot it is stored as
        `waiting_capacity`, not dropped. Callbacks book by priority, highest first, within
        the call too.
        """
        now = now.astimezone(UTC)
        return self._retrying(lambda connection: self._record(connection, new, now))

    def _record(
        self, connection: Any, new: Sequence[NewAction], now: datetime
    ) -> list[tuple[dict[str, Any], bool]]:
        created: set[int] = set()  # positions in `new`: a key twice in one call is made once
        for position in sorted(range(len(new)), key=lambda i: -(new[i].priority or 0.0)):
            item = new[position]  # highest priority first; the sort is stable
            action_id = str(uuid.uuid4())
            statement = (
                self._insert(actions)
                .values(id=action_id, **_columns(item), created_at=now, updated_at=now)
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
            booking = status in TO_DELIVER and item.capacity is not None and item.capacity_day
            if booking:
                region, day = item.region or "", str(item.capacity_day)
                slots = int(item.capacity or 0)
                # those already waiting with the same or a higher priority go first
                self._promote(
                    connection,
                    day,
                    lambda _region, _day, slots=slots: slots,  # type: ignore[misc]
                    now,
                    region=region,
                    above=item.priority or 0.0,
                )
                if not self._book(connection, region, day, slots):
                    status = WAITING
                    connection.execute(
                        update(actions).where(actions.c.id == action_id).values(status=status)
                    )
            if status in TO_DELIVER:
                connection.execute(
                    outbox.insert().values(
                        action_id=action_id,
                        attempts=0,
                        next_attempt_at=_as_utc(item.send_after) or now,
                    )
                )
        stored = []
        for position, item in enumerate(new):
            row = connection.execute(
                select(actions).where(
                    actions.c.customer_id == item.customer_id,
                    actions.c.action_type == item.action_type,
                    actions.c.dedupe_key == item.dedupe_key,
                )
            ).one()
            stored.append((self._row(row._mapping), position in created))
        return stored

    def _retrying(self, work: Callable[[Any], T], attempts: int = 4) -> T:
        """Run `work` in a transaction, again when PostgreSQL aborted it as a deadlock
        victim or a serialization failure (nothing of it was kept), `attempts` times at
        most, waiting 20 ms, 40 ms, 80 ms ... in between."""
        attempt = 1
        while True:
            try:
                with self.engine.begin() as connection:
                    return work(connection)
            except OperationalError as error:
                code = getattr(error.orig, "sqlstate", None)
                if code not in RETRYABLE or attempt >= attempts:
                    raise
                time.sleep(0.02 * 2 ** (attempt - 1))
                attempt += 1

    def promote_waiting(
        self,
        day: str,
        capacity: Callable[[str, str], int],
        now: datetime,
        expire_before: datetime,
    ) -> tuple[int, int]:
        """Give the free callback slots of `day` to waiting callbacks, highest priority
        first, and expire those waiting since before `expire_before`; (promoted, expired).

        Safe to run from several processes at once: a callback is claimed by a conditional
        UPDATE before its slot is booked.
        """
        now = now.astimezone(UTC)
        return self._retrying(
            lambda connection: self._promote_and_expire(
                connection, day, capacity, now, expire_before
            )
        )

    def _promote_and_expire(
        self,
        connection: Any,
        day: str,
        capacity: Callable[[str, str], int],
        now: datetime,
        expire_before: datetime | None,
    ) -> tuple[int, int]:
        stale = connection.execute(
            select(actions.c.id, actions.c.suppressions).where(
                actions.c.status == WAITING, actions.c.created_at < expire_before
            )
        ).all()
        expired = 0
        for row in stale:
            note = {
                "code": "capacity_expired",
                "message": "no callback slot came free in time",
                "channel": "phone",
            }
            expired += connection.execute(
                update(actions)
                .where(actions.c.id == row.id, actions.c.status == WAITING)
                .values(
                    status="expired",
                    suppressions=[*(row.suppressions or []), note],
                    updated_at=now,
                )
            ).rowcount
        promoted = self._promote(connection, day, capacity, now)
        return promoted, expired

    def waiting_callbacks(self) -> list[dict[str, Any]]:
        """Callbacks waiting for capacity, in the order they will get it."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions)
                .where(actions.c.status == WAITING)
                .order_by(actions.c.priority.desc(), actions.c.created_at, actions.c.id)
            ).all()
        return [self._row(r._mapping) for r in rows]

    def _promote(
        self,
        connection: Any,
        day: str,
        capacity: Callable[[str, str], int],
        now: datetime,
        region: str | None = None,
        above: float | None = None,
    ) -> int:
        """Book `day`'s free slots for waiting callbacks (of `region`, with a priority of
        at least `above`), highest priority first, then longest waiting; the number
        promoted."""
        query = select(
            actions.c.id, actions.c.region, actions.c.capacity_day, actions.c.send_after
        ).where(actions.c.status == WAITING)
        if region is not None:
            query = query.where(actions.c.region == region)
        if above is not None:
            query = query.where(actions.c.priority >= above)
        query = query.order_by(actions.c.priority.desc(), actions.c.created_at, actions.c.id)
        full: set[str] = set()
        promoted = 0
        for row in connection.execute(query).all():
            if row.region in full:
                continue
            claimed = connection.execute(
                update(actions)
                .where(actions.c.id == row.id, actions.c.status == WAITING)
                .values(status="queued", capacity_day=day, updated_at=now)
            ).rowcount
            if claimed != 1:
                continue  # another process promoted it
            if not self._book(connection, row.region or "", day, capacity(row.region or "", day)):
                connection.execute(
                    update(actions)
                    .where(actions.c.id == row.id)
                    .values(status=WAITING, capacity_day=row.capacity_day)
                )
                full.add(row.region)
                continue
            # not before the end of the quiet hours it was decided in, if they still run
            send_at = max(now, _utc(row.send_after) or now)
            connection.execute(
                outbox.insert().values(action_id=row.id, attempts=0, next_attempt_at=send_at)
            )
            promoted += 1
        return promoted

    def _book(self, connection: Any, region: str, day: str, capacity: int) -> bool:
        """Take one callback slot of the region-day if one is free."""
        # the day's capacity is the latest forecast's: a republished one takes effect
        insert = self._insert(callback_capacity).values(
            region=region, day=day, capacity=capacity, booked=0
        )
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=["region", "day"], set_={"capacity": insert.excluded.capacity}
            )
        )
        taken = connection.execute(
            update(callback_capacity)
            .where(
                callback_capacity.c.region == region,
                callback_capacity.c.day == day,
                callback_capacity.c.booked < callback_capacity.c.capacity,
            )
            .values(booked=callback_capacity.c.booked + 1)
        ).rowcount
        return bool(taken == 1)

    @staticmethod
    def _row(mapping: Any) -> dict[str, Any]:
        row = dict(mapping)
        for column in ("due_at", "send_after", "created_at", "updated_at"):
            row[column] = _utc(row[column])
        return row

    def history(
        self, customer_ids: Iterable[str], now: datetime, days: int
    ) -> dict[str, list[PastAction]]:
        """Each customer's actions of the last `days` days, for the contact policy."""
        ids = list(dict.fromkeys(customer_ids))
        found: dict[str, list[PastAction]] = {c: [] for c in ids}
        since = now - timedelta(days=days)
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
                    created = _utc(row.created_at)
                    assert created is not None
                    found[row.customer_id].append(
                        PastAction(row.action_type, row.channel, row.status, created)
                    )
        return found

    def customer_actions(self, customer_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions)
                .where(actions.c.customer_id == customer_id)
                .order_by(actions.c.created_at.desc())
            ).all()
        return [self._row(r._mapping) for r in rows]

    def set_outcome(self, action_id: str, outcome: str, now: datetime) -> dict[str, Any] | None:
        """Record what happened to an action; None when there is no such action.

        Only outcomes that can follow the current status are taken (`TRANSITIONS`); the same
        outcome twice is a no-op. An outcome for a message still waiting in the outbox
        settles it there, so it is not sent afterwards.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        now = now.astimezone(UTC)
        with self.engine.begin() as connection:
            current = connection.execute(
                select(actions.c.status).where(actions.c.id == action_id)
            ).scalar()
            if current is None:
                return None
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
        return self._row(row._mapping)

    def outage(self, event_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(outage_events).where(outage_events.c.event_id == event_id)
            ).first()
        return None if row is None else dict(row._mapping)

    def record_outage(
        self, event_id: str, payload: dict[str, Any], counts: dict[str, int], now: datetime
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                self._insert(outage_events)
                .values(event_id=event_id, payload=payload, counts=counts, received_at=now)
                .on_conflict_do_nothing(index_elements=["event_id"])
            )

    # --- delivery ---------------------------------------------------------------------------
    def due(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Outbox messages whose time has come, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(actions, outbox.c.attempts)
                .join(outbox, outbox.c.action_id == actions.c.id)
                .where(outbox.c.delivered_at.is_(None), outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at)
                .limit(limit)
            ).all()
        return [self._row(r._mapping) for r in rows]

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
                    outbox.c.next_attempt_at <= now.astimezone(UTC),
                )
                .values(next_attempt_at=(now + lease).astimezone(UTC), claim=token)
            ).rowcount
        return token if taken == 1 else None

    def mark_delivered(self, action_id: str, claim: str, now: datetime) -> bool:
        """Settle a claimed message as delivered; False if the claim was lost meanwhile."""
        now = now.astimezone(UTC)
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
                .values(status="delivered", updated_at=now)
            )  # the channel took it, whoever settles: status follows what happened
        return bool(settled == 1)

    def mark_failed(
        self, action_id: str, claim: str, error: str, retry_at: datetime | None, now: datetime
    ) -> bool:
        """Count a failed attempt of a claimed message; with no `retry_at` give it up.

        Only the claim's holder may do this, and never to a delivered message.
        """
        now = now.astimezone(UTC)
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
                values["next_attempt_at"] = retry_at.astimezone(UTC)
            settled = connection.execute(update(outbox).where(*mine).values(**values)).rowcount
            if settled == 1 and retry_at is None:
                connection.execute(
                    update(actions)
                    .where(actions.c.id == action_id, actions.c.status.in_(TO_DELIVER))
                    .values(status="failed", updated_at=now)
                )
        return bool(settled == 1)
