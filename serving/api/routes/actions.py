"""Recorded actions: decide (`/v1/decide`), report an outcome, list a customer's actions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query, Request

from serving.action_log.log import TransitionError
from serving.api.deps import (
    ActionLogDep,
    CrmCaller,
    DecisionsDep,
    MetricsDep,
    ScorerDep,
    SettingsDep,
    audited,
    check_batch_size,
    check_scoring_time,
)
from serving.api.errors import ApiError
from serving.api.schemas import (
    AUTHENTICATED,
    WITH_BODY,
    ActionRecordOut,
    CustomerId,
    CustomersRequest,
    DecideResponse,
    ModelOut,
    OutcomeIn,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["actions"])


@router.post(
    "/decide",
    response_model=DecideResponse,
    responses=error_responses(*AUTHENTICATED, *WITH_BODY, 503),
)
def decide(
    request: Request,
    body: CustomersRequest,
    _: CrmCaller,
    scorer: ScorerDep,
    decisions: DecisionsDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> DecideResponse:
    """Score, choose actions, record them and queue them for delivery.

    Idempotent per customer, action type and day: a repeated call returns the action
    already made (`existing: true`) instead of queueing another.
    """
    check_batch_size(body.customer_ids, settings)
    now = datetime.now(UTC)
    check_scoring_time(body.context.timestamp, now, settings.time_window)
    decided = decisions.decide(body.customer_ids, now, scorer)
    audited(request, body.customer_ids)
    metrics.recorded(record for item in decided for record, created in item.actions if created)
    metrics.serving(scorer.loaded.name, scorer.loaded.version)
    return DecideResponse(
        model=ModelOut.of(scorer.loaded),
        decided_at=now,
        results=[DecideResponse.result(item) for item in decided],
    )


@router.post(
    "/actions/{action_id}/outcome",
    response_model=ActionRecordOut,
    responses=error_responses(*AUTHENTICATED, 404, 409, *WITH_BODY, 503),
)
def outcome(
    request: Request, action_id: str, body: OutcomeIn, _: CrmCaller, decisions: DecisionsDep
) -> ActionRecordOut:
    """What happened: accepted, declined, no_answer, delivered or failed; for a complaint
    follow-up satisfied, not_satisfied (a second-level task opens) or unreachable."""
    try:
        record, _second = decisions.follow_ups.record_outcome(
            action_id, body.outcome, datetime.now(UTC)
        )
    except TransitionError as error:
        raise ApiError(409, "invalid_transition", str(error)) from error
    if record is None:
        raise ApiError(404, "action_not_found", f"no action {action_id}")
    audited(request, [record.customer_id])
    return ActionRecordOut.of(record)


@router.get(
    "/follow-ups",
    response_model=list[ActionRecordOut],
    responses=error_responses(*AUTHENTICATED, 422, 503),
)
def follow_ups(
    _: CrmCaller,
    log: ActionLogDep,
    status: Literal["open", "escalated", "closed"] = "open",
    limit: int = Query(200, ge=1, le=1000),
) -> list[ActionRecordOut]:
    """Complaint follow-ups, soonest due first: still open (an overdue one is escalated by
    the service within a minute), escalated past their deadline, or closed."""
    statuses = {
        "open": ["queued", "deferred", "delivered", "no_answer"],
        "escalated": ["escalated"],
        "closed": ["satisfied", "not_satisfied", "unreachable", "cancelled"],
    }[status]
    return [ActionRecordOut.of(r, True) for r in log.follow_ups.listed(statuses, limit)]


@router.get(
    "/customers/{customer_id}/actions",
    response_model=list[ActionRecordOut],
    responses=error_responses(*AUTHENTICATED, 422, 503),
)
def customer_actions(
    request: Request, customer_id: CustomerId, _: CrmCaller, log: ActionLogDep
) -> list[ActionRecordOut]:
    """Every action for the customer, newest first, suppressions included."""
    found = [ActionRecordOut.of(record) for record in log.customer_actions(customer_id)]
    audited(request, [customer_id])
    return found
