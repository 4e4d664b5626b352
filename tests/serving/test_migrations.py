"""The action log's schema migrations, on SQLite and PostgreSQL: a new log is made at head,
every older log (with a revision, or made before migrations) is upgraded in place keeping its
rows, each revision makes the tables its release made, a log from a newer version is
refused, and processes starting together on a new log all come up."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
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
    insert,
    inspect,
    select,
    text,
)

from serving.action_log import migrations
from serving.action_log.database import (
    ActionLogSchemaError,
    actions,
    check_schema,
    decision_outcomes,
    from_db,
    log_engine,
    metadata,
    open_engine,
    outage_events,
    outbox,
)
from serving.action_log.migrations import (
    Migration,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from tests.postgres import fresh_database

REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006")
RELEASES = REVISIONS[:4]  # the schemas released before migrations, made by create_all
HEAD = REVISIONS[-1]
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def released_tables(revision: str) -> MetaData:
    """The tables as `create_all` made them in the release that `revision` reproduces, read
    from git history: 1aa0a4c (0001), 3d9140c (0002), 5d86475 (0003), 7f19d2e (0004)."""

    def since(added: str, *items: Any) -> list[Any]:
        return list(items) if revision >= added else []

    tables = MetaData()
    Table(
        "actions",
        tables,
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
        *since("0002", Column("capacity_day", String(10))),
        Column("send_after", DateTime(timezone=True)),
        Column("details", JSON),
        Column("suppressions", JSON),
        Column("source", String(16), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        UniqueConstraint("customer_id", "action_type", "dedupe_key", name="one_action_per_key"),
    )
    Table(
        "outbox",
        tables,
        Column("action_id", String(36), ForeignKey("actions.id"), primary_key=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False),
        Column("delivered_at", DateTime(timezone=True)),
        Column("last_error", Text),
        *since("0002", Column("claim", String(36))),
    )
    if revision >= "0002":
        Table(
            "callback_capacity",
            tables,
            Column("region", String(64), primary_key=True),
            Column("day", String(10), primary_key=True),
            Column("capacity", Integer, nullable=False),
            Column("booked", Integer, nullable=False, default=0),
        )
    Table(
        "outage_events",
        tables,
        Column("event_id", String(80), primary_key=True),
        Column("payload", JSON, nullable=False),
        Column("counts", JSON),
        Column("received_at", DateTime(timezone=True), nullable=False),
        *since(
            "0006",
            Column("state", String(16), nullable=False, index=True),
            Column("kind", String(16), nullable=False),
            Column("source", String(16), nullable=False),
            Column("severity", String(16)),
            Column("detected_at", DateTime(timezone=True), nullable=False),
            Column("expected_end", DateTime(timezone=True)),
            Column("ended_at", DateTime(timezone=True)),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        ),
    )
    if revision >= "0006":  # made by its migration
        Table(
            "outage_updates",
            tables,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column(
                "event_id",
                String(80),
                ForeignKey("outage_events.event_id"),
                nullable=False,
                index=True,
            ),
            Column("step", String(16), nullable=False),
            Column("state", String(16), nullable=False),
            Column("payload", JSON),
            Column("at", DateTime(timezone=True), nullable=False),
        )
    Table(
        "outcomes",
        tables,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("action_id", String(36), ForeignKey("actions.id"), nullable=False, index=True),
        Column("outcome", String(16), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    )
    if revision >= "0003":
        Table(
            "decision_outcomes",
            tables,
            Column("action_id", String(36), ForeignKey("actions.id"), primary_key=True),
            Column("customer_id", String(64), nullable=False, index=True),
            Column("decided_at", DateTime(timezone=True), nullable=False),
            *since("0004", Column("sent_at", DateTime(timezone=True), nullable=False)),
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
            Column("churned_30d", Boolean),
            Column("churned_60d", Boolean),
            Column("accepted", Boolean),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
    if revision >= "0005":  # made by its migration, not by a release's create_all
        Table(
            "audit",
            tables,
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
    return tables


def _rows_to_write() -> dict[str, list[dict[str, Any]]]:
    """A few rows for every table of today's schema; each release writes the columns it has."""
    actions_rows: list[dict[str, Any]] = [
        {
            "id": f"a{i}",
            "customer_id": f"C{i % 2}",
            "action_type": "callback" if i == 2 else "retention_offer",
            "dedupe_key": "2026-11-20",
            "status": "queued",
            "channel": "sms",
            "expected_value": 12.5 * i,
            "priority": 0.5,
            "region": "harbour",
            "due_at": None,
            "capacity_day": None,
            # quiet hours pushed a0 to the next morning; a1 went out when decided
            "send_after": T0 + timedelta(hours=14) if i == 0 else None,
            "details": {"arm": "policy", "offer_id": f"o{i}"},
            "suppressions": [],
            "source": "decide",
            "created_at": T0 + timedelta(minutes=i),
            "updated_at": T0 + timedelta(minutes=i),
        }
        for i in range(3)
    ]
    return {
        "actions": actions_rows,
        "outbox": [
            {
                "action_id": "a0",
                "attempts": 1,
                "next_attempt_at": T0,
                "delivered_at": None,
                "last_error": "timeout",
                "claim": None,
            },
            {
                "action_id": "a1",
                "attempts": 0,
                "next_attempt_at": T0,
                "delivered_at": T0,
                "last_error": None,
                "claim": None,
            },
        ],
        "callback_capacity": [
            {"region": "harbour", "day": "2026-11-20", "capacity": 5, "booked": 1}
        ],
        "outage_events": [
            {
                "event_id": "ev1",
                "payload": {"cells": ["c1"]},
                "counts": {"x": 1},
                "received_at": T0,
                "state": "confirmed",
                "kind": "unplanned",
                "source": "reported",
                "severity": None,
                "detected_at": T0,
                "expected_end": None,
                "ended_at": None,
                "updated_at": T0,
            }
        ],
        "outage_updates": [
            {
                "id": 1,
                "event_id": "ev1",
                "step": "reported",
                "state": "confirmed",
                "payload": None,
                "at": T0,
            }
        ],
        "outcomes": [{"action_id": "a1", "outcome": "delivered", "recorded_at": T0}],
        "decision_outcomes": [
            {
                "action_id": row["id"],
                "customer_id": row["customer_id"],
                "decided_at": row["created_at"],
                "sent_at": row["send_after"] or row["created_at"],
                "arm": "policy",
                "action_type": row["action_type"],
                "offer_id": None,
                "segment": "young",
                "region": "harbour",
                "contract_type": None,
                "assignment_probability": 0.9,
                "estimated_effect": 0.05,
                "churn_probability": 0.4,
                "customer_value": 300.0,
                "cost": 5.0,
                "churn_model": "churn/3",
                "effect_model": None,
                "churned_30d": False,
                "churned_60d": None,
                "accepted": True,
                "updated_at": T0,
            }
            for row in actions_rows[:2]
        ],
        "audit": [
            {
                "id": 1,
                "at": T0,
                "caller": "crm-gateway",
                "roles": "crm",
                "method": "POST",
                "route": "/v1/decide",
                "customer_id": "C0",
                "status": 200,
                "request_id": "r1",
            },
        ],
    }


