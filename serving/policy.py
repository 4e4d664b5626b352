"""From a score to proposed actions: the expected-value rule of the design card.

Pure functions: a customer's score and contact profile in, proposals out. Whether a
proposal may be sent, and on which channel, is the contact policy's decision
(`serving.contact`); whether it is recorded and queued is the action log's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from serving.domain import Channel, Contact, CustomerScore, PackageCandidate, Proposal
from serving.settings import ActionPolicy


def best_offer(score: CustomerScore, contact: Contact, policy: ActionPolicy) -> Proposal | None:
    """The eligible offer with the largest P(churn) x value x save rate - cost, if positive."""
    value = policy.customer_value(contact.monthly_fee)
    best: Proposal | None = None
    for offer in policy.offers:
        if offer.contract_types is not None and contact.contract_type not in offer.contract_types:
            continue
        if offer.segments is not None and contact.segment not in offer.segments:
            continue
        rate = offer.rate(contact.segment)
        net = score.churn_probability * value * rate - offer.cost
        if net > 0 and (best is None or net > best.expected_value):
            best = Proposal(
                "retention_offer",
                round(net, 2),
                tuple(offer.channels),
                f"{offer.id}: {score.churn_probability:.1%} x value {value:.0f} x save rate "
                f"{rate:.0%} - cost {offer.cost:.0f}",
                {"offer_id": offer.id, "cost": offer.cost, "save_rate": rate},
            )
    return best


def is_valuable(contact: Contact, policy: ActionPolicy) -> bool:
    """Worth an account manager's time: an enterprise, a customer who already has an account
    manager, or one whose value reaches the callback threshold. Each alone is enough."""
    return (
        contact.segment == "enterprise"
        or contact.has_account_manager
        or policy.customer_value(contact.monthly_fee) >= policy.callbacks.min_value
    )


def callback(
    score: CustomerScore, contact: Contact, policy: ActionPolicy, now: datetime
) -> Proposal | None:
    """An account-manager call for valuable customers whose risk comes from complaints."""
    rule = policy.callbacks
    value = policy.customer_value(contact.monthly_fee)
    drivers = [r.feature for r in score.reasons if r.feature in rule.complaint_features]
    eligible = is_valuable(contact, policy) and score.churn_probability >= rule.min_probability
    if not (eligible and drivers):
        return None
    net = score.churn_probability * value * rule.save_rate - rule.cost
    if net <= 0:
        return None
    urgent = score.risk_band == "high"
    due = now + timedelta(hours=rule.urgent_hours if urgent else rule.normal_hours)
    return Proposal(
        "callback",
        round(net, 2),
        ("phone",),
        f"complaint-driven risk ({', '.join(drivers)}) of a customer worth {value:.0f}",
        {"drivers": drivers, "cost": rule.cost},
        priority=round(score.churn_probability * value, 2),
        due_at=due,
    )


OUTAGE_CHANNELS: tuple[Channel, ...] = ("sms", "app_push")  # reach a phone without data too


def outage_notice(details: dict[str, Any]) -> Proposal:
    """The notice of an outage at the customer's home cell: a service message."""
    return Proposal(
        "outage_notice",
        0.0,
        OUTAGE_CHANNELS,
        f"network outage {details['event_id']} at the customer's home cell",
        dict(details),
    )


def outage_callback(
    score: CustomerScore, contact: Contact, policy: ActionPolicy, now: datetime, event_id: str
) -> Proposal | None:
    """An urgent account-manager call for a valuable customer at high risk hit by an outage."""
    if score.risk_band != "high" or not is_valuable(contact, policy):
        return None
    value = policy.customer_value(contact.monthly_fee)
    return Proposal(
        "callback",
        0.0,
        ("phone",),
        f"high-risk, high-value customer hit by outage {event_id}",
        {"event_id": event_id},
        priority=round(score.churn_probability * value, 2),
        due_at=now + timedelta(hours=policy.callbacks.urgent_hours),
    )


def seasonal_package(
    candidate: PackageCandidate, policy: ActionPolicy, now: datetime
) -> Proposal | None:
    """A notification of the package ahead of its surge, if it is time and worth it."""
    rule = policy.packages
    surge_ends = candidate.week_start + timedelta(days=7)
    if not candidate.week_start - timedelta(days=rule.lead_days) <= now < surge_ends:
        return None
    net = candidate.propensity * rule.value.get(candidate.package, 0.0) - rule.message_cost
    if net <= 0:
        return None
    return Proposal(
        "seasonal_package",
        round(net, 2),
        tuple(rule.channels),
        f"{candidate.package.replace('_', ' ')}: demand surge expected in {candidate.region} "
        f"from {candidate.week_start:%d %b}; purchase propensity {candidate.propensity:.0%}",
        {
            "package": candidate.package,
            "week_start": candidate.week_start.date().isoformat(),
            "propensity": round(candidate.propensity, 4),
            "campaign": candidate.campaign,
            "cost": rule.message_cost,
        },
    )


def propose(
    score: CustomerScore,
    contact: Contact,
    policy: ActionPolicy,
    now: datetime,
    candidates: Sequence[PackageCandidate] = (),
) -> list[Proposal]:
    """Every action worth taking for this customer now, best expected value first."""
    found = [
        best_offer(score, contact, policy),
        callback(score, contact, policy, now),
        *(seasonal_package(c, policy, now) for c in candidates),
    ]
    return sorted((p for p in found if p), key=lambda p: p.expected_value, reverse=True)
