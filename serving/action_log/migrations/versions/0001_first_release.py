"""The first released action log (1aa0a4c): actions, their outbox, outage events, outcomes."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("action_type", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(80), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(16)),
        sa.Column("expected_value", sa.Float),
        sa.Column("priority", sa.Float),
        sa.Column("region", sa.String(64)),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("send_after", sa.DateTime(timezone=True)),
        sa.Column("details", sa.JSON),
        sa.Column("suppressions", sa.JSON),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("customer_id", "action_type", "dedupe_key", name="one_action_per_key"),
    )
    op.create_index("ix_actions_customer_id", "actions", ["customer_id"])
    op.create_table(
        "outage_events",
        sa.Column("event_id", sa.String(80), primary_key=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("counts", sa.JSON),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("action_id", sa.String(36), sa.ForeignKey("actions.id"), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.String(36), sa.ForeignKey("actions.id"), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_outcomes_action_id", "outcomes", ["action_id"])


def downgrade() -> None:
    op.drop_table("outcomes")
    op.drop_table("outbox")
    op.drop_table("outage_events")
    op.drop_table("actions")
