"""Request and response models of the API, in families sharing their bases.

Every answer about customers carries the model that scored them (`ModelAnswer`) and one
result per customer asked for: the customer's score (`CustomerResult`) with its proposed
or recorded actions, or an error for a customer without features. Each model builds
itself from the domain types (`of`), so routes only shape what a service returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from serving.assist import Assistance, CellStatus, Ticket
from serving.decisions import Decided, Decision
from serving.domain import (
    ActionRecord,
    Band,
    CustomerScore,
    CustomerValue,
    Proposal,
    Reason,
    Suppression,
    UnknownCustomer,
    Verdict,
)
from serving.outages import Outage
from serving.scoring import LoadedModel
from serving.settings import MAX_CUSTOMERS_PER_REQUEST, ContactChannel

CustomerId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
EventId = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Outcome = Literal[
    "accepted",
    "declined",
    "no_answer",
    "delivered",
    "failed",
    "satisfied",  # a follow-up's: the customer confirmed the problem is solved ...
    "not_satisfied",  # ... or not (a second-level task opens) ...
    "unreachable",  # ... or could not be reached
]
Severity = Literal["minor", "major", "critical"]
Note = Annotated[str, Field(min_length=1, max_length=500)]
TOO_MANY = "too_many_customers"


# --- requests -----------------------------------------------------------------------------


def _text_only(value: Any) -> Any:
    """A date-time must be written out: pydantic would read a number as unix seconds, and
    `"timestamp": 0` is a caller's mistake, not 1970."""
    if isinstance(value, str | datetime):
        return value
    raise ValueError("expected an ISO 8601 date-time with a timezone, e.g. 2026-11-02T09:00:00Z")


Instant = Annotated[AwareDatetime, BeforeValidator(_text_only)]


class Request(BaseModel):
    """A request body: a field this API does not know is refused (422), not ignored (a
    misspelt `contxt` must not silently score at the wrong time)."""

    model_config = ConfigDict(extra="forbid")


class RequestContext(Request):
    channel: ContactChannel | None = None
    timestamp: Instant | None = Field(
        None, description="When to score (with a timezone); default: now."
    )


def _few_enough(value: Any) -> Any:
    """The list's length before any item is validated (pydantic's `max_length` is checked
    after the items: a million bad ids would make a million errors first)."""
    if isinstance(value, list) and len(value) > MAX_CUSTOMERS_PER_REQUEST:
        raise PydanticCustomError(  # answered 413 (serving.api.errors), as the setting's limit
            TOO_MANY,
            "{count} customer ids; at most {limit} per request",
            {"count": f"{len(value):,}", "limit": f"{MAX_CUSTOMERS_PER_REQUEST:,}"},
        )
    return value


class CustomersRequest(Request):
    customer_ids: Annotated[list[CustomerId], BeforeValidator(_few_enough)] = Field(
        min_length=1,
        max_length=MAX_CUSTOMERS_PER_REQUEST,
        description=f"1 to {MAX_CUSTOMERS_PER_REQUEST:,} customer ids.",
    )
    context: RequestContext = RequestContext()


class ScoreContext(RequestContext):
    sentiment: float | None = Field(
        None,
        ge=-1,
        le=1,
        allow_inf_nan=False,
        description="The live sentiment of the contact under way, -1 (angry) to 1, when the "
        "CRM measures it: on an agent's channel a caller below the configured threshold is "
        "routed to a senior agent.",
    )


class ScoreRequest(CustomersRequest):
    context: ScoreContext = ScoreContext()


class OutageEvent(Request):
    event_id: EventId
    sites: list[CustomerId] = Field(min_length=1, max_length=10_000)
    start: Instant
    expected_end: Instant | None = None
    severity: Severity
    kind: Literal["unplanned", "planned"] = Field(
        "unplanned", description="Planned work is announced the configured lead time ahead."
    )
    cause: Note | None = None

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Self:
        if self.expected_end is not None and self.expected_end < self.start:
            raise ValueError("expected_end: before start")
        return self


class OutcomeIn(Request):
    outcome: Outcome


class OutageConfirmIn(Request):
    expected_end: Instant | None = None
    severity: Severity | None = None


