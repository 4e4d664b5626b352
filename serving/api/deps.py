"""What routes declare they need, as `Annotated` aliases: the caller's roles, the
settings, the scorer and the decision service being served, the metrics.

Every dependency here is `async def`: they only read the app's state, and FastAPI runs a
plain `def` dependency in its thread pool, a hop that costs more than a cached score."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from serving.action_log.log import ActionLog
from serving.api.errors import ApiError
from serving.decisions import DecisionService
from serving.metrics import ApiMetrics
from serving.scoring import Scorer
from serving.settings import ServingSettings
from serving.state import ServingState


async def serving_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


async def serving_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


async def api_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def risk_lists_dir(request: Request) -> Path:
    folder: Path = request.app.state.risk_lists
    return folder


StateDep = Annotated[ServingState, Depends(serving_state)]
SettingsDep = Annotated[ServingSettings, Depends(serving_settings)]
MetricsDep = Annotated[ApiMetrics, Depends(api_metrics)]
RiskListsDep = Annotated[Path, Depends(risk_lists_dir)]


async def current_scorer(state: StateDep) -> Scorer:
    """The champion's scorer, one for the whole request even across a reload."""
    if state.scorer is None:
        raise ApiError(503, "model_unavailable", state.load_error or "no model loaded")
    return state.scorer


async def decision_service(state: StateDep) -> DecisionService:
    if state.decisions is None:
        raise ApiError(503, "model_unavailable", state.load_error or "no model loaded")
    return state.decisions


async def action_log(state: StateDep) -> ActionLog:
    """The action log: open even while no model is loaded."""
    if state.action_log is None:
        raise ApiError(503, "action_log_unavailable", "the action log is not open")
    return state.action_log


ScorerDep = Annotated[Scorer, Depends(current_scorer)]
DecisionsDep = Annotated[DecisionService, Depends(decision_service)]
ActionLogDep = Annotated[ActionLog, Depends(action_log)]


def role(name: str) -> Callable[[Request, ServingState], Awaitable[frozenset[str]]]:
    """A dependency admitting callers whose API key has `name` (or admin) among its roles."""

    async def check(request: Request, state: StateDep) -> frozenset[str]:
        presented = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if not presented and bearer.lower().startswith("bearer "):
            presented = bearer[7:].strip()
        roles = state.keys.roles(presented)
        if roles is None:
            raise ApiError(401, "unauthenticated", "a valid X-API-Key header is required")
        if name not in roles and "admin" not in roles:
            raise ApiError(403, "forbidden", f"this key lacks the {name!r} role")
        return roles

    return check


CrmCaller = Annotated[frozenset[str], Depends(role("crm"))]
OpsCaller = Annotated[frozenset[str], Depends(role("ops"))]
MarketingCaller = Annotated[frozenset[str], Depends(role("marketing"))]


def check_batch_size(customer_ids: list[str], settings: ServingSettings) -> None:
    """At most `max_customers` per request (413 with the limit)."""
    if len(customer_ids) > settings.max_customers:
        raise ApiError(
            413,
            "too_many_customers",
            f"{len(customer_ids)} customer ids; at most {settings.max_customers} per request",
        )
