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
from serving.settings import ActionPolicy, Offer


def customer_value(score: CustomerScore) -> float:
    """What keeping the customer is worth: the expected margin over the value horizon, from
    the churn model's monthly hazards (`serving.value`), set on the score by the scorer."""
    if score.value is None:
        raise ValueError(f"customer {score.customer_id} was scored without a customer value")
    return score.value.expected_margin


def value_words(score: CustomerScore) -> str:
    """The value as a reason states it: "value 840 (expected 24-month margin)"."""
    value = customer_value(score)
    horizon = score.value.horizon_months if score.value else 0
    return f"value {value:.0f} (expected {horizon}-month margin)"


def _eligible(offer: Offer, contact: Contact) -> bool:
    if offer.contract_types is not None and contact.contract_type not in offer.contract_types:
        return False
    return offer.segments is None or contact.segment in offer.segments


def _by_save_rate(
    score: CustomerScore, contact: Contact, policy: ActionPolicy, offer: Offer
) -> tuple[float, Proposal]:
    """An offer valued by the constant save rate: P(churn) x value x rate - cost (unrounded,
    and the proposal)."""
    value = customer_value(score)
    rate = offer.rate(contact.segment)
    net = score.churn_probability * value * rate - offer.cost
    return net, Proposal(
        "retention_offer",
        round(net, 2),
        tuple(offer.channels),
        f"{offer.id}: risk {score.churn_probability:.1%} x {value_words(score)} x save rate "
        f"{rate:.0%} - cost {offer.cost:.0f} (constant save rate: no treatment-effect "
        "model registered)",
        {"offer_id": offer.id, "cost": offer.cost, "save_rate": rate},
    )


def best_offer(score: CustomerScore, contact: Contact, policy: ActionPolicy) -> Proposal | None:
    """The fallback rule, without a treatment-effect model: the eligible offer with the
    largest P(churn) x value x constant save rate - cost, if positive."""
    best: Proposal | None = None
    for offer in policy.offers:
        if not _eligible(offer, contact):
            continue
        net, proposal = _by_save_rate(score, contact, policy, offer)
        if net > 0 and (best is None or net > best.expected_value):
            best = proposal
    return best


def effect_in_words(action: str, reduction: float, horizon_days: int) -> str:
    """What the model expects the action to do, for the agent who reads it."""
    points = abs(reduction) * 100
    window = f"the chance of leaving within {horizon_days} days"
    if reduction >= 0:
        return f"{action} is estimated to cut {window} by {points:.1f} points"
    return (
        f"{action} is estimated to raise {window} by {points:.1f} points "
        "(contact would push this customer away)"
    )


def retention_options(
    score: CustomerScore, contact: Contact, policy: ActionPolicy, now: datetime
) -> list[Proposal]:
    """Every eligible retention action valued by its estimated effect: reduction of the
    churn probability x customer value - cost (negative values included: the caller
    decides). Without effect estimates, valued by the constant save rates."""
    effects = score.effects
    if effects is None:
        return _fallback_options(score, contact, policy, now)
    value = customer_value(score)
    options = []
    for offer in policy.offers:
        if not _eligible(offer, contact) or offer.id not in effects.reduction:
            continue
        reduction = effects.reduction[offer.id]
        options.append(
            Proposal(
                "retention_offer",
                round(reduction * value - offer.cost, 2),
                tuple(offer.channels),
                f"{effect_in_words(offer.id, reduction, effects.horizon_days)}: "
                f"{reduction:.1%} x {value_words(score)} - cost {offer.cost:.0f} "
                f"({effects.model})",
                {"offer_id": offer.id, "cost": offer.cost, "estimated_effect": round(reduction, 5)},
            )
        )
    rule = policy.callbacks
    if "callback" in effects.reduction and is_valuable(contact, value, policy):
        reduction = effects.reduction["callback"]
        urgent = score.risk_band == "high"
        options.append(
            Proposal(
                "callback",
                round(reduction * value - rule.cost, 2),
                ("phone",),
                f"{effect_in_words('an account-manager call', reduction, effects.horizon_days)}: "
                f"{reduction:.1%} x {value_words(score)} - cost {rule.cost:.0f} "
                f"({effects.model})",
                {"cost": rule.cost, "estimated_effect": round(reduction, 5)},
                priority=round(reduction * value, 2),
                due_at=now + timedelta(hours=rule.urgent_hours if urgent else rule.normal_hours),
            )
        )
    return options


def _fallback_options(
    score: CustomerScore, contact: Contact, policy: ActionPolicy, now: datetime
) -> list[Proposal]:
    """Without a treatment-effect model: each eligible offer and, for a valuable customer,
    a call, valued by the constant save rates (what exploration draws from)."""
    value = customer_value(score)
    at_stake = score.churn_probability * value
    options = [
        _by_save_rate(score, contact, policy, offer)[1]
        for offer in policy.offers
        if _eligible(offer, contact)
    ]
    rule = policy.callbacks
    if is_valuable(contact, value, policy):
        options.append(
            Proposal(
                "callback",
                round(at_stake * rule.save_rate - rule.cost, 2),
                ("phone",),
                f"an account-manager call: risk {score.churn_probability:.1%} x "
                f"{value_words(score)} x save rate {rule.save_rate:.0%} - cost "
                f"{rule.cost:.0f} (constant save rate)",
                {"cost": rule.cost},
                priority=round(at_stake, 2),
                due_at=now + timedelta(hours=rule.normal_hours),
            )
        )
    return options


