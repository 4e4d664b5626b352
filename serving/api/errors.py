"""One error shape for every failure, with a stable code:
`{"error": {"code": ..., "message": ..., "fields": [...], "dependency": ...}}`.

A dependency that is down (the action log's database, the online feature store) is the
caller's cue to retry, not our bug: 503 with `<dependency>_unavailable`, the dependency's
name and `Retry-After`, one log line without a traceback, and the connection kept."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from features.online_rows import OnlineStoreUnavailable
from serving.background import UNAVAILABLE, failure_line

log = logging.getLogger("retain.serving")
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
RETRY_AFTER_S = 5  # how soon a caller may retry when a dependency is down


class ApiError(HTTPException):
    """A failure the caller can act on: an HTTP status, a stable code and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        dependency: str | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.dependency = dependency


def error_response(
    status: int,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    dependency: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    if dependency:
        body["dependency"] = dependency
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def unavailable(dependency: str, message: str) -> JSONResponse:
    """503 for a dependency that is down: a stable code naming it, and when to retry."""
    return error_response(
        503,
        f"{dependency}_unavailable",
        message,
        headers={"Retry-After": str(RETRY_AFTER_S)},
        dependency=dependency,
    )


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(
        error.status_code,
        error.code,
        str(error.detail),
        headers=error.headers,
        dependency=error.dependency,
    )


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = HTTP_CODES.get(error.status_code, "http_error")
    # Starlette's 405 carries the route's `Allow` header: pass it on
    return error_response(error.status_code, code, str(error.detail), headers=error.headers)


async def _invalid(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    for e in error.errors():
        if e["type"] == "too_many_customers":  # a size limit, as the body's own
            return error_response(413, "too_many_customers", e["msg"])
    fields = [
        {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]}
        for e in error.errors()
    ]
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, "invalid_request", message, fields)


async def _store_unavailable(_: Request, error: Exception) -> JSONResponse:
    log_failure("feature_store", error)  # where and which setting: for the operator
    return unavailable("feature_store", "the online feature store cannot be reached; retry")


async def _database_unavailable(_: Request, error: Exception) -> JSONResponse:
    log_failure("action_log", error)
    return unavailable("action_log", "the action log database cannot be reached; retry")


def log_failure(dependency: str, error: BaseException) -> None:
    """One line per failure, no traceback: a database down for 20 s under load must not
    write a traceback per request."""
    log.warning(
        "dependency unavailable", extra={"dependency": dependency, "error": failure_line(error)}
    )


async def _unexpected(_: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)  # details stay in the server log
    return error_response(500, "internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(OnlineStoreUnavailable, _store_unavailable)
    # a database that is down, restarting or out of connections: the caller may retry
    for failure in UNAVAILABLE:
        app.add_exception_handler(failure, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
