"""The scoring API (FastAPI).

Versioned routes under /v1, API keys with roles, one error shape for every failure:
`{"error": {"code": ..., "message": ..., "fields": [...]}}` with a stable `code`.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from serving.actions import ActionLog, TransitionError
from serving.auth import ApiKeys
from serving.contact import Verdict
from serving.delivery import DeliveryWorker, open_sink
from serving.engine import ActionEngine, CallbackPromoter, DecisionPolicy, OutageIndexError
from serving.metrics import ApiMetrics
from serving.policy import Proposal
from serving.scoring import CustomerScore, ModelLoadError, Scorer
from serving.settings import ServingSettings

log = logging.getLogger("retain.serving")
INLINE_CUSTOMERS = 8  # a /v1/score this small runs on the event loop
CustomerId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


class ApiError(HTTPException):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.code = code


class RequestContext(BaseModel):
    channel: Literal["call_centre", "retail", "app", "web", "crm_batch"] | None = None
    timestamp: datetime | None = Field(
        None, description="When to score (timezone-aware); default: now."
    )


class ScoreRequest(BaseModel):
    customer_ids: list[CustomerId] = Field(min_length=1, description="1 to 1,000 customer ids.")
    context: RequestContext = RequestContext()


class ReasonOut(BaseModel):
    feature: str
    text: str
    value: Any
    contribution: float


class SuppressionOut(BaseModel):
    code: str
    message: str
    channel: str | None = None


class VerdictOut(BaseModel):
    allowed: bool
    channel: str | None
    send_after: datetime | None
    suppressions: list[SuppressionOut]


class ActionOut(BaseModel):
    action_type: str
    expected_value: float
    reason: str
    details: dict[str, Any]
    priority: float
    due_at: datetime | None
    verdict: VerdictOut


class ScoreOut(BaseModel):
    customer_id: str
    churn_probability: float
    risk_band: Literal["high", "medium", "low"]
    reasons: list[ReasonOut]
    actions: list[ActionOut]


class ItemError(BaseModel):
    code: str
    message: str


class ItemErrorOut(BaseModel):
    customer_id: str
    error: ItemError


class ModelOut(BaseModel):
    name: str
    version: str
    run_id: str
    feature_service: str
    loaded_at: datetime
    reload_error: str | None = Field(
        None, description="Why a newer champion is not served yet (the old one still is)."
    )


class ScoreResponse(BaseModel):
    model: ModelOut
    scored_at: datetime
    results: list[ScoreOut | ItemErrorOut]


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


class DecideOut(BaseModel):
    customer_id: str
    churn_probability: float
    risk_band: Literal["high", "medium", "low"]
    reasons: list[ReasonOut]
    actions: list[ActionRecordOut]


class DecideResponse(BaseModel):
    model: ModelOut
    decided_at: datetime
    results: list[DecideOut | ItemErrorOut]


class OutageEvent(BaseModel):
    event_id: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:\-]+$")]
    sites: list[CustomerId] = Field(min_length=1, max_length=10_000)
    start: datetime
    expected_end: datetime | None = None
    severity: Literal["minor", "major", "critical"]


class OutageOut(BaseModel):
    event_id: str
    duplicate: bool = Field(description="The event was posted before: nobody is notified again.")
    affected: int
    notified: int
    deferred: int
    callbacks: int
    unreachable: int
    already_notified: int


class OutcomeIn(BaseModel):
    outcome: Literal["accepted", "declined", "no_answer", "delivered", "failed"]


@dataclass
class ServingState:
    """What the app serves; `scorer` is None until a model loads (see /readyz)."""

    keys: ApiKeys
    scorer: Scorer | None
    load_error: str | None = None
    engine: ActionEngine | None = None
    reload_error: str | None = None  # a newer champion that could not be loaded
    action_log: ActionLog | None = None  # open even while no model is: delivery goes on
    engine_factory: Callable[[Scorer], ActionEngine] | None = None

    def serve(self, scorer: Scorer) -> None:
        """Start serving `scorer` (a reference swap: requests in flight keep theirs)."""
        if self.engine is None and self.engine_factory is not None:
            self.engine = self.engine_factory(scorer)
        elif self.engine is not None:
            self.engine.scorer = scorer
        self.scorer = scorer


def _error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None):  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status)


def create_app(
    settings: ServingSettings,
    load_state: Callable[[], ServingState],
    start_watching: Callable[[ServingState], Any] | None = None,
    risk_lists: Path = Path("risk_lists"),
) -> FastAPI:
    """The API; `load_state` runs at start-up (keys, champion model, feature store);
    `start_watching` starts following the champion alias (`serving.reload`); `risk_lists`
    holds `retain daily`'s lists, served at /risk-list."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        app.state.serving = load_state()
        action_log = app.state.serving.action_log
        worker = None
        if action_log is not None and settings.delivery.enabled:
            sink = open_sink(settings.delivery)
            worker = DeliveryWorker(action_log, sink, settings.delivery).start()
        watcher = start_watching(app.state.serving) if start_watching else None
        promoter = None
        if action_log is not None:
            promoter = CallbackPromoter(
                lambda: app.state.serving.engine, settings.actions.callbacks.promote_interval_s
            ).start()
        # Everything loaded so far (MLflow, Feast, the model) lives as long as the process:
        # out of the garbage collector's sight, a full collection no longer walks it in
        # the middle of a request (the largest part of the tail latency otherwise).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()  # what this app held may be collected once it is gone
        if watcher is not None:
            watcher.stop()
        if promoter is not None:
            promoter.stop()
        if worker is not None:
            worker.stop()

    app = FastAPI(
        title="retain scoring API",
        version="1",
        description="Churn risk, reasons and proactive actions for CRM systems.",
        lifespan=lifespan,
    )

    fallback_policy = DecisionPolicy(settings)  # until an engine exists
    metrics = ApiMetrics()
    metrics.install(app)
    app.state.metrics = metrics

    def state(request: Request) -> ServingState:
        return request.app.state.serving  # type: ignore[no-any-return]

    def require(role: str) -> Callable[..., Awaitable[frozenset[str]]]:
        # async: a check this small must not hop to the thread pool
        async def check(request: Request) -> frozenset[str]:
            presented = request.headers.get("x-api-key")
            bearer = request.headers.get("authorization", "")
            if not presented and bearer.lower().startswith("bearer "):
                presented = bearer[7:].strip()
            roles = state(request).keys.roles(presented)
            if roles is None:
                raise ApiError(401, "unauthenticated", "a valid X-API-Key header is required")
            if role not in roles and "admin" not in roles:
                raise ApiError(403, "forbidden", f"this key lacks the {role!r} role")
            return roles

        return check

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return _error(error.status_code, error.code, str(error.detail))  # type: ignore[no-any-return]

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return _error(error.status_code, code, str(error.detail))  # type: ignore[no-any-return]

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")  # details stay in the server log
        return _error(500, "internal_error", "internal error; see the server log")  # type: ignore[no-any-return]

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _error(422, "invalid_request", message, fields)  # type: ignore[no-any-return]

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz(request: Request) -> JSONResponse:
        """Ready when a model and the feature store are loaded."""
        current = state(request)
        if current.scorer is None:
            return _error(503, "not_ready", current.load_error or "no model loaded")  # type: ignore[no-any-return]
        loaded = current.scorer.loaded
        body = {"status": "ready", "model": f"{loaded.name} v{loaded.version}"}
        if current.reload_error:
            body["reload_error"] = current.reload_error
        return JSONResponse(body)

    def _scorer(request: Request) -> Scorer:
        scorer = state(request).scorer
        if scorer is None:
            raise ApiError(503, "model_unavailable", state(request).load_error or "no model")
        return scorer

    def _model_out(scorer: Scorer) -> ModelOut:
        loaded = scorer.loaded
        metrics.serving(loaded.name, loaded.version)
        return ModelOut(
            name=loaded.name,
            version=loaded.version,
            run_id=loaded.run_id,
            feature_service=loaded.feature_service,
            loaded_at=loaded.loaded_at.to_pydatetime(),
        )

    @app.get(
        "/v1/model", response_model=ModelOut, tags=["model"], dependencies=[Depends(require("crm"))]
    )
    def model(request: Request) -> ModelOut:
        """The champion being served: version, run and FeatureService."""
        out = _model_out(_scorer(request))
        out.reload_error = state(request).reload_error
        return out

    @app.post(
        "/v1/score",
        response_model=ScoreResponse,
        tags=["scoring"],
        dependencies=[Depends(require("crm"))],
    )
    async def score(request: Request, body: ScoreRequest) -> ScoreResponse:
        """Risk, band and top reasons per customer, from live features. Sends nothing."""
        _check_size(body.customer_ids)
        at = pd.Timestamp(body.context.timestamp or pd.Timestamp.now(tz="UTC"))
        if at.tzinfo is None:
            raise ApiError(422, "invalid_request", "context.timestamp: needs a timezone")
        scorer, engine = _scorer(request), state(request).engine
        # A few customers read from the local stores cost well under a millisecond: on the
        # event loop, a thread-pool hop would only lengthen them (parallelism comes from
        # worker processes). Larger batches, Feast's path or a networked action log might
        # block the loop for long: those go to the thread pool.
        local_log = engine is None or engine.log.engine.dialect.name == "sqlite"
        if len(body.customer_ids) <= INLINE_CUSTOMERS and scorer.direct and local_log:
            return _score(scorer, engine, body.customer_ids, at)
        return await run_in_threadpool(_score, scorer, engine, body.customer_ids, at)

    def _score(
        scorer: Scorer, engine: ActionEngine | None, ids: list[str], at: pd.Timestamp
    ) -> ScoreResponse:
        now = at.tz_convert("UTC").to_pydatetime()
        scored = scorer.score(ids, at.tz_convert("UTC"))
        policy = engine.policy if engine else fallback_policy
        proposals = {
            item.customer_id: policy.proposals(item, now)
            for item in scored
            if isinstance(item, CustomerScore)
        }
        # the contact verdicts need the history of those with something to propose only
        wanted = [customer for customer, proposed in proposals.items() if proposed]
        history = engine.log.history(wanted, now, engine.history_days) if engine and wanted else {}
        results: list[ScoreOut | ItemErrorOut] = []
        for item in scored:
            if isinstance(item, CustomerScore):
                planned = policy.check_all(
                    item, proposals[item.customer_id], history.get(item.customer_id, []), now
                )
                results.append(
                    ScoreOut(
                        customer_id=item.customer_id,
                        churn_probability=round(item.churn_probability, 6),
                        risk_band=item.risk_band,  # type: ignore[arg-type]
                        reasons=[ReasonOut(**vars(r)) for r in item.reasons],
                        actions=[_action_out(p, v) for p, v in planned],
                    )
                )
            else:
                results.append(_unknown(item.customer_id))
        return ScoreResponse(
            model=_model_out(scorer), scored_at=at.to_pydatetime(), results=results
        )

    def _engine(request: Request) -> ActionEngine:
        engine = state(request).engine
        if engine is None:
            raise ApiError(503, "model_unavailable", state(request).load_error or "no model")
        return engine

    def _check_size(ids: list[str]) -> None:
        if len(ids) > settings.max_customers:
            raise ApiError(
                413,
                "too_many_customers",
                f"{len(ids)} customer ids; at most {settings.max_customers} per request",
            )

    @app.post(
        "/v1/decide",
        response_model=DecideResponse,
        tags=["actions"],
        dependencies=[Depends(require("crm"))],
    )
    def decide(request: Request, body: ScoreRequest) -> DecideResponse:
        """Score, choose actions, record them and queue them for delivery.

        Idempotent per customer, action type and day: a repeated call returns the action
        already made (`existing: true`) instead of queueing another.
        """
        _check_size(body.customer_ids)
        engine = _engine(request)
        scorer = engine.scorer  # one model for the whole request, even across a reload
        now = pd.Timestamp.now(tz="UTC").to_pydatetime()
        results: list[DecideOut | ItemErrorOut] = []
        decided = engine.decide(body.customer_ids, now, scorer)
        for item in decided:
            for row, created in item.actions:
                if created:
                    metrics.actions.labels(row["action_type"], row["status"]).inc()
        for item in decided:
            if isinstance(item.score, CustomerScore):
                results.append(
                    DecideOut(
                        customer_id=item.score.customer_id,
                        churn_probability=round(item.score.churn_probability, 6),
                        risk_band=item.score.risk_band,  # type: ignore[arg-type]
                        reasons=[ReasonOut(**vars(r)) for r in item.score.reasons],
                        actions=[_record(row, created) for row, created in item.actions],
                    )
                )
            else:
                results.append(_unknown(item.score.customer_id))
        return DecideResponse(model=_model_out(scorer), decided_at=now, results=results)

    @app.post(
        "/v1/events/outage",
        response_model=OutageOut,
        tags=["operations"],
        dependencies=[Depends(require("ops"))],
    )
    def outage(request: Request, body: OutageEvent) -> OutageOut:
        """Notify every active customer homed on the sites; callbacks for the valuable at risk.

        Outage notices are service messages: no marketing consent or frequency cap applies;
        quiet hours defer them unless the outage is critical. Posting the same event again
        notifies nobody twice.
        """
        for name, moment in (("start", body.start), ("expected_end", body.expected_end)):
            if moment is not None and moment.tzinfo is None:
                raise ApiError(422, "invalid_request", f"{name}: needs a timezone")
        if body.expected_end is not None and body.expected_end < body.start:
            raise ApiError(422, "invalid_request", "expected_end: before start")
        now = pd.Timestamp.now(tz="UTC").to_pydatetime()
        try:
            counts, duplicate = _engine(request).outage(
                body.event_id, body.sites, body.start, body.expected_end, body.severity, now
            )
        except OutageIndexError as error:
            raise ApiError(503, "outage_index_unavailable", str(error)) from error
        return OutageOut(event_id=body.event_id, duplicate=duplicate, **counts)

    @app.post(
        "/v1/actions/{action_id}/outcome",
        response_model=ActionRecordOut,
        tags=["actions"],
        dependencies=[Depends(require("crm"))],
    )
    def outcome(request: Request, action_id: str, body: OutcomeIn) -> ActionRecordOut:
        """What happened: accepted, declined, no_answer, delivered or failed."""
        now = pd.Timestamp.now(tz="UTC").to_pydatetime()
        try:
            row = _engine(request).log.set_outcome(action_id, body.outcome, now)
        except TransitionError as error:
            raise ApiError(409, "invalid_transition", str(error)) from error
        if row is None:
            raise ApiError(404, "action_not_found", f"no action {action_id}")
        return _record(row, False)

    @app.get(
        "/risk-list",
        response_class=HTMLResponse,
        tags=["marketing"],
        dependencies=[Depends(require("marketing"))],
    )
    def risk_list(
        day: Annotated[
            date | None, Query(alias="date", description="The list's day (default: the latest).")
        ] = None,
        kind: Annotated[Literal["html", "csv"], Query(alias="format")] = "html",
    ) -> Response:
        """The daily risk list `retain daily` published: the report page, or the list as CSV."""
        published = sorted(
            p.name for p in risk_lists.glob("????-??-??") if (p / "report.html").exists()
        )
        if not published:
            raise ApiError(404, "no_risk_list", "no risk list yet: run `retain daily`")
        wanted = day.isoformat() if day else published[-1]
        if wanted not in published:
            raise ApiError(
                404,
                "no_risk_list",
                f"no risk list for {wanted}; lists exist for {', '.join(published[-7:])}"
                + (" (latest 7)" if len(published) > 7 else ""),
            )
        # open the published version once: a re-publication swaps the link and removes
        # the old version, and an open file is read whole regardless
        name = "risk_list.csv" if kind == "csv" else "report.html"
        handle = open(os.path.realpath(risk_lists / wanted / name), "rb")  # noqa: SIM115
        headers = (
            {"Content-Disposition": f'attachment; filename="risk_list_{wanted}.csv"'}
            if kind == "csv"
            else {}
        )
        return StreamingResponse(
            iter(lambda: handle.read(1 << 16), b""),
            media_type="text/csv" if kind == "csv" else "text/html; charset=utf-8",
            headers=headers,
            background=BackgroundTask(handle.close),
        )

    @app.get(
        "/v1/customers/{customer_id}/actions",
        response_model=list[ActionRecordOut],
        tags=["actions"],
        dependencies=[Depends(require("crm"))],
    )
    def customer_actions(request: Request, customer_id: CustomerId) -> list[ActionRecordOut]:
        """Every action for the customer, newest first, suppressions included."""
        return [_record(r, False) for r in _engine(request).log.customer_actions(customer_id)]

    return app


