"""What one request may cost a worker: its body's size and arrival time, its caller's rate.

`BodyLimit` is plain ASGI middleware in front of everything else: a body whose declared
length is over the limit is refused (413) before a byte of it is read; a chunked body is
read up to the limit and refused as soon as it passes it; a body that does not arrive
within the timeout is refused (408). What passes is buffered (at most the limit) and
replayed to the app, so nothing downstream ever parses more than the limit. Those refusals
close the connection: the rest of the body was never read, so the stream cannot be reused.

`RateLimiter` is a moving window per API key and worker (the `limits` library's in-memory
storage): a runaway client is slowed to the configured rate with 429 and Retry-After while
other keys are served as before.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from serving.api.errors import ApiError

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    """Refuse request bodies over `max_bytes` (413) or slower than `timeout_s` (408)."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, 413, "body_too_large", self._too_large(f"{declared:,} bytes"))
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._read(receive)
        except TimeoutError:
            message = f"the request body did not arrive within {self.timeout_s:g} s"
            await _refuse(send, 408, "body_timeout", message)
            return
        if body is None:
            await _refuse(send, 413, "body_too_large", self._too_large("more"))
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, size: str) -> str:
        return f"the request body is {size}; at most {self.max_bytes:,} bytes are accepted"

    async def _read(self, receive: Any) -> bytes | None:
        """The whole body, or None as soon as it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the buffered body over once, then waits on the real one
    (for the disconnect a streaming response listens for)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await receive())

    return replayed


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    """The API's error shape, and the connection closed (the body was not drained)."""
    payload = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RateLimiter:
    """A moving window of `rate` (e.g. '300/second') per caller, in this worker's memory."""

    def __init__(self, rate: str) -> None:
        self.item: RateLimitItem = parse(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, caller: str) -> None:
        """Count a request of `caller`; 429 with Retry-After when over the rate."""
        if self.limiter.hit(self.item, caller):
            return
        reset = self.limiter.get_window_stats(self.item, caller).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"more than {self.item} requests for this API key; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
