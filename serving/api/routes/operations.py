"""Liveness and readiness, for the load balancer and the orchestrator."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.api.deps import StateDep
from serving.api.errors import error_response

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep) -> JSONResponse:
    """Ready when a model and the feature store are loaded."""
    if state.scorer is None:
        return error_response(503, "not_ready", state.load_error or "no model loaded")
    loaded = state.scorer.loaded
    body = {"status": "ready", "model": f"{loaded.name} v{loaded.version}"}
    if state.reload_error:
        body["reload_error"] = state.reload_error
    return JSONResponse(body)