def _unknown(customer_id: str) -> ItemErrorOut:
    return ItemErrorOut(
        customer_id=customer_id,
        error=ItemError(
            code="unknown_customer", message="no features for this customer in the online store"
        ),
    )


def _record(row: dict[str, Any], created: bool) -> ActionRecordOut:
    return ActionRecordOut(
        **{k: row[k] for k in ActionRecordOut.model_fields if k in row and k != "existing"},
        existing=not created,
    )


def _action_out(proposal: Proposal, verdict: Verdict) -> ActionOut:
    """A proposal and the contact policy's verdict on it (nothing is recorded or sent)."""
    return ActionOut(
        action_type=proposal.action_type,
        expected_value=proposal.expected_value,
        reason=proposal.reason,
        details=proposal.details,
        priority=proposal.priority,
        due_at=proposal.due_at,
        verdict=VerdictOut(
            allowed=verdict.allowed,
            channel=verdict.channel,
            send_after=verdict.send_after,
            suppressions=[SuppressionOut(**vars(x)) for x in verdict.suppressions],
        ),
    )


def load_serving_state(
    keys: ApiKeys,
    open_scorer: Callable[[], Scorer],
    action_log: ActionLog,
    engine_factory: Callable[[Scorer], ActionEngine],
) -> ServingState:
    """Keys are required; a model that fails to load leaves the API up but not ready (the
    model watcher may load one later) and the outbox still draining."""
    state = ServingState(keys, None, action_log=action_log, engine_factory=engine_factory)
    try:
        state.serve(open_scorer())
    except ModelLoadError as error:
        log.error("model not loaded: %s", error)
        state.load_error = str(error)
    return state