def best_retention(
    score: CustomerScore,
    contact: Contact,
    policy: ActionPolicy,
    now: datetime,
    options: list[Proposal] | None = None,
) -> Proposal | None:
    """The retention action of largest positive incremental value; None when no action is
    worth its cost, or every one would push the customer away. `options`: the customer's
    `retention_options`, when the caller already has them."""
    if options is None:
        options = retention_options(score, contact, policy, now)
    options = [p for p in options if p.expected_value > 0]
    return max(options, key=lambda p: p.expected_value, default=None)


def is_valuable(contact: Contact, value: float, policy: ActionPolicy) -> bool:
    """Worth an account manager's time: an enterprise, a customer who already has an account
    manager, or one whose value (`customer_value`) reaches the callback threshold. Each
    alone is enough."""
    return (
        contact.segment == "enterprise"
        or contact.has_account_manager
        or value >= policy.callbacks.min_value
    )


def _drivers(score: CustomerScore, features: Sequence[str]) -> list[str]:
    return [r.feature for r in score.reasons if r.feature in features]


def callback(
    score: CustomerScore, contact: Contact, policy: ActionPolicy, now: datetime
) -> Proposal | None:
    """The fallback rule, without a treatment-effect model: an account-manager call for
    valuable customers whose risk comes from complaints, or from a contract ending (the
    renewal call that goes with the offer)."""
    rule = policy.callbacks
    value = customer_value(score)
    complaints = _drivers(score, rule.complaint_features)
    renewal = _drivers(score, rule.renewal_features)
    eligible = (
        is_valuable(contact, value, policy) and score.churn_probability >= rule.min_probability
    )
    if not (eligible and (complaints or renewal)):
        return None
    net = score.churn_probability * value * rule.save_rate - rule.cost
    if net <= 0:
        return None
    urgent = score.risk_band == "high"
    due = now + timedelta(hours=rule.urgent_hours if urgent else rule.normal_hours)
    why = (
        f"complaint-driven risk ({', '.join(complaints)})"
        if complaints
        else f"contract ending ({', '.join(renewal)}): a renewal call with the offer"
    )
    return Proposal(
        "callback",
        round(net, 2),
        ("phone",),
        f"{why}: risk {score.churn_probability:.1%} x {value_words(score)} x save rate "
        f"{rule.save_rate:.0%} - cost {rule.cost:.0f}",
        {"drivers": complaints or renewal, "cost": rule.cost, "renewal": not complaints},
        priority=round(score.churn_probability * value, 2),
        due_at=due,
    )


def renewal_call(
    score: CustomerScore,
    contact: Contact,
    policy: ActionPolicy,
    now: datetime,
    options: Sequence[Proposal],
) -> Proposal | None:
    """With a treatment-effect model: the account-manager call that goes with a contract-end
    offer for a valuable customer, when its own estimated value is positive (the guides
    pair the exclusive offer with the call)."""
    rule = policy.callbacks
    renewal = _drivers(score, rule.renewal_features)
    call = next((o for o in options if o.action_type == "callback"), None)
    if not renewal or call is None or call.expected_value <= 0:
        return None
    if score.churn_probability < rule.min_probability:
        return None
    return Proposal(
        call.action_type,
        call.expected_value,
        call.channels,
        f"contract ending ({', '.join(renewal)}): a renewal call with the offer; {call.reason}",
        {**call.details, "drivers": renewal, "renewal": True},
        priority=call.priority,
        due_at=call.due_at,
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
    score: CustomerScore,
    contact: Contact,
    policy: ActionPolicy,
    now: datetime,
    event_id: str,
    severity: str = "major",
    cared_for: bool = False,
) -> Proposal | None:
    """An urgent call after an outage: an account manager's for a valuable customer at high
    risk, or a service call for a customer in care (older, large print) when the outage is
    severe enough (`outages.care_call_severities`): a service duty, whatever the value."""
    value = customer_value(score)
    at_risk = score.risk_band == "high" and is_valuable(contact, value, policy)
    duty = cared_for and severity in policy.outages.care_call_severities
    if not (at_risk or duty):
        return None
    why = (
        f"high-risk customer ({score.churn_probability:.1%}, {value_words(score)})"
        if at_risk
        else "a customer in care (service duty)"
    )
    return Proposal(
        "callback",
        0.0,
        ("phone",),
        f"{why} hit by outage {event_id}",
        {"event_id": event_id, "service_duty": duty and not at_risk},
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
    options: list[Proposal] | None = None,
) -> list[Proposal]:
    """Every action worth taking for this customer now, best expected value first."""
    if score.effects is not None:
        if options is None:
            options = retention_options(score, contact, policy, now)
        best = best_retention(score, contact, policy, now, options)
        retention = [best]
        if best is not None and best.action_type == "retention_offer":
            retention.append(renewal_call(score, contact, policy, now, options))
    else:
        retention = [best_offer(score, contact, policy), callback(score, contact, policy, now)]
    found = [*retention, *(seasonal_package(c, policy, now) for c in candidates)]
    return sorted((p for p in found if p), key=lambda p: p.expected_value, reverse=True)
