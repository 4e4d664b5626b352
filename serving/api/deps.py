"""What routes declare they need, as `Annotated` aliases: the caller's roles, the
settings, the scorer and the decision service being served, the metrics.

Every dependency here is `async def`: they only read the app's state, and FastAPI runs a
plain `def` dependency in its thread pool, a hop that costs more than a cached score."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader

from serving.action_log.log import ActionLog
from serving.api.bounds import RateLimiter
from serving.api.errors import ApiError
from serving.api.logs import REQUEST_ID
from serving.assist import AssistIndex
from serving.audit import AuditRow, AuditTrail
from serving.auth import Caller
from serving.decisions import DecisionService
from serving.metrics import ApiMetrics
from serving.scoring import Scorer
from serving.settings import ServingSettings, TimeWindow
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


async def assist_index(request: Request) -> AssistIndex | None:
    """Tickets and cell status for agents on a contact; None where the app has no index."""
    index: AssistIndex | None = getattr(request.app.state, "assist", None)
    return index


StateDep = Annotated[ServingState, Depends(serving_state)]
AssistDep = Annotated[AssistIndex | None, Depends(assist_index)]
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


# declared in OpenAPI as the API's security scheme; `Authorization: Bearer <key>` works too
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key with the role.")


def role(name: str) -> Callable[..., Awaitable[frozenset[str]]]:
    """A dependency admitting callers whose API key has `name` (or admin) among its roles."""

    async def check(
        request: Request, state: StateDep, presented: Annotated[str | None, Security(API_KEY)]
    ) -> frozenset[str]:
        bearer = request.headers.get("authorization", "")
        if not presented and bearer.lower().startswith("bearer "):
            presented = bearer[7:].strip()
        caller = state.keys.caller(presented)
        if caller is None:
            raise ApiError(401, "unauthenticated", "a valid X-API-Key header is required")
        limiter: RateLimiter | None = request.app.state.rate_limiter
        if limiter is not None:
            limiter.check(caller.name)
        if name not in caller.roles and "admin" not in caller.roles:
            raise ApiError(403, "forbidden", f"this key lacks the {name!r} role")
        request.state.caller = caller  # for the audit trail
        return caller.roles

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


def check_instant(
    value: datetime | None, field: str, earliest: datetime, latest: datetime, why: str
) -> None:
    """422 naming the field when an instant falls outside [earliest, latest]: a year 9999
    or 0001 is a caller's mistake, refused before anything computes with it."""
    if value is None or earliest <= value <= latest:
        return
    raise RequestValidationError(
        [
            {
                "loc": ("body", *field.split(".")),
                "msg": f"{value.isoformat()} is outside {earliest:%Y-%m-%d} .. "
                f"{latest:%Y-%m-%d} ({why})",
                "type": "value_error",
            }
        ]
    )


def check_scoring_time(at: datetime | None, now: datetime, window: TimeWindow) -> None:
    check_instant(
        at,
        "context.timestamp",
        now - timedelta(days=window.past_days),
        now + timedelta(days=window.future_days),
        f"scoring times within {window.past_days} days back and {window.future_days} ahead",
    )


def check_outage_times(
    start: datetime, expected_end: datetime | None, now: datetime, window: TimeWindow
) -> None:
    check_instant(
        start,
        "start",
        now - timedelta(days=window.outage_past_days),
        now + timedelta(days=window.outage_lead_days),
        f"outages reported within {window.outage_past_days} days of their start, "
        f"announced at most {window.outage_lead_days} days ahead",
    )
    check_instant(
        expected_end,
        "expected_end",
        start,
        start + timedelta(days=window.outage_max_days),
        f"an expected end within {window.outage_max_days} days of the start",
    )


def audited(request: Request, customer_ids: Sequence[str | None], status: int = 200) -> None:
    """Put on the audit trail that this request's caller read or acted on the customers
    (None: a list or an event, not one customer)."""
    trail: AuditTrail | None = getattr(request.app.state, "audit", None)
    caller: Caller | None = getattr(request.state, "caller", None)
    if trail is None or caller is None:
        return
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    now = datetime.now(UTC)
    trail.add(
        AuditRow(
            now,
            caller.name,
            "+".join(sorted(caller.roles)),
            request.method,
            str(path)[:120],
            customer_id,
            status,
            REQUEST_ID.get(),
        )
        for customer_id in dict.fromkeys(customer_ids)
    )
