"""Liveness and readiness, for the load balancer and the orchestrator."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serving.api.deps import StateDep
from serving.api.errors import RETRY_AFTER_S
from serving.api.schemas import NotReadyOut
from serving.health import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": NotReadyOut, "description": "Not ready."}})
def readyz(request: Request, state: StateDep) -> JSONResponse:
    """Ready when a model is loaded and every required dependency answered its last probe
    (action log, online store); the model registry and the forecast files are reported."""
    health: Health | None = getattr(request.app.state, "health", None)
    found = health.results() if health is not None else {}
    dependencies = {name: result.as_dict() for name, result in found.items()}
    down = sorted(name for name, result in found.items() if result.required and not result.ok)
    if state.scorer is None or down:
        reasons = [state.load_error or "no model loaded"] if state.scorer is None else []
        if down:
            reasons.append(f"required dependency down: {', '.join(down)}")
        return JSONResponse(
            {
                "error": {"code": "not_ready", "message": "; ".join(reasons)},
                "dependencies": dependencies,
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    loaded = state.scorer.loaded
    ready: dict[str, Any] = {"status": "ready", "model": f"{loaded.name} v{loaded.version}"}
    if state.reload_error:
        ready["reload_error"] = state.reload_error
    ready["dependencies"] = dependencies
    return JSONResponse(ready)
