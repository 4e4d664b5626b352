"""Prometheus metrics of the API: requests, latency, served model, actions.

One registry per app (tests build many apps). Labels use the route template, never the
path, so no customer id reaches a metric. With several uvicorn workers each worker has
its own counters: scrape them per worker or run one worker per container.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "retain_http_requests", "HTTP requests", ["route", "method", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "retain_http_request_seconds",
            "Request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.actions = Counter(
            "retain_actions", "Actions recorded", ["action_type", "status"], registry=self.registry
        )
        self.model = Gauge(
            "retain_model_info", "The served model (value 1)", ["name", "version"],
            registry=self.registry,
        )  # fmt: skip

        self._served: tuple[str, str] | None = None

    def serving(self, name: str, version: str) -> None:
        """Mark the served model: 1 for it, 0 for the one before."""
        previous = self._served
        if previous is not None and previous != (name, version):
            self.model.labels(*previous).set(0)
        self.model.labels(name, version).set(1)
        self._served = (name, version)

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def measure(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            started = time.perf_counter()
            response = await call_next(request)
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.latency.labels(template).observe(time.perf_counter() - started)
            self.requests.labels(template, request.method, str(response.status_code)).inc()
            return response

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
