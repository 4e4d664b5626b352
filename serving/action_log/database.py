"""The action log's tables, engines and transactions.

SQLite (WAL) by default, PostgreSQL by URL. Times are stored as UTC: SQLite keeps a
datetime's clock time and drops its offset, so everything is converted on the way in and
read back as UTC, whatever zone the server or the database runs in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
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
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

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
    Column("state", String(16), nullable=False, index=True),  # serving.outages.STATES
    Column("kind", String(16), nullable=False),  # unplanned or planned
    Column("source", String(16), nullable=False),  # reported by operations, or detected
    Column("severity", String(16)),
    Column("detected_at", DateTime(timezone=True), nullable=False),
    Column("expected_end", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
outage_updates = Table(  # each step of an outage's lifecycle, in order
    "outage_updates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "event_id", String(80), ForeignKey("outage_events.event_id"), nullable=False, index=True
    ),
    Column("step", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("payload", JSON),
    Column("at", DateTime(timezone=True), nullable=False),
)
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action_id", String(36), ForeignKey("actions.id"), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

decision_outcomes = Table(
    "decision_outcomes",
    metadata,
    Column("action_id", String(36), ForeignKey("actions.id"), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),  # or held out (control)
    Column("arm", String(16), nullable=False),
    Column("action_type", String(32), nullable=False),
    Column("offer_id", String(64)),
    Column("segment", String(32)),
    Column("region", String(64)),
    Column("contract_type", String(32)),
    Column("assignment_probability", Float),
    Column("estimated_effect", Float),
    Column("churn_probability", Float),
    Column("customer_value", Float),
    Column("cost", Float),
    Column("churn_model", String(80)),
    Column("effect_model", String(80)),
    Column("churned_30d", Boolean),  # null until 30 days have passed
    Column("churned_60d", Boolean),
    Column("accepted", Boolean),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Who read or acted on which customer through the API: the key's name and roles (never the
# key), the route, the customer (none for a list read) and the request id.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("caller", String(80), nullable=False),
    Column("roles", String(80), nullable=False),
    Column("method", String(8), nullable=False),
    Column("route", String(120), nullable=False),
    Column("customer_id", String(64), index=True),
    Column("status", Integer, nullable=False),
    Column("request_id", String(64)),
)

RETRYABLE = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization failure
T = TypeVar("T")
Upsert = Callable[[Table], Any]  # the dialect's INSERT with ON CONFLICT


def from_db(value: datetime | None) -> datetime | None:
    """A stored instant as UTC: SQLite hands back naive datetimes; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_db(value: datetime) -> datetime:
    """An instant to store, as UTC: SQLite keeps the clock time and drops the offset."""
    return value.astimezone(UTC)


def log_engine(url: str) -> Engine:
    """An engine for the action log (not connected yet); SQLite files get their folder, WAL,
    a 30 s busy timeout and foreign keys, other databases a liveness check per checkout."""
    try:
        make_url(url)
    except ArgumentError:  # the URL itself is not repeated: it may hold a password
        raise ArgumentError(
            "the action log's database URL (action_db_url, RETAIN_SERVING_ACTION_DB_URL) is "
            "not a database URL, e.g. sqlite:///data/actions/actions.db or "
            "postgresql+psycopg://user@host/retain"
        ) from None
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


def log_exists(url: str) -> bool:
    """Whether there is an action log at `url` to read (a SQLite file is not created just
    to find it empty; any other database is taken to be there)."""
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).exists()


def open_engine(url: str) -> Engine:
    """The action log's engine, its tables created or migrated to this version's (one
    process at a time: the others wait, then find them done) and their columns checked."""
    # imported here: the migrations import this module (its tables and error)
    from serving.action_log.migrations import upgrade

    engine = log_engine(url)
    upgrade(engine)
    check_schema(engine)
    return engine


class ActionLogSchemaError(RuntimeError):
    """The action log was made by another version of this code."""


def check_schema(engine: Engine) -> None:
    """Refuse an existing action log whose tables lack columns this version writes.

    The last check after migrating: a log altered by hand since its revision was recorded
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


def upsert_for(engine: Engine) -> Upsert:
    """The dialect's INSERT, which offers ON CONFLICT (the generic one does not)."""
    dialects: dict[str, Upsert] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    if engine.dialect.name not in dialects:
        raise ValueError(
            f"action log on {engine.dialect.name}: only SQLite and PostgreSQL are supported"
        )
    return dialects[engine.dialect.name]


def in_transaction(engine: Engine, work: Callable[[Any], T], attempts: int = 4) -> T:
    """Run `work` in a transaction, again when PostgreSQL aborted it as a deadlock victim
    or a serialization failure (nothing of it was kept), `attempts` times at most,
    waiting 20 ms, 40 ms, 80 ms ... in between."""
    attempt = 1
    while True:
        try:
            with engine.begin() as connection:
                return work(connection)
        except OperationalError as error:
            code = getattr(error.orig, "sqlstate", None)
            if code not in RETRYABLE or attempt >= attempts:
                raise
            time.sleep(0.02 * 2 ** (attempt - 1))
            attempt += 1