def fill(engine: Engine, tables: MetaData) -> None:
    """Write the rows into `tables`, with the columns they have."""
    with engine.begin() as connection:
        for table in tables.sorted_tables:
            rows = [
                {name: value for name, value in row.items() if name in table.c}
                for row in _rows_to_write()[table.name]
            ]
            connection.execute(insert(table), rows)


def stored(engine: Engine, tables: MetaData) -> dict[str, list[dict[str, Any]]]:
    """Every row of `tables` with the columns they have, in key order."""
    with engine.connect() as connection:
        return {
            table.name: [
                dict(row._mapping)
                for row in connection.execute(select(table).order_by(*table.primary_key))
            ]
            for table in tables.sorted_tables
        }


def differences(engine: Engine, tables: MetaData = metadata) -> list[Any]:
    """Alembic's autogenerate comparison of the database with `tables`: [] when they agree
    on tables, columns, types, nullability, keys, unique constraints and indexes."""
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), tables))


def alembic(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    """Run Alembic's `step` (command.upgrade, command.downgrade) to `revision`."""
    with engine.begin() as connection:
        step(alembic_config(connection), revision)


def with_password(url: str) -> str:
    """The PostgreSQL URL with a password (the test server trusts loopback and ignores it)."""
    return url.replace("://retain@", "://retain:hunter2@")


# --- new logs, and the chain of revisions ---------------------------------------------------


def test_head_is_the_last_revision() -> None:
    assert head_revision() == HEAD


def test_a_new_log_is_made_at_head_with_todays_tables(action_db_url: str) -> None:
    engine = open_engine(action_db_url)
    assert current_revision(engine) == HEAD
    assert differences(engine) == []
    engine.dispose()


def test_each_revision_makes_the_tables_its_release_made(action_db_url: str) -> None:
    engine = log_engine(action_db_url)
    for revision in REVISIONS:
        alembic(engine, command.upgrade, revision)
        assert current_revision(engine) == revision
        assert differences(engine, released_tables(revision)) == [], revision
    assert differences(engine) == []  # the last is today's
    engine.dispose()


def test_each_revision_downgrades_to_the_tables_before_it(action_db_url: str) -> None:
    engine = open_engine(action_db_url)
    for revision in reversed(REVISIONS[:-1]):
        alembic(engine, command.downgrade, revision)
        assert differences(engine, released_tables(revision)) == [], revision
    alembic(engine, command.downgrade, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert upgrade(engine) == Migration(None, HEAD, stamped=False)
    assert differences(engine) == []
    engine.dispose()


# --- older logs are upgraded in place -------------------------------------------------------


@pytest.mark.parametrize("revision", REVISIONS[:-1])
def test_a_log_at_an_older_revision_is_upgraded_in_place_keeping_its_rows(
    action_db_url: str, revision: str
) -> None:
    engine = log_engine(action_db_url)
    alembic(engine, command.upgrade, revision)
    old = released_tables(revision)
    fill(engine, old)
    before = stored(engine, old)
    engine.dispose()

    engine = open_engine(action_db_url)
    assert current_revision(engine) == HEAD
    assert differences(engine) == []
    assert stored(engine, old) == before
    _check_new_columns(engine)
    engine.dispose()


@pytest.mark.parametrize("revision", RELEASES)
def test_a_log_made_before_migrations_is_stamped_with_its_release_and_upgraded(
    action_db_url: str, revision: str
) -> None:
    engine = log_engine(action_db_url)
    old = released_tables(revision)
    old.create_all(engine)  # what open_engine did before migrations
    fill(engine, old)
    before = stored(engine, old)

    assert upgrade(engine) == Migration(revision, HEAD, stamped=True)
    check_schema(engine)
    assert current_revision(engine) == HEAD
    assert differences(engine) == []
    assert stored(engine, old) == before
    _check_new_columns(engine)
    engine.dispose()


def test_a_first_release_log_that_a_later_version_refused_is_upgraded(
    action_db_url: str,
) -> None:
    # before migrations, a later version's `create_all` made its new tables (today's
    # decision_outcomes, with sent_at) and then refused the log for the columns it lacked
    engine = log_engine(action_db_url)
    old = released_tables("0001")
    old.create_all(engine)
    fill(engine, old)
    before = stored(engine, old)
    metadata.create_all(engine)
    with pytest.raises(ActionLogSchemaError, match="lacks column"):
        check_schema(engine)

    assert upgrade(engine) == Migration("0001", HEAD, stamped=True)
    check_schema(engine)
    assert differences(engine) == []
    assert stored(engine, old) == before
    engine.dispose()


def _check_new_columns(engine: Engine) -> None:
    """Columns a migration added are empty, except sent_at, as attribution writes it: the
    action's send_after, else when it was decided; and the log takes today's rows."""
    with engine.begin() as connection:
        assert set(connection.scalars(select(actions.c.capacity_day))) == {None}
        assert set(connection.scalars(select(outbox.c.claim))) == {None}
        sent = connection.execute(
            select(decision_outcomes.c.action_id, decision_outcomes.c.sent_at).order_by(
                decision_outcomes.c.action_id
            )
        ).all()
        if sent:
            expected = [("a0", T0 + timedelta(hours=14)), ("a1", T0 + timedelta(minutes=1))]
            assert [(i, from_db(at)) for i, at in sent] == expected
        # an outage recorded before its lifecycle: confirmed, reported, detected when received
        outages = connection.execute(
            select(
                outage_events.c.state,
                outage_events.c.source,
                outage_events.c.detected_at,
                outage_events.c.received_at,
            )
        ).all()
        assert [(state, source) for state, source, *_ in outages] == [("confirmed", "reported")]
        assert all(from_db(found) == from_db(received) for *_, found, received in outages)
        connection.execute(
            insert(actions),
            {**_rows_to_write()["actions"][0], "id": "new", "dedupe_key": "2026-11-21",
             "capacity_day": "2026-11-21"},
        )  # fmt: skip


FAILING_REVISION = """
from alembic import op
import sqlalchemy as sa

revision = "9999"
down_revision = "0006"


def upgrade():
    op.add_column("actions", sa.Column("planted", sa.String(8)))
    raise RuntimeError("a planted failure")
"""


def test_a_migration_that_fails_leaves_the_log_as_it_was(
    action_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = tmp_path / "migrations"
    shutil.copytree(migrations.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_fails.py").write_text(FAILING_REVISION)
    monkeypatch.setattr(migrations, "SCRIPTS", scripts)
    engine = log_engine(action_db_url)
    old = released_tables("0001")
    old.create_all(engine)
    fill(engine, old)
    before = stored(engine, old)

    with pytest.raises(RuntimeError, match="a planted failure"):
        upgrade(engine)  # stamped 0001, upgraded through 0006, then failed in 9999
    assert set(inspect(engine).get_table_names()) == set(old.tables)  # no alembic_version
    assert differences(engine, old) == []
    assert stored(engine, old) == before
    engine.dispose()


# --- opening again, and a newer version's log -----------------------------------------------


def test_opening_a_log_at_head_again_changes_nothing(action_db_url: str) -> None:
    engine = open_engine(action_db_url)
    fill(engine, metadata)
    before = stored(engine, metadata)
    again = open_engine(action_db_url)
    assert upgrade(again) == Migration(HEAD, HEAD, stamped=False)
    assert stored(again, metadata) == before
    engine.dispose()
    again.dispose()


def test_a_log_from_a_newer_version_is_refused_naming_the_log_and_its_revision(
    action_db_url: str,
) -> None:
    url = with_password(action_db_url)
    open_engine(url).dispose()
    engine = log_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_newer'"))
    with pytest.raises(ActionLogSchemaError) as refused:
        open_engine(url)
    shown = url.replace(":hunter2@", ":***@")
    assert str(refused.value) == (
        f"action log {shown}: at revision 0099_newer, which this version does not know (made "
        "by a newer one): run that version, or move the log aside to start a new one"
    )
    assert current_revision(engine) == "0099_newer"  # untouched
    engine.dispose()


def test_a_log_made_before_migrations_that_matches_no_release_is_refused_untouched(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = log_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE actions (id TEXT PRIMARY KEY, status TEXT)"))
    with pytest.raises(ActionLogSchemaError) as refused:
        open_engine(url)
    message = str(refused.value)
    assert message.startswith(
        f"action log {url}: no revision recorded, and it matches no release (table actions "
        "lacks column(s) customer_id, action_type, dedupe_key, channel,"
    )
    assert "; table outbox is missing; " in message
    assert set(inspect(engine).get_table_names()) == {"actions"}
    engine.dispose()


# --- processes starting together --------------------------------------------------------------


def _open_together(urls: list[str], start: Barrier, results: Queue[tuple[str, str]]) -> None:
    """One of the processes starting together: for each new log, wait until all are ready,
    then open it (as a uvicorn worker does)."""
    for url in urls:
        start.wait(timeout=120)
        try:
            open_engine(url).dispose()
            results.put((url, "ok"))
        except Exception as error:
            results.put((url, f"{type(error).__name__}: {error}"))


@pytest.mark.slow
@pytest.mark.parametrize(("dialect", "rounds"), [("sqlite", 20), ("postgresql", 5)])
def test_four_processes_opening_a_new_log_together_all_succeed(
    dialect: str, rounds: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if dialect == "sqlite":  # a new folder each round: its making races too
        urls = [f"sqlite:///{tmp_path / f'round{i}' / 'actions.db'}" for i in range(rounds)]
    else:
        server = request.getfixturevalue("postgres_server")
        urls = [fresh_database(server) for _ in range(rounds)]
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(4)
    results: Queue[tuple[str, str]] = spawn.Queue()
    workers = [spawn.Process(target=_open_together, args=(urls, start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=300) for _ in range(4 * rounds)]
    finally:
        for worker in workers:
            worker.join(timeout=60)
    assert [outcome for outcome in outcomes if outcome[1] != "ok"] == []
    for url in urls:
        engine = log_engine(url)
        assert current_revision(engine) == HEAD
        engine.dispose()


# --- the CLI --------------------------------------------------------------------------------


def test_the_cli_upgrades_the_configured_log_and_prints_its_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # imported here: the processes spawned above import this module, and the CLI brings MLflow
    from typer.testing import CliRunner

    from retain.cli import app

    url = f"sqlite:///{tmp_path / 'actions.db'}"
    monkeypatch.setenv("RETAIN_SERVING_ACTION_DB_URL", url)
    runner = CliRunner()
    missing = runner.invoke(app, ["action-log", "current"])
    assert missing.exit_code == 1 and f"error: no action log at {url}" in missing.output

    released_tables("0002").create_all(log_engine(url))
    shown = runner.invoke(app, ["action-log", "current"])
    assert shown.exit_code == 0, shown.output
    assert (
        shown.output
        == f"action log {url}: none (made before migrations) (this version's: {HEAD})\n"
    )
    upgraded = runner.invoke(app, ["action-log", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert (
        upgraded.output == f"action log {url}: 0002 (made before migrations, stamped) -> {HEAD}\n"
    )
    again = runner.invoke(app, ["action-log", "upgrade"])
    assert again.output == f"action log {url}: {HEAD} -> {HEAD}\n"
    shown = runner.invoke(app, ["action-log", "current"])
    assert shown.output == f"action log {url}: {HEAD} (this version's: {HEAD})\n"
