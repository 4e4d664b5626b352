"""The control group and exploration: who gets what the policy proposes, and with what chance.

A customer's arm is a hash of the customer id and the period, so it is the same on every
path, worker and day of the period, and independent of everything the models see:

- control (`control_share`): no marketing action at all (retention offers, callbacks for
  retention, seasonal packages); the proposal is recorded, suppressed as `control_group`,
  so treated and control customers chosen by the same policy can be compared. Service
  messages (outage notices, outage callbacks) still go.
- exploration (`exploration_share`, customers at medium or high risk): one eligible
  retention action drawn at random (by a second hash) instead of the policy's choice, so
  the treatment-effect model keeps learning where the policy no longer acts.
- policy: the policy's choice.

Every marketing proposal carries its arm and the probability that this customer got this
action, which makes outcomes attributable and the models' retraining unbiased.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

from serving.domain import Arm, CustomerScore, Proposal
from serving.settings import Experiment

MARKETING = frozenset({"retention_offer", "callback", "seasonal_package"})
RETENTION = frozenset({"retention_offer", "callback"})


def unit_hash(*parts: str) -> float:
    """A uniform number in [0, 1) from text: stable across processes and machines."""
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def period_of(now: datetime, months: int) -> str:
    """The period containing `now`: blocks of `months` calendar months from January."""
    index = (now.year * 12 + now.month - 1) // months * months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def arm_of(customer_id: str, now: datetime, experiment: Experiment) -> Arm:
    u = unit_hash(experiment.salt, "arm", period_of(now, experiment.period_months), customer_id)
    if u < experiment.control_share:
        return "control"
    if u < experiment.control_share + experiment.exploration_share:
        return "exploration"
    return "policy"


def _with_arm(proposal: Proposal, arm: Arm, probability: float) -> Proposal:
    details = {**proposal.details, "arm": arm, "assignment_probability": round(probability, 6)}
    return replace(proposal, details=details)


def _same_action(a: Proposal, b: Proposal) -> bool:
    return (a.action_type, a.details.get("offer_id")) == (b.action_type, b.details.get("offer_id"))


def assign(
    score: CustomerScore,
    proposals: list[Proposal],
    options: list[Proposal],
    experiment: Experiment,
    now: datetime,
) -> list[Proposal]:
    """The proposals as this customer's arm has them, each marketing one with its arm and
    assignment probability. `options` are every eligible retention action (for exploration)."""
    arm = arm_of(score.customer_id, now, experiment)
    control, explore = experiment.control_share, experiment.exploration_share
    explores = score.risk_band != "low" and bool(options)
    policy_share = 1 - control - (explore if explores else 0.0)
    chosen = [p for p in proposals if p.action_type in RETENTION]  # two without effects
    out = []
    if arm == "exploration" and explores:
        day = now.date().isoformat()
        pick = options[
            int(unit_hash(experiment.salt, "explore", day, score.customer_id) * len(options))
        ]
        policy_sends = any(_same_action(pick, p) for p in chosen)
        probability = explore / len(options) + policy_share * policy_sends
        out.append(_with_arm(pick, "exploration", probability))
        proposals = [p for p in proposals if p.action_type not in RETENTION]
    for proposal in proposals:
        if proposal.action_type not in MARKETING:
            out.append(proposal)
        elif arm == "control":
            out.append(_with_arm(proposal, "control", control))
        elif proposal.action_type in RETENTION:
            explored = (
                explore / len(options)
                if explores and any(_same_action(o, proposal) for o in options)
                else 0.0
            )
            out.append(_with_arm(proposal, "policy", policy_share + explored))
        else:
            out.append(_with_arm(proposal, "policy", 1 - control))
    return sorted(out, key=lambda p: p.expected_value, reverse=True)


__all__ = ["MARKETING", "RETENTION", "arm_of", "assign", "period_of", "unit_hash"]
