"""Who read or acted on which customer through the API (key name and roles, route,
customer, status, request id): the audit trail."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("caller", sa.String(80), nullable=False),
        sa.Column("roles", sa.String(80), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.String(120), nullable=False),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(64)),
        if_not_exists=True,  # as 0002: a log opened by create_all of today's tables has it
    )
    op.create_index("ix_audit_at", "audit", ["at"], if_not_exists=True)
    op.create_index("ix_audit_customer_id", "audit", ["customer_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_table("audit")
