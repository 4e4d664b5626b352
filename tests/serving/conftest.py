"""A served project: features materialized online, a champion in MLflow, a live server."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvicorn
from fastapi import FastAPI

from features.settings import FeatureSettings
from features.store import apply, materialize, open_store
from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.api.main import create_app
from serving.auth import ApiKeys, parse_keys
from serving.decisions import decision_service
from serving.scoring import Scorer, load_champion
from serving.settings import ServingSettings
from serving.state import ServingState, load_serving_state
from tests.features.conftest import AS_OF, project_settings
from tests.features.conftest import built_project as built_project  # the fixture, re-exported
from tests.postgres import fresh_database, postgres_cluster
from tests.training.conftest import LABEL
from tests.training.conftest import small_training_set as small_training_set
from training.churn import train_churn
from training.settings import TrainingSettings
from training.tracking import log_training_run, promote

KEYS = {
    "crm": "crm-test-key-0123456789",
    "ops": "ops-test-key-0123456789",
    "admin": "admin-test-key-0123456789",
    "marketing": "marketing-test-key-0123456789",
}


@dataclass(frozen=True)
class Served:
    features: FeatureSettings
    tracking: TrainingSettings
    settings: ServingSettings
    keys: ApiKeys


@pytest.fixture(scope="session")
def served(
    built_project: Path, small_training_set: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Served:
    """The 1,500-customer project, materialized, with a champion churn model."""
    root = Path(shutil.copytree(built_project, tmp_path_factory.mktemp("served") / "project"))
    features = project_settings(root)
    store = open_store(features)
    apply(store)
    materialize(store, AS_OF)
    tracking = TrainingSettings.model_validate(
        {
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_root": root / "artifacts",
            "heldout_dir": root / "heldout",
            "feature_service": "churn_v1",  # what small_training_set holds
            "params": {"max_rounds": 300, "early_stopping_rounds": 30},
        }
    )
    log_training_run(train_churn(small_training_set, LABEL, tracking), small_training_set, tracking)
    assert promote(tracking).promoted
    keys = parse_keys([(key, [role]) for role, key in KEYS.items()], dev_mode=False)
    settings = ServingSettings.model_validate(
        {
            "action_db_url": f"sqlite:///{root / 'actions' / 'actions.db'}",
            "delivery": {"file_path": root / "actions" / "delivered.jsonl", "interval_s": 0.2},
            "actions": {
                # the whole fee is margin: a kept customer is worth about 20 fees, so enough
                # of the small world's customers get an offer for the action tests
                "value": {"margin_rate": 1.0},
                "callbacks": {"capacity_file": root / "no-forecast.parquet"},
                "packages": {"candidates_file": root / "no-candidates.parquet"},
            },
            # no quiet hours: what a test queues must not depend on the hour it runs at
            "contact": {"quiet_start": "00:00", "quiet_end": "00:00"},
        }
    )
    return Served(features, tracking, settings, keys)


def active_ids(served: Served) -> list[str]:
    """Customers active at the latest feature snapshot (they have online features), sorted."""
    activity = pd.read_parquet(
        served.features.tables_dir / "customer_activity.parquet",
        columns=["customer_id", "event_timestamp"],
    )
    latest = activity["event_timestamp"] == activity["event_timestamp"].max()
    return sorted(activity.loc[latest, "customer_id"])


def open_scorer(served: Served) -> Scorer:
    return Scorer(
        load_champion(served.settings, served.tracking),
        open_store(served.features),
        served.settings,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server for `app` on loopback, in a thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def api(served: Served) -> Iterator[str]:
    """The API serving the project's champion."""
    app = create_app(
        served.settings,
        lambda: serving_state(served),
    )
    with running(app) as url:
        yield url


def serving_state(
    served: Served, settings: ServingSettings | None = None, scorer: Any = None
) -> ServingState:
    """What `retain serve` loads, for a served project (optionally other settings or a
    scorer factory)."""
    settings = settings or served.settings
    action_log = ActionLog(open_engine(settings.action_db_url))
    return load_serving_state(
        served.keys,
        scorer or (lambda: open_scorer(served)),
        action_log,
        lambda s: decision_service(s, settings, action_log, served.features.tables_dir),
    )


def not_ready_state(keys: ApiKeys, error: str) -> ServingState:
    return ServingState(keys, None, error)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL on loopback for the session (skipped where not installed)."""
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def action_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty action log database: SQLite (the default) and PostgreSQL (the scale path)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'actions.db'}"
    return fresh_database(request.getfixturevalue("postgres_server"))
