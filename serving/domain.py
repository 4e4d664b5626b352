"""The types of a decision, free of any framework: who the customer is to us, how risky,
what we propose, what the contact policy says, and what the action log holds.

The policies (`serving.policy`, `serving.contact`) and the action log speak in these
types; this module imports nothing but the standard library, so a rule can be read,
tested and reused without a model, a feature store or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

Channel = Literal["sms", "app_push", "email", "phone"]
ActionType = Literal[
    "retention_offer", "callback", "outage_notice", "seasonal_package", "follow_up", "escalation"
]
Band = Literal["high", "medium", "low"]
Arm = Literal["policy", "exploration", "control"]
# service duties, not marketing: no marketing consent or frequency cap applies to them (quiet
# hours and the do-not-call list still do)
MANDATORY: frozenset[str] = frozenset({"outage_notice", "follow_up", "escalation"})


class ActionStatus(StrEnum):
    """Where an action stands. Decided actions start queued, deferred (quiet hours),
    waiting for callback capacity or suppressed; delivery and outcomes move them on."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    WAITING_CAPACITY = "waiting_capacity"
    SUPPRESSED = "suppressed"
    CONTROL = "control"  # held out: the control group's decision, never delivered
    EXPIRED = "expired"  # waited too long for callback capacity
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELLED = "cancelled"  # withdrawn before it went out (an outage ended first)
    ESCALATED = "escalated"  # a follow-up past its deadline, pushed to a supervisor
    SATISFIED = "satisfied"  # a follow-up's outcomes: the customer confirmed ...
    NOT_SATISFIED = "not_satisfied"  # ... or not (a second-level task opens) ...
    UNREACHABLE = "unreachable"  # ... or could not be reached


@dataclass(frozen=True)
class Reason:
    """A feature pushing the risk up, worded for a call-centre agent."""

    feature: str
    text: str
    value: Any
    contribution: float  # to the log-odds


@dataclass(frozen=True)
class Contact:
    """What the action engine knows about reaching a customer (the customer_contact view)."""

    customer_id: str
    segment: str
    region: str
    cell_site_id: str
    contract_type: str
    monthly_fee: float
    has_account_manager: bool
    consent: dict[Channel, bool]  # a channel missing here is not consented to
    age_band: str | None = None
    large_print: bool = False  # asked for large-print bills and letters
    do_not_call: bool = False  # on the do-not-call list: no phone call, even a service one


@dataclass(frozen=True)
class ContactProfile:
    """How to reach a customer with care (`serving.care`): channels in order of preference,
    channels to try last, and the accessibility needs every message carries."""

    preferred: tuple[Channel, ...] = ()
    avoided: tuple[Channel, ...] = ()
    large_print: bool = False
    dedicated_agent: bool = False

    @property
    def needs(self) -> dict[str, bool]:
        """What an action's details carry for the CRM and the print shop (only what applies)."""
        found = {"large_print": self.large_print, "dedicated_agent": self.dedicated_agent}
        return {name: True for name, wanted in found.items() if wanted}


@dataclass(frozen=True)
class EffectEstimates:
    """A treatment-effect model's estimates for one customer: by action (an offer id or
    `callback`), the reduction of P(churn within `horizon_days`) the action would cause
    (negative: it would push the customer away)."""

    model: str  # name and version, e.g. "churn_effects v3"
    horizon_days: int
    reduction: dict[str, float]


@dataclass(frozen=True)
class CustomerValue:
    """What keeping the customer is worth: the expected margin over the next
    `horizon_months`, discounted, and the expected months retained within them (from the
    churn model's monthly hazards, `serving.value`)."""

    expected_margin: float
    expected_months: float
    horizon_months: int


@dataclass(frozen=True)
class CustomerScore:
    customer_id: str
    churn_probability: float
    risk_band: Band
    reasons: list[Reason]
    contact: Contact
    effects: EffectEstimates | None = None  # None: no treatment-effect model is registered
    model: str | None = None  # the churn model's name and version
    value: CustomerValue | None = None  # None only where no model scored the customer


@dataclass(frozen=True)
class UnknownCustomer:
    customer_id: str


@dataclass(frozen=True)
class Proposal:
    action_type: ActionType
    expected_value: float  # currency units, net of the action's cost
    channels: tuple[Channel, ...]  # in order of preference
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    priority: float = 0.0
    due_at: datetime | None = None


@dataclass(frozen=True)
class PackageCandidate:
    """A customer among the likeliest buyers of `package` before its surge in `region`."""

    package: str
    region: str
    week_start: datetime
    propensity: float

    @property
    def campaign(self) -> str:
        """The campaign's key: one notification per customer and campaign, ever."""
        return f"{self.package}:{self.week_start.date().isoformat()}"


@dataclass(frozen=True)
class PastAction:
    """An earlier action of the customer, as the contact policy needs it."""

    action_type: str
    channel: str | None
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Suppression:
    code: str  # no_consent, frequency_cap, offer_cooldown, duplicate_today, no_channel, ...
    message: str
    channel: Channel | None = None


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    channel: Channel | None
    send_after: datetime | None  # set when quiet hours defer the message
    suppressions: list[Suppression] = field(default_factory=list)


@dataclass(frozen=True)
class NewAction:
    """An action to record: what was decided, and whether it may go out."""

    customer_id: str
    action_type: str
    dedupe_key: str
    status: ActionStatus  # queued, deferred, waiting_capacity or suppressed
    source: str  # decide, outage, campaign
    channel: str | None = None
    expected_value: float | None = None
    priority: float | None = None
    region: str | None = None
    due_at: datetime | None = None
    send_after: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    suppressions: list[dict[str, Any]] = field(default_factory=list)
    capacity_day: str | None = None  # callbacks: book a slot of this region-day ...
    capacity: int | None = None  # ... of this many, or wait


@dataclass(frozen=True)
class ActionRecord:
    """An action as the log holds it; times are UTC."""

    id: str
    customer_id: str
    action_type: str
    dedupe_key: str
    status: ActionStatus
    source: str
    channel: str | None
    expected_value: float | None
    priority: float | None
    region: str | None
    due_at: datetime | None
    capacity_day: str | None
    send_after: datetime | None
    details: dict[str, Any]
    suppressions: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime

    def as_past(self) -> PastAction:
        return PastAction(self.action_type, self.channel, self.status, self.created_at)
