"""Schema migrations of the action log (Alembic), run by `open_engine` at start-up.

One process migrates at a time: on PostgreSQL under an advisory lock held on a connection
of its own, on SQLite under an exclusive lock on the file `<database>.migrate.lock`; the
others wait, then find the log at head. A log made before migrations (tables, no
`alembic_version`) is stamped with the release its columns match, then upgraded in place.
Everything runs in one transaction: both databases roll DDL back, so a failed migration
leaves the log as it was. The revisions are in `versions/`, one per schema change.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from serving.action_log.database import ActionLogSchemaError

SCRIPTS = Path(__file__).parent
# PostgreSQL's advisory locks are per database: one fixed key serialises the migrations of
# one action log, whichever process or version runs them
LOCK_KEY = 7_310_584_195_201_842_543

# The columns each release before migrations added, as its `create_all` made them (from git
# history), oldest first, with the revision that makes the same. A log without a version
# table is at the last of these whose columns, and its predecessors', it has. Frozen: every
# log made since records its revision.
RELEASED: tuple[tuple[str, dict[str, tuple[str, ...]]], ...] = (
    (
        "0001",
        {
            "actions": (
                "id", "customer_id", "action_type", "dedupe_key", "status", "channel",
                "expected_value", "priority", "region", "due_at", "send_after", "details",
                "suppressions", "source", "created_at", "updated_at",
            ),
            "outbox": ("action_id", "attempts", "next_attempt_at", "delivered_at", "last_error"),
            "outage_events": ("event_id", "payload", "counts", "received_at"),
            "outcomes": ("id", "action_id", "outcome", "recorded_at"),
        },
    ),
    (
        "0002",
        {
            "actions": ("capacity_day",),
            "outbox": ("claim",),
            "callback_capacity": ("region", "day", "capacity", "booked"),
        },
    ),
    (
        "0003",
        {
            "decision_outcomes": (
                "action_id", "customer_id", "decided_at", "arm", "action_type", "offer_id",
                "segment", "region", "contract_type", "assignment_probability",
                "estimated_effect", "churn_probability", "customer_value", "cost",
                "churn_model", "effect_model", "churned_30d", "churned_60d", "accepted",
                "updated_at",
            ),
        },
    ),
    ("0004", {"decision_outcomes": ("sent_at",)}),
)  # fmt: skip


class Migration(NamedTuple):
    """What `upgrade` did: the revision the log was at (None: a new log) and is at now."""

    before: str | None
    after: str
    stamped: bool  # made before migrations: `before` is the release its columns match


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code (no alembic.ini): the scripts of this package,
    run on `connection` (env.py takes it from `attributes`)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision of this version's schema."""
    return _head(ScriptDirectory.from_config(alembic_config()))


def current_revision(engine: Engine) -> str | None:
    """The revision the log records; None for a new log or one made before migrations."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> Migration:
    """Migrate the action log to head, one process at a time, in one transaction.

    Raises ActionLogSchemaError for a log at a revision this code does not know (made by a
    newer version), and for one made before migrations that matches no release.
    """
    with _migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            # pysqlite opens no transaction before DDL: open it, taking the write lock now
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config = alembic_config(connection)
        script = ScriptDirectory.from_config(config)
        before = MigrationContext.configure(connection).get_current_revision()
        stamped = False
        if before is None:
            before = _released_revision(connection)
            if before is not None:
                command.stamp(config, before)
                stamped = True
        elif before not in {known.revision for known in script.walk_revisions()}:
            raise ActionLogSchemaError(
                f"action log {_shown(connection)}: at revision {before}, which this version "
                "does not know (made by a newer one): run that version, or move the log "
                "aside to start a new one"
            )
        after = _head(script)
        if before != after:
            command.upgrade(config, after)
    return Migration(before, after, stamped)


def _head(script: ScriptDirectory) -> str:
    revision = script.get_current_head()
    if revision is None:
        raise RuntimeError(f"{SCRIPTS / 'versions'}: no revisions")
    return revision


def _shown(connection: Connection) -> str:
    return connection.engine.url.render_as_string(hide_password=True)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Held while this process migrates; another one starting meanwhile waits here."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine):
            yield
    elif engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":  # private to this process
            yield
            return
        with open(f"{database}.migrate.lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # let go when closed, or the process ends
            yield
    else:
        raise ValueError(
            f"action log on {engine.dialect.name}: only SQLite and PostgreSQL are supported"
        )


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    # on a connection of its own, outside the migration's transaction: the lock is the
    # session's, released by the unlock or, should the process die, by the server
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})


def _released_revision(connection: Connection) -> str | None:
    """The revision of the last release whose columns (and its predecessors') a log made
    before migrations has; None when it has none of the action log's tables (a new log)."""
    existing = inspect(connection)
    names = {table for _, added in RELEASED for table in added}
    present = {
        table: {column["name"] for column in existing.get_columns(table)}
        for table in names & set(existing.get_table_names())
    }
    if not present:
        return None
    matched = None
    for revision, added in RELEASED:
        if _lacking(added, present):
            break
        matched = revision
    if matched is None:
        raise ActionLogSchemaError(
            f"action log {_shown(connection)}: no revision recorded, and it matches no "
            f"release ({'; '.join(_lacking(RELEASED[0][1], present))}): move it aside to "
            "start a new log"
        )
    return matched


def _lacking(added: dict[str, tuple[str, ...]], present: dict[str, set[str]]) -> list[str]:
    """What of the tables and columns `added` a log lacks, in words."""
    lacking = []
    for table, columns in added.items():
        if table not in present:
            lacking.append(f"table {table} is missing")
        elif missing := [column for column in columns if column not in present[table]]:
            lacking.append(f"table {table} lacks column(s) {', '.join(missing)}")
    return lacking
