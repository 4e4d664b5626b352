"""Scores with reasons and proposed actions (`/v1/score`), and the model being served."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from serving.api.deps import (
    CrmCaller,
    DecisionsDep,
    MetricsDep,
    ScorerDep,
    SettingsDep,
    StateDep,
    audited,
    check_batch_size,
    check_scoring_time,
)
from serving.api.schemas import (
    AUTHENTICATED,
    WITH_BODY,
    CustomersRequest,
    ModelOut,
    ScoreResponse,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.get(
    "/model",
    response_model=ModelOut,
    tags=["model"],
    responses=error_responses(*AUTHENTICATED, 503),
)
def model(_: CrmCaller, scorer: ScorerDep, state: StateDep) -> ModelOut:
    """The champion being served: version, run and FeatureService."""
    return ModelOut.of(scorer.loaded, state.reload_error)


@router.post(
    "/score",
    response_model=ScoreResponse,
    responses=error_responses(*AUTHENTICATED, *WITH_BODY, 503),
)
async def score(
    request: Request,
    body: CustomersRequest,
    _: CrmCaller,
    scorer: ScorerDep,
    decisions: DecisionsDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> ScoreResponse:
    """Risk, band and top reasons per customer, from live features, with the actions the
    policy proposes and the contact policy's verdicts. Nothing is recorded or sent."""
    check_batch_size(body.customer_ids, settings)
    check_scoring_time(body.context.timestamp, datetime.now(UTC), settings.time_window)
    at = body.context.timestamp or datetime.now(UTC)
    ids, now = body.customer_ids, at.astimezone(UTC)
    # A few customers read from local stores cost well under a millisecond: on the event
    # loop (parallelism comes from worker processes); anything slower goes to a thread.
    if decisions.runs_inline(len(ids), scorer):
        previews = decisions.preview(ids, now, scorer)
    else:
        previews = await run_in_threadpool(decisions.preview, ids, now, scorer)
    metrics.serving(scorer.loaded.name, scorer.loaded.version)
    audited(request, ids)
    return ScoreResponse(
        model=ModelOut.of(scorer.loaded),
        scored_at=at,
        results=[ScoreResponse.result(p) for p in previews],
    )
