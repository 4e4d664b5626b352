"""The personal fields of old decisions: pseudonymized, the rows kept.

The campaign results, the budgets and the treatment-effect model's history count
decisions by arm, action, offer, cost, probability, model version and outcome; none of
that needs to know who the customer was once the outcome is attributed. So an old decision
keeps its row with the customer id replaced by a keyed pseudonym (HMAC-SHA-256 with a
secret from the settings: the same customer always gets the same pseudonym, and nobody
without the secret can compute it from an id), its details reduced to the analytic
fields, and its suppressions to their codes. Its outcome row gets the same pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from serving.action_log.database import actions, audit, decision_outcomes
from serving.domain import ActionStatus

PSEUDONYM_PREFIX = "anon:"
# what an action's details keep: the fields the results, budgets and retraining read (as
# the decision_outcomes columns), and what identifies a campaign or an outage event;
# everything else goes, the reason text and the customer's features in particular
ANALYTIC_DETAILS = frozenset(
    {
        "arm",
        "assignment_probability",
        "offer_id",
        "cost",
        "estimated_effect",
        "churn_probability",
        "customer_value",
        "churn_model",
        "effect_model",
        "segment",
        "contract_type",
        "package",
        "week_start",
        "propensity",
        "campaign",
        "event_id",
        "severity",
    }
)
# an action still to be delivered (or waiting for a callback slot) keeps its customer
PENDING = (ActionStatus.QUEUED, ActionStatus.DEFERRED, ActionStatus.WAITING_CAPACITY)


def pseudonym(customer_id: str, secret: bytes) -> str:
    """The customer's stable pseudonym under `secret` (128 bits of HMAC-SHA-256)."""
    digest = hmac.new(secret, customer_id.encode(), hashlib.sha256).hexdigest()
    return f"{PSEUDONYM_PREFIX}{digest[:32]}"


def is_pseudonym(customer_id: str) -> bool:
    return customer_id.startswith(PSEUDONYM_PREFIX)


def analytic_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """An action's details without its personal free text."""
    return {key: value for key, value in (details or {}).items() if key in ANALYTIC_DETAILS}


def suppression_codes(suppressions: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Suppressions as their codes and channels: the messages describe the customer's
    consent and contact history."""
    return [{"code": s.get("code"), "channel": s.get("channel")} for s in suppressions or []]


def pseudonymize_batch(
    connection: Any, before: datetime, secret: bytes, batch: int
) -> tuple[int, int]:
    """Pseudonymize up to `batch` actions created before `before` (UTC, as stored) and
    their outcome rows, inside the caller's transaction; (actions, outcome rows)."""
    rows = connection.execute(
        select(actions.c.id, actions.c.customer_id, actions.c.details, actions.c.suppressions)
        .where(
            actions.c.created_at < before,
            actions.c.customer_id.not_like(f"{PSEUDONYM_PREFIX}%"),
            actions.c.status.not_in([str(status) for status in PENDING]),
        )
        .limit(batch)
        .with_for_update()  # PostgreSQL: no one changes them between this read and the write
    ).all()
    if not rows:
        return 0, 0
    changed = [
        {
            "b_id": row.id,
            "b_customer": pseudonym(row.customer_id, secret),
            "b_details": analytic_details(row.details),
            "b_suppressions": suppression_codes(row.suppressions),
        }
        for row in rows
    ]
    connection.execute(
        update(actions)
        .where(actions.c.id == bindparam("b_id"))
        .values(
            customer_id=bindparam("b_customer"),
            details=bindparam("b_details", type_=actions.c.details.type),
            suppressions=bindparam("b_suppressions", type_=actions.c.suppressions.type),
        ),
        changed,
    )
    ids = [c["b_id"] for c in changed]
    outcomes = connection.execute(
        select(func.count())
        .select_from(decision_outcomes)
        .where(decision_outcomes.c.action_id.in_(ids))
    ).scalar_one()
    if outcomes:
        connection.execute(
            update(decision_outcomes)
            .where(decision_outcomes.c.action_id == bindparam("b_id"))
            .values(customer_id=bindparam("b_customer")),
            [{"b_id": c["b_id"], "b_customer": c["b_customer"]} for c in changed],
        )
    return len(rows), int(outcomes)


def pseudonymize_audit_batch(connection: Any, before: datetime, secret: bytes, batch: int) -> int:
    """Pseudonymize up to `batch` audit rows older than `before`: the trail keeps who read
    a customer's data and when, under the same pseudonym as the customer's decisions."""
    rows = connection.execute(
        select(audit.c.id, audit.c.customer_id)
        .where(
            audit.c.at < before,
            audit.c.customer_id.is_not(None),
            audit.c.customer_id.not_like(f"{PSEUDONYM_PREFIX}%"),
        )
        .limit(batch)
        .with_for_update()
    ).all()
    if rows:
        connection.execute(
            update(audit)
            .where(audit.c.id == bindparam("b_id"))
            .values(customer_id=bindparam("b_customer")),
            [{"b_id": r.id, "b_customer": pseudonym(r.customer_id, secret)} for r in rows],
        )
    return len(rows)
