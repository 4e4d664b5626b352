"""One error shape for every failure, with a stable code:
`{"error": {"code": ..., "message": ..., "fields": [...]}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from features.online_rows import OnlineStoreUnavailable

log = logging.getLogger("retain.serving")
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
RETRY_AFTER_S = 5  # how soon a caller may retry when a dependency is down


class ApiError(HTTPException):
    """A failure the caller can act on: an HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.code = code


def error_response(
    status: int, code: str, message: str, fields: list[dict[str, str]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status)


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error.status_code, error.code, str(error.detail))


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = HTTP_CODES.get(error.status_code, "http_error")
    return error_response(error.status_code, code, str(error.detail))


async def _invalid(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    fields = [
        {"field": ".".join(str(part) for part in e["loc"]), "message": e["msg"]}
        for e in error.errors()
    ]
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return error_response(422, "invalid_request", message, fields)


async def _store_unavailable(_: Request, error: Exception) -> JSONResponse:
    log.error("%s", error)  # where and which setting: for the operator, not the caller
    response = error_response(
        503, "feature_store_unavailable", "the online feature store cannot be reached; retry"
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _unexpected(_: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)  # details stay in the server log
    return error_response(500, "internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(OnlineStoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
