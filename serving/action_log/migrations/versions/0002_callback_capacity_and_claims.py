"""Callback capacity per region and day, each callback's capacity day, and delivery claims
(3d9140c)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable columns: SQLite adds them in place, no batch copy needed
    op.add_column("actions", sa.Column("capacity_day", sa.String(10)))
    op.add_column("outbox", sa.Column("claim", sa.String(36)))
    # a log made before migrations may have the table already: `create_all` of a later
    # version made it before refusing the log for the columns above
    op.create_table(
        "callback_capacity",
        sa.Column("region", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("booked", sa.Integer, nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("callback_capacity")
    # plain columns (no index or key): SQLite 3.35+ drops them in place
    op.drop_column("outbox", "claim")
    op.drop_column("actions", "capacity_day")
