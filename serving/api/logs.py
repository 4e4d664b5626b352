"""Structured logs: one JSON line per event, with its time and the request it belongs to.

The standard library's logging with a JSON formatter (no extra dependency): uvicorn's own
loggers and ours (`retain.*`) write through it, so a log shipper reads one format. A
request id (the caller's `X-Request-ID` when it is a sane token, a new one otherwise) is
set per request by `RequestId`, returned in the response header and added to every line
logged while the request runs. Customer ids and API keys are never logged: messages name
what failed, not for whom (the audit trail records who read which customer).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# LogRecord's own attributes: anything else on a record came from `extra=` and is logged
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: ts, level, logger, message, request_id, the `extra`
    fields, and an exception as its type, message and (one string) traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line["exception"] = f"{type(error).__name__}: {error}"
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's `log_config`: every logger through the JSON formatter to stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "retain": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a plain token of at most 64 characters (it goes
    into logs and headers verbatim), a new random id otherwise."""
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _TOKEN.match(text):
                return text
    return uuid.uuid4().hex


class RequestId:
    """ASGI middleware: the request's id in the logging context and the response header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("headers", []))
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
