"""Tiny inline customers, scores and proposals for the decision rules' unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from serving.domain import Contact, CustomerScore, CustomerValue, PastAction, Proposal, Reason

NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday
ALL_CONSENT = {"sms": True, "app_push": True, "email": True, "phone": True}
NO_CONSENT = dict.fromkeys(ALL_CONSENT, False)


def contact(**changes: Any) -> Contact:
    """A month-to-month consumer paying 100 a month who consents to every channel."""
    base: dict[str, Any] = {
        "customer_id": "C1",
        "segment": "consumer",
        "region": "harbour",
        "cell_site_id": "S1",
        "contract_type": "month_to_month",
        "monthly_fee": 100.0,
        "has_account_manager": False,
        "consent": dict(ALL_CONSENT),
    }
    return Contact(**{**base, **changes})


def score(
    p: float,
    reasons: tuple[str, ...] = ("days_to_contract_end",),
    band: str | None = None,
    value: float | None = None,
    **contact_changes: Any,
) -> CustomerScore:
    """A score of `p` (band from the default 10 % / 4 % thresholds unless given), worth
    `value` (default 12 x the monthly fee: 1,200 for the default customer)."""
    band = band or ("high" if p >= 0.1 else "medium" if p >= 0.04 else "low")
    made = contact(**contact_changes)
    worth = CustomerValue(12 * made.monthly_fee if value is None else value, 12.0, 24)
    return CustomerScore("C1", p, band, [Reason(r, r, 1, 0.5) for r in reasons], made, value=worth)


def proposal(action_type: str = "retention_offer", *channels: str, **details: Any) -> Proposal:
    """A proposal of `action_type` on `channels` (default: app push, SMS, email)."""
    return Proposal(
        action_type,  # type: ignore[arg-type]
        25.0,
        tuple(channels or ("app_push", "sms", "email")),  # type: ignore[arg-type]
        "test",
        dict(details),
    )


def past(
    action_type: str, channel: str | None, at: datetime, status: str = "delivered"
) -> PastAction:
    return PastAction(action_type, channel, status, at)
