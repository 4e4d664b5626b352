"""Scores with reasons and proposed actions (`/v1/score`), and the model being served."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from serving.api.deps import (
    AssistDep,
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
    ModelOut,
    ScoreRequest,
    ScoreResponse,
    error_responses,
)
from serving.assist import Assistance, AssistIndex
from serving.decisions import Decision, DecisionService
from serving.domain import CustomerScore
from serving.scoring import Scorer
from serving.settings import ServingSettings
from serving.state import ServingState

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
    body: ScoreRequest,
    _: CrmCaller,
    scorer: ScorerDep,
    decisions: DecisionsDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    state: StateDep,
    index: AssistDep,
) -> ScoreResponse:
    """Risk, band and top reasons per customer, from live features, with the actions the
    policy proposes and the contact policy's verdicts. Nothing is recorded or sent. On an
    agent's channel, help for the agent: routing, the home cell's status, recent tickets."""
    check_batch_size(body.customer_ids, settings)
    check_scoring_time(body.context.timestamp, datetime.now(UTC), settings.time_window)
    at = body.context.timestamp or datetime.now(UTC)
    ids, now = body.customer_ids, at.astimezone(UTC)
    helping = index if index is not None and index.wants(body.context.channel) else None
    work = (ids, now, scorer, decisions, helping, body.context.sentiment, state, settings)
    # A few customers read from local stores cost well under a millisecond: on the event
    # loop (parallelism comes from worker processes); anything slower goes to a thread.
    if decisions.runs_inline(len(ids), scorer):
        previews, assistance = _preview(*work)
    else:
        previews, assistance = await run_in_threadpool(_preview, *work)
    metrics.serving(scorer.loaded.name, scorer.loaded.version)
    audited(request, ids)
    return ScoreResponse(
        model=ModelOut.of(scorer.loaded),
        scored_at=at,
        results=[ScoreResponse.result(p, assistance.get(p.score.customer_id)) for p in previews],
    )


def _preview(
    ids: list[str],
    now: datetime,
    scorer: Scorer,
    decisions: DecisionService,
    index: AssistIndex | None,
    sentiment: float | None,
    state: ServingState,
    settings: ServingSettings,
) -> tuple[list[Decision], dict[str, Assistance]]:
    """The previews, and the agent's help where `index` is given (an agent's channel)."""
    previews = decisions.preview(ids, now, scorer)
    if index is None:
        return previews, {}
    scores = [p.score for p in previews if isinstance(p.score, CustomerScore)]
    return previews, index.assist(scores, sentiment, now, state.action_log, settings)
