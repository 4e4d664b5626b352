"""Each compared decision's arm, estimate and 30/60-day outcome, for the results and the
treatment-effect model's retraining (5d86475)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # if_not_exists: a log made before migrations may have it already (see 0002)
    op.create_table(
        "decision_outcomes",
        sa.Column("action_id", sa.String(36), sa.ForeignKey("actions.id"), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("action_type", sa.String(32), nullable=False),
        sa.Column("offer_id", sa.String(64)),
        sa.Column("segment", sa.String(32)),
        sa.Column("region", sa.String(64)),
        sa.Column("contract_type", sa.String(32)),
        sa.Column("assignment_probability", sa.Float),
        sa.Column("estimated_effect", sa.Float),
        sa.Column("churn_probability", sa.Float),
        sa.Column("customer_value", sa.Float),
        sa.Column("cost", sa.Float),
        sa.Column("churn_model", sa.String(80)),
        sa.Column("effect_model", sa.String(80)),
        sa.Column("churned_30d", sa.Boolean),
        sa.Column("churned_60d", sa.Boolean),
        sa.Column("accepted", sa.Boolean),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "ix_decision_outcomes_customer_id",
        "decision_outcomes",
        ["customer_id"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("decision_outcomes")
