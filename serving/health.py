"""The dependencies' health, from cheap periodic probes: what `/readyz` reports.

Each probe touches its dependency the way requests do (a `SELECT 1` on the action log, a
read of an unknown customer through the online-store reader, the champion alias in the
model registry, the forecast files on disk) in a background thread, every few seconds,
so `/readyz` answers from memory and a dependency that went down or came back shows
within one interval. A required dependency that is down makes the worker not ready (the
load balancer sends its traffic elsewhere); an optional one is reported only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import text

from serving.background import BackgroundLoop, failure_line
from serving.state import ServingState

log = logging.getLogger("retain.serving")
PROBE_ID = "readiness-probe"  # a customer id no store holds: the read path without a row


@dataclass(frozen=True)
class Probe:
    """`check` raises when the dependency cannot serve; `required`: readiness needs it."""

    name: str
    required: bool
    check: Callable[[ServingState], None]


@dataclass(frozen=True)
class DependencyState:
    ok: bool
    required: bool
    checked_at: datetime
    error: str | None = None
    latency_ms: float | None = None

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "up" if self.ok else "down",
            "required": self.required,
            "checked_at": self.checked_at.isoformat(),
        }
        if self.latency_ms is not None:
            body["latency_ms"] = round(self.latency_ms, 2)
        if self.error:
            body["error"] = self.error
        return body


class Health(BackgroundLoop):
    """Runs the probes every `interval_s` seconds and keeps their last results."""

    name = "health-probes"

    def __init__(
        self, state: Callable[[], ServingState], probes: Sequence[Probe], interval_s: float
    ):
        super().__init__()
        self.state = state
        self.probes = list(probes)
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._results: dict[str, DependencyState] = {}

    def step(self) -> float:
        self.run_once()
        return self.interval_s

    def run_once(self) -> dict[str, DependencyState]:
        state = self.state()
        for probe in self.probes:
            result = run_probe(probe, state)
            previous = self.results().get(probe.name)
            if previous is not None and previous.ok != result.ok:  # one line per change
                log.warning(
                    "dependency %s",
                    "recovered" if result.ok else "down",
                    extra={"dependency": probe.name, "error": result.error},
                )
            with self._lock:
                self._results[probe.name] = result
        return self.results()

    def results(self) -> dict[str, DependencyState]:
        with self._lock:
            return dict(self._results)


def run_probe(probe: Probe, state: ServingState) -> DependencyState:
    started = time.perf_counter()
    try:
        probe.check(state)
    except Exception as error:  # any failure of a dependency is "down"
        return DependencyState(False, probe.required, datetime.now(UTC), failure_line(error))
    latency = (time.perf_counter() - started) * 1000
    return DependencyState(True, probe.required, datetime.now(UTC), latency_ms=latency)


def action_log_probe(required: bool = True) -> Probe:
    def check(state: ServingState) -> None:
        if state.action_log is None:
            raise RuntimeError("the action log is not open")
        with state.action_log.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return Probe("action_log", required, check)


def online_store_probe(required: bool = True) -> Probe:
    """A read of a customer no store holds, through the reader requests use."""

    def check(state: ServingState) -> None:
        if state.scorer is None:
            raise RuntimeError("no model loaded: the online store is not open")
        state.scorer.reader.read([PROBE_ID], pd.Timestamp.now(tz="UTC"))

    return Probe("online_store", required, check)


def model_registry_probe(alias_version: Callable[[], object], required: bool = False) -> Probe:
    """The champion alias, looked up: the registry the model watcher reloads from."""

    def check(_: ServingState) -> None:
        alias_version()

    return Probe("model_registry", required, check)


def files_probe(name: str, paths: Sequence[Path], required: bool = False) -> Probe:
    """Files the decisions read (forecasts): present and readable."""

    def check(_: ServingState) -> None:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"missing: {', '.join(missing)}")
        for path in paths:
            with path.open("rb") as handle:
                handle.read(1)

    return Probe(name, required, check)
