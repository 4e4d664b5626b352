"""Outages with a lifecycle: a state (suspected, confirmed, restored, cancelled), its
severity, kind (planned or not), how it was found, when it was detected, expected to end
and ended; and each step of it in `outage_updates`. Events recorded before keep their rows
as confirmed, detected when they were received."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMNS = (
    ("state", sa.String(16)),
    ("kind", sa.String(16)),
    ("source", sa.String(16)),
    ("severity", sa.String(16)),
    ("detected_at", sa.DateTime(timezone=True)),
    ("expected_end", sa.DateTime(timezone=True)),
    ("ended_at", sa.DateTime(timezone=True)),
    ("updated_at", sa.DateTime(timezone=True)),
)
outage_events = sa.table(
    "outage_events",
    *(sa.column(name) for name, _ in NEW_COLUMNS),
    sa.column("received_at"),
)


def upgrade() -> None:
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("outage_events")}
    for name, kind in NEW_COLUMNS:
        if name not in existing:
            op.add_column("outage_events", sa.Column(name, kind))
    op.execute(
        outage_events.update()
        .where(outage_events.c.state.is_(None))
        .values(
            state="confirmed",
            kind="unplanned",
            source="reported",
            detected_at=outage_events.c.received_at,
            updated_at=outage_events.c.received_at,
        )
    )
    # SQLite cannot make a column NOT NULL in place: batch copies the table
    with op.batch_alter_table("outage_events") as batch:
        for name, kind in NEW_COLUMNS:
            if name in ("state", "kind", "source", "detected_at", "updated_at"):
                batch.alter_column(name, existing_type=kind, nullable=False)
    op.create_index("ix_outage_events_state", "outage_events", ["state"], if_not_exists=True)
    op.create_table(
        "outage_updates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id", sa.String(80), sa.ForeignKey("outage_events.event_id"), nullable=False
        ),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "ix_outage_updates_event_id", "outage_updates", ["event_id"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_table("outage_updates")
    op.drop_index("ix_outage_events_state", "outage_events")
    with op.batch_alter_table("outage_events") as batch:
        for name, _ in NEW_COLUMNS:
            batch.drop_column(name)
