"""When each compared decision went out, which quiet hours may put on a later day than the
decision (7f19d2e)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

decision_outcomes = sa.table(
    "decision_outcomes", sa.column("action_id"), sa.column("decided_at"), sa.column("sent_at")
)
actions = sa.table("actions", sa.column("id"), sa.column("send_after"))


def upgrade() -> None:
    existing = sa.inspect(op.get_bind()).get_columns("decision_outcomes")
    if "sent_at" in {column["name"] for column in existing}:
        return  # a log made before migrations whose table a later `create_all` made (see 0002)
    op.add_column("decision_outcomes", sa.Column("sent_at", sa.DateTime(timezone=True)))
    # as attribution has written it since: the action's send_after, else when it was decided
    send_after = (
        sa.select(actions.c.send_after)
        .where(actions.c.id == decision_outcomes.c.action_id)
        .scalar_subquery()
    )
    op.execute(
        decision_outcomes.update().values(
            sent_at=sa.func.coalesce(send_after, decision_outcomes.c.decided_at)
        )
    )
    # SQLite cannot make a column NOT NULL in place: batch copies the table
    with op.batch_alter_table("decision_outcomes") as batch:
        batch.alter_column("sent_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    op.drop_column("decision_outcomes", "sent_at")