class OutageUpdateIn(Request):
    expected_end: Instant
    note: Note | None = None


class OutageEndIn(Request):
    ended_at: Instant | None = Field(None, description="Default: now.")


class TicketClosedIn(Request):
    """A service ticket the CRM closed: complaint and fault tickets get a follow-up."""

    ticket_id: CustomerId
    customer_id: CustomerId
    ticket_type: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]
    closed_at: Instant


# --- errors -------------------------------------------------------------------------------


class FieldError(BaseModel):
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable: what went wrong, for programs.")
    message: str = Field(description="For people: what went wrong and what was expected.")
    fields: list[FieldError] | None = Field(None, description="The fields a 422 refused.")
    dependency: str | None = Field(None, description="The dependency that is down (503).")


class ErrorOut(BaseModel):
    """Every error the API answers, whatever its status."""

    error: ErrorDetail


class NotReadyOut(ErrorOut):
    """/readyz when not ready: why, and each dependency's last probe."""

    dependencies: dict[str, dict[str, Any]]


_ERRORS = {
    400: "The body is not JSON (or not UTF-8).",
    401: "No valid API key (X-API-Key).",
    403: "The key lacks the role this route needs.",
    404: "No such resource.",
    408: "The request body did not arrive in time.",
    409: "The change is not allowed from the resource's current state.",
    413: "The body, or its list of customer ids, is too large.",
    422: "A field is invalid or unknown: `fields` names each one.",
    429: "Over the key's request rate: retry after `Retry-After` seconds.",
    503: "A dependency is down (`dependency` names it): retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of the errors a route can answer, in the API's one shape."""
    return {
        code: {
            "model": ErrorOut,
            "description": _ERRORS[code],
            **({"headers": _RETRY_AFTER} if code in (429, 503) else {}),
        }
        for code in codes
    }


AUTHENTICATED = (401, 403, 429)
WITH_BODY = (400, 408, 413, 422)


# --- the parts of an answer ---------------------------------------------------------------


class ReasonOut(BaseModel):
    feature: str
    text: str
    value: Any
    contribution: float

    @classmethod
    def of(cls, reason: Reason) -> Self:
        return cls(**vars(reason))


class CustomerValueOut(BaseModel):
    """What keeping the customer is worth: the expected margin over the next
    `horizon_months` (discounted) and the months it is expected to stay within them."""

    expected_margin: float
    expected_months: float
    horizon_months: int

    @classmethod
    def of(cls, value: CustomerValue) -> Self:
        return cls(
            expected_margin=round(value.expected_margin, 2),
            expected_months=round(value.expected_months, 3),
            horizon_months=value.horizon_months,
        )


class SuppressionOut(BaseModel):
    code: str
    message: str
    channel: str | None = None

    @classmethod
    def of(cls, suppression: Suppression | dict[str, Any]) -> Self:
        values = suppression if isinstance(suppression, dict) else vars(suppression)
        return cls(**values)


class VerdictOut(BaseModel):
    allowed: bool
    channel: str | None
    send_after: datetime | None
    suppressions: list[SuppressionOut]

    @classmethod
    def of(cls, verdict: Verdict) -> Self:
        return cls(
            allowed=verdict.allowed,
            channel=verdict.channel,
            send_after=verdict.send_after,
            suppressions=[SuppressionOut.of(s) for s in verdict.suppressions],
        )


class ModelOut(BaseModel):
    name: str
    version: str
    run_id: str
    feature_service: str
    loaded_at: datetime
    reload_error: str | None = Field(
        None, description="Why a newer champion is not served yet (the old one still is)."
    )

    @classmethod
    def of(cls, loaded: LoadedModel, reload_error: str | None = None) -> Self:
        return cls(
            name=loaded.name,
            version=loaded.version,
            run_id=loaded.run_id,
            feature_service=loaded.feature_service,
            loaded_at=loaded.loaded_at.to_pydatetime(),
            reload_error=reload_error,
        )


class ItemError(BaseModel):
    code: str
    message: str


class ItemErrorOut(BaseModel):
    """The result for a customer the online store has no features of."""

    customer_id: str
    error: ItemError

    @classmethod
    def unknown(cls, customer: UnknownCustomer) -> Self:
        return cls(
            customer_id=customer.customer_id,
            error=ItemError(
                code="unknown_customer",
                message="no features for this customer in the online store",
            ),
        )


class CustomerResult(BaseModel):
    """A customer's risk: the base of every per-customer answer."""

    customer_id: str
    churn_probability: float
    risk_band: Band
    reasons: list[ReasonOut]
    customer_value: CustomerValueOut | None = None

    @staticmethod
    def score_fields(score: CustomerScore) -> dict[str, Any]:
        return {
            "customer_id": score.customer_id,
            "churn_probability": round(score.churn_probability, 6),
            "risk_band": score.risk_band,
            "reasons": [ReasonOut.of(r) for r in score.reasons],
            "customer_value": CustomerValueOut.of(score.value) if score.value else None,
        }


class ModelAnswer(BaseModel):
    """The base of every answer about customers: the model that scored them."""

    model: ModelOut


# --- /v1/score ----------------------------------------------------------------------------


class ProposedActionOut(BaseModel):
    """A proposal and the contact policy's verdict on it (nothing is recorded or sent)."""

    action_type: str
    expected_value: float
    reason: str
    details: dict[str, Any]
    priority: float
    due_at: datetime | None
    verdict: VerdictOut

    @classmethod
    def of(cls, proposal: Proposal, verdict: Verdict) -> Self:
        return cls(
            action_type=proposal.action_type,
            expected_value=proposal.expected_value,
            reason=proposal.reason,
            details=proposal.details,
            priority=proposal.priority,
            due_at=proposal.due_at,
            verdict=VerdictOut.of(verdict),
        )


class TicketOut(BaseModel):
    ticket_id: str
    ticket_type: str
    channel: str
    opened_at: datetime
    closed_at: datetime | None
    state: Literal["open", "closed"]
    first_contact_resolved: bool

    @classmethod
    def of(cls, ticket: Ticket) -> Self:
        return cls(**ticket._asdict(), state="open" if ticket.closed_at is None else "closed")


class SiteOutageOut(BaseModel):
    event_id: str
    severity: str
    start: datetime
    expected_end: datetime | None


class CellStatusOut(BaseModel):
    """The home cell's latest day against its recent normal (median drop rate of the days
    before it), and the outage open on it."""

    cell_site_id: str
    state: Literal["normal", "degraded", "outage", "unknown"]
    day: datetime | None
    drop_rate: float | None
    normal_drop_rate: float | None
    load: float | None
    outage: SiteOutageOut | None

    @classmethod
    def of(cls, status: CellStatus) -> Self:
        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        outage = status.outage
        return cls(
            cell_site_id=status.cell_site_id,
            state=status.state,
            day=status.day,
            drop_rate=rounded(status.drop_rate, 5),
            normal_drop_rate=rounded(status.normal_drop_rate, 5),
            load=rounded(status.load, 4),
            outage=SiteOutageOut(**vars(outage)) if outage else None,
        )


class AssistanceOut(BaseModel):
    """For the agent on the contact: who should take it and why, the home cell's status,
    the latest tickets (newest first)."""

    route: Literal["senior_agent", "dedicated_agent", "standard"]
    script_id: str | None = Field(description="The de-escalation script (senior agent).")
    reason: str
    home_cell: CellStatusOut | None
    recent_tickets: list[TicketOut]

    @classmethod
    def of(cls, assistance: Assistance) -> Self:
        routing, home = assistance.routing, assistance.home_cell
        return cls(
            route=routing.route,
            script_id=routing.script_id,
            reason=routing.reason,
            home_cell=CellStatusOut.of(home) if home else None,
            recent_tickets=[TicketOut.of(t) for t in assistance.tickets],
        )


class ScoreOut(CustomerResult):
    actions: list[ProposedActionOut]
    assistance: AssistanceOut | None = Field(
        None, description="On an agent's channel (call centre, retail): help for the agent."
    )


class ScoreResponse(ModelAnswer):
    scored_at: datetime
    results: list[ScoreOut | ItemErrorOut]

    @staticmethod
    def result(decision: Decision, assistance: Assistance | None = None) -> ScoreOut | ItemErrorOut:
        if not isinstance(decision.score, CustomerScore):
            return ItemErrorOut.unknown(decision.score)
        return ScoreOut(
            **CustomerResult.score_fields(decision.score),
            actions=[ProposedActionOut.of(p, v) for p, v in decision.planned],
            assistance=AssistanceOut.of(assistance) if assistance else None,
        )


# --- /v1/decide and the action log --------------------------------------------------------


class ActionRecordOut(BaseModel):
    id: str
    customer_id: str
    action_type: str
    status: str
    channel: str | None
    expected_value: float | None
    priority: float | None
    due_at: datetime | None
    send_after: datetime | None
    details: dict[str, Any]
    suppressions: list[SuppressionOut]
    created_at: datetime
    updated_at: datetime
    existing: bool = Field(False, description="Made earlier today: returned, not queued again.")

    @classmethod
    def of(cls, record: ActionRecord, created: bool = False) -> Self:
        return cls(
            id=record.id,
            customer_id=record.customer_id,
            action_type=record.action_type,
            status=record.status.value,
            channel=record.channel,
            expected_value=record.expected_value,
            priority=record.priority,
            due_at=record.due_at,
            send_after=record.send_after,
            details=record.details,
            suppressions=[SuppressionOut.of(s) for s in record.suppressions],
            created_at=record.created_at,
            updated_at=record.updated_at,
            existing=not created,
        )


class DecideOut(CustomerResult):
    actions: list[ActionRecordOut]


class DecideResponse(ModelAnswer):
    decided_at: datetime
    results: list[DecideOut | ItemErrorOut]

    @staticmethod
    def result(decided: Decided) -> DecideOut | ItemErrorOut:
        if not isinstance(decided.score, CustomerScore):
            return ItemErrorOut.unknown(decided.score)
        return DecideOut(
            **CustomerResult.score_fields(decided.score),
            actions=[ActionRecordOut.of(r, created) for r, created in decided.actions],
        )


# --- /v1/events ---------------------------------------------------------------------------


class OutageOut(BaseModel):
    event_id: str
    duplicate: bool = Field(description="The event was posted before: nobody is notified again.")
    affected: int
    notified: int
    deferred: int
    callbacks: int
    unreachable: int
    already_notified: int
    state: str = Field("confirmed", description="Where the outage stands now.")


# --- outages and follow-ups ----------------------------------------------------------------


class OutageStateOut(BaseModel):
    """An outage now: where it stands in its lifecycle."""

    event_id: str
    state: Literal["suspected", "confirmed", "restored", "cancelled"]
    kind: str
    source: str
    severity: str
    sites: list[str]
    start: datetime
    expected_end: datetime | None
    detected_at: datetime
    ended_at: datetime | None
    cause: str | None

    @classmethod
    def of(cls, outage: Outage) -> Self:
        return cls(
            event_id=outage.event_id,
            state=outage.state,
            kind=outage.kind,
            source=outage.source,
            severity=outage.severity,
            sites=outage.sites,
            start=outage.start,
            expected_end=outage.expected_end,
            detected_at=outage.detected_at,
            ended_at=outage.ended_at,
            cause=outage.cause,
        )


class OutageStepOut(BaseModel):
    """A step of the lifecycle: the outage after it and what its notices came to."""

    outage: OutageStateOut
    duplicate: bool = Field(description="The step was taken before: nobody is notified again.")
    counts: dict[str, int]


class NotifyDelayOut(BaseModel):
    notified: int = Field(description="Start notices the channel took.")
    pending: int = Field(description="Start notices still waiting (quiet hours, lead time).")
    median_minutes: float | None
    p95_minutes: float | None


class OutageStepRecordOut(BaseModel):
    step: str
    state: str
    at: datetime
    note: dict[str, Any] | None


class OutageDetailOut(BaseModel):
    outage: OutageStateOut
    counts: dict[str, int] | None
    history: list[OutageStepRecordOut]
    time_to_notify: NotifyDelayOut


class FollowUpOut(BaseModel):
    ticket_id: str
    follow_up: ActionRecordOut | None
    note: str | None = Field(None, description="Why no follow-up was opened.")
