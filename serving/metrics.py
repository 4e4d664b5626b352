"""Prometheus metrics of the API: requests, latency, served model, actions, and the
latest production-monitoring result (`retain monitor`).

One registry per app (tests build many apps). Labels use the route template, never the
path, so no customer id reaches a metric. With several uvicorn workers each worker has
its own counters: scrape them per worker or run one worker per container.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.domain import ActionRecord
from serving.monitoring_results import latest_result


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

    def recorded(self, actions: Iterable[ActionRecord]) -> None:
        """Count actions newly recorded, by type and status."""
        for action in actions:
            self.actions.labels(action.action_type, action.status.value).inc()

    def install(self, app: FastAPI) -> None:
        app.add_middleware(_Measure, metrics=self)
        risk_lists = getattr(app.state, "risk_lists", None)
        if risk_lists is not None:  # the monitoring results published beside the lists
            self.registry.register(MonitoringCollector(Path(risk_lists)))
        self.registry.register(FollowUpCollector(lambda: _follow_up_counts(app)))

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _Measure:
    """Counts and times every request by route template (a plain ASGI middleware:
    Starlette's BaseHTTPMiddleware costs more per request than scoring one customer)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()


class MonitoringCollector(Collector):
    """Gauges of the latest published monitoring result, read at each scrape (a small JSON
    file: nothing is recomputed here); none before the first `retain monitor`."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir

    def collect(self) -> Iterator[Metric]:
        result = latest_result(self.output_dir)
        if result is None:
            return
        psi = GaugeMetricFamily(
            "retain_feature_psi",
            "PSI of a feature against its training reference",
            labels=["feature"],
        )
        ks = GaugeMetricFamily(
            "retain_feature_ks",
            "KS statistic of a feature against its training reference",
            labels=["feature"],
        )
        distance = GaugeMetricFamily(
            "retain_feature_wasserstein",
            "Wasserstein distance of a feature from its training reference, over its sd",
            labels=["feature"],
        )
        missing = GaugeMetricFamily(
            "retain_feature_missing_share",
            "Share of today's customers with the feature missing",
            labels=["feature"],
        )
        for row in result["features"]:
            if row["psi"] is not None:
                psi.add_metric([row["feature"]], row["psi"])
            if row["ks"] is not None:
                ks.add_metric([row["feature"]], row["ks"])
            if row.get("wasserstein") is not None:  # results published before it have none
                distance.add_metric([row["feature"]], row["wasserstein"])
            if row.get("missing") is not None:  # results published before it have none
                missing.add_metric([row["feature"]], row["missing"])
        yield psi
        yield ks
        yield distance
        yield missing
        figures = {
            "retain_score_psi": ("PSI of the calibrated score", result["score"]["psi"]),
            "retain_expected_roc_auc": (
                "ROC-AUC expected from the scores (CBPE)",
                result["expected"]["roc_auc"],
            ),
            "retain_expected_churn_rate": (
                "Churn rate expected from the scores",
                result["expected"]["churn_rate"],
            ),
            "retain_realised_roc_auc": (
                "ROC-AUC realised on untreated customers scored a label horizon ago",
                result["realised"].get("roc_auc"),
            ),
            "retain_monitor_alerts": (
                "Thresholds crossed in the latest monitoring",
                len(result["alerts"]),
            ),
            "retain_monitor_day_timestamp_seconds": (
                "The day of the latest monitoring result (its scoring instant)",
                datetime.fromisoformat(result["at"]).timestamp(),
            ),
        }
        for name, (text, value) in figures.items():
            if value is not None:
                yield GaugeMetricFamily(name, text, value=float(value))


def _follow_up_counts(app: FastAPI) -> dict[str, int]:
    state = getattr(app.state, "serving", None)
    decisions = getattr(state, "decisions", None)
    return dict(decisions.follow_ups.last_counts) if decisions is not None else {}


class FollowUpCollector(Collector):
    """Complaint follow-ups open, overdue and escalated, as the latest escalation pass
    (every `callbacks.promote_interval_s`) counted them: a scrape queries nothing."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        found = self.counts()
        if not found:
            return
        gauge = GaugeMetricFamily(
            "retain_follow_ups", "Complaint follow-ups by state", labels=["state"]
        )
        for state, count in sorted(found.items()):
            gauge.add_metric([state], float(count))
        yield gauge
