"""Build the API: the app with its routers, error shape, metrics and background work.

`create_app` takes what to serve as a function (`load_state`, run at start-up), so tests
and `retain serve` build the same app; `build_app` is the factory uvicorn calls, wiring
the configured settings, keys, model, feature store and action log.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from features.settings import FeatureSettings
from features.store import open_store
from retain.base.settings import load_settings
from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.action_log.outbox import Outbox
from serving.api.bounds import BodyLimit, RateLimiter
from serving.api.errors import install_error_handlers
from serving.api.logs import RequestId
from serving.api.routes import actions, events, operations, risk_lists, scoring
from serving.assist import AssistIndex
from serving.audit import AuditTrail
from serving.auth import load_keys
from serving.decisions import decision_service
from serving.delivery import DeliveryWorker, open_sink
from serving.effects import effect_alias_version, load_effect_champion
from serving.health import (
    Health,
    Probe,
    action_log_probe,
    files_probe,
    model_registry_probe,
    online_store_probe,
)
from serving.metrics import ApiMetrics
from serving.promoter import CallbackPromoter
from serving.reload import ModelWatcher
from serving.scoring import Scorer, alias_version, load_champion, version_key
from serving.settings import DailySettings, ServingSettings
from serving.state import ServingState, load_serving_state
from training.settings import TrainingSettings


def create_app(
    settings: ServingSettings,
    load_state: Callable[[], ServingState],
    start_watching: Callable[[ServingState], Any] | None = None,
    risk_lists_dir: Path = Path("risk_lists"),
    probes: Sequence[Probe] = (),
    assist: Callable[[], AssistIndex] | None = None,
) -> FastAPI:
    """The API; `load_state` runs at start-up (keys, champion model, feature store);
    `start_watching` starts following the champion alias (`serving.reload`);
    `risk_lists_dir` holds `retain daily`'s lists, served at /risk-list; `probes` check
    the dependencies for /readyz (`serving.health`); `assist` builds the tickets and cell
    index for agents on a contact (`serving.assist`; without it /v1/score gives no help)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = app.state.serving = load_state()
        app.state.assist = assist() if assist is not None else None
        loops: list[Any] = []
        app.state.audit = None
        if state.action_log is not None:
            app.state.audit = AuditTrail(state.action_log.engine).start()
            loops.append(app.state.audit)
            if settings.delivery.enabled:
                outbox = Outbox(state.action_log.engine)
                sink = open_sink(settings.delivery)
                loops.append(DeliveryWorker(outbox, sink, settings.delivery).start())
            interval = settings.actions.callbacks.promote_interval_s
            loops.append(CallbackPromoter(lambda: state.decisions, interval).start())
        if start_watching is not None and (watcher := start_watching(state)) is not None:
            loops.append(watcher)
        health = app.state.health = Health(lambda: state, probes, settings.probe_interval_s)
        if probes:
            health.run_once()  # ready or not from the first request on
            loops.append(health.start())
        # Everything loaded so far (MLflow, Feast, the model) lives as long as the process:
        # out of the garbage collector's sight, a full collection no longer walks it in
        # the middle of a request (the largest part of the tail latency otherwise).
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()  # what this app held may be collected once it is gone
        for loop in loops:
            loop.stop()

    app = FastAPI(
        title="retain scoring API",
        version="1",
        description="Churn risk, reasons and proactive actions for CRM systems.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.risk_lists = risk_lists_dir
    limits = settings.limits
    app.state.rate_limiter = RateLimiter(limits.rate_limit) if limits.rate_limit else None
    # inside the metrics middleware (added after it: outer), so refused bodies are counted
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s)
    app.state.metrics = ApiMetrics()
    app.state.metrics.install(app)
    app.add_middleware(RequestId)  # outermost: every line a request logs carries its id
    install_error_handlers(app)
    for router in (operations, scoring, actions, events, risk_lists):
        app.include_router(router.router)
    app.include_router(risk_lists.results_router)
    return app


def build_app() -> FastAPI:
    """The app as `retain serve` runs it under uvicorn, from configs/ and the environment.
    Keys are checked now, so a bad key stops the start."""
    settings = load_settings(ServingSettings)
    keys = load_keys(settings.api_keys_file, settings.dev_mode)
    features = load_settings(FeatureSettings)
    tracking = load_settings(TrainingSettings)

    def open_scorer() -> Scorer:
        return Scorer(
            load_champion(settings, tracking),
            open_store(features),
            settings,
            effects=load_effect_champion(settings, tracking),
        )

    def load_state() -> ServingState:
        action_log = ActionLog(open_engine(settings.action_db_url))
        return load_serving_state(
            keys,
            open_scorer,
            action_log,
            lambda scorer: decision_service(scorer, settings, action_log, features.tables_dir),
        )

    def start_watching(state: ServingState) -> ModelWatcher | None:
        if not settings.reload_interval_s:
            return None
        return ModelWatcher(
            state,
            lambda: version_key(
                alias_version(settings, tracking), effect_alias_version(settings, tracking)
            ),
            open_scorer,
            settings.reload_interval_s,
        ).start()

    probes = [
        action_log_probe(),
        online_store_probe(),
        model_registry_probe(lambda: alias_version(settings, tracking)),
        files_probe(
            "forecasts",
            [settings.actions.callbacks.capacity_file, settings.actions.packages.candidates_file],
        ),
    ]
    daily = load_settings(DailySettings)
    return create_app(
        settings,
        load_state,
        start_watching,
        daily.output_dir,
        probes,
        lambda: AssistIndex(settings.assist).load(),
    )
