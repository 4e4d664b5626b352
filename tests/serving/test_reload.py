"""A newly promoted champion is served without a restart; a broken one is not."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.pyfunc import PythonModel

from features.store import open_store
from serving.api.main import create_app
from serving.reload import ModelWatcher
from serving.scoring import MODEL_CALLS, Scorer, alias_version, load_champion, version_key
from serving.state import ServingState
from tests.serving.conftest import KEYS, Served, running, serving_state
from tests.serving.test_api import _known_ids
from tests.training.conftest import LABEL
from training.churn import train_churn
from training.tracking import connect, log_training_run

CRM = {"X-API-Key": KEYS["crm"]}


class NotAChurnModel(PythonModel):  # type: ignore[misc]
    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input


def _wait_for(condition: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.mark.slow
def test_the_api_follows_the_champion_alias(
    served: Served, small_training_set: pd.DataFrame, tmp_path: Path
) -> None:
    db = Path(served.tracking.tracking_uri.removeprefix("sqlite:///"))
    shutil.copy(db, tmp_path / "mlflow.db")  # a private registry: other tests keep version 1
    tracking = served.tracking.model_copy(
        update={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    )
    settings = served.settings.model_copy(
        update={"action_db_url": f"sqlite:///{tmp_path / 'actions.db'}"}
    )

    def open_scorer() -> Scorer:
        return Scorer(load_champion(settings, tracking), open_store(served.features), settings)

    def watch(state: ServingState) -> ModelWatcher:
        return ModelWatcher(
            state,
            lambda: version_key(alias_version(settings, tracking), None),  # no effect model
            open_scorer,
            0.2,
        ).start()

    app = create_app(settings, lambda: serving_state(served, settings, open_scorer), watch)
    ids = _known_ids(served, 5)
    failures: list[int] = []
    stop = threading.Event()
    with running(app) as url:

        def keep_scoring() -> None:  # requests in flight while the model is swapped
            while not stop.is_set():
                response = requests.post(
                    f"{url}/v1/score", json={"customer_ids": ids}, headers=CRM, timeout=30
                )
                if response.status_code != 200:
                    failures.append(response.status_code)

        def version() -> str:
            return requests.get(f"{url}/v1/model", headers=CRM, timeout=10).json()["version"]

        load = threading.Thread(target=keep_scoring)
        load.start()
        try:
            assert version() == "1"
            # the API process never trains; this test does, beside the server's threads, so
            # it takes the API's turn at LightGBM (serving.scoring.MODEL_CALLS)
            with MODEL_CALLS:
                retrained = train_churn(small_training_set, LABEL, tracking)
            new = log_training_run(retrained, small_training_set, tracking).version
            client = connect(tracking)
            client.set_registered_model_alias("churn", "champion", new)
            _wait_for(lambda: version() == new)

            with mlflow.start_run():  # a champion that cannot serve: not a churn model
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=NotAChurnModel(), registered_model_name="churn"
                )
            broken = str(info.registered_model_version)
            client.set_registered_model_alias("churn", "champion", broken)
            _wait_for(lambda: "reload_error" in requests.get(f"{url}/readyz", timeout=10).json())
            ready = requests.get(f"{url}/readyz", timeout=10).json()
            assert f"version {broken} not loaded, still serving {new}" in ready["reload_error"]
            model = requests.get(f"{url}/v1/model", headers=CRM, timeout=10).json()
            assert model["version"] == new and "not a churn model" in model["reload_error"]
        finally:
            stop.set()
            load.join()
    assert failures == []


def test_a_model_found_after_a_failed_start_brings_up_the_decision_service() -> None:
    """Started without a loadable champion, the API becomes fully usable once one appears."""

    class Loaded:
        version = "4"

    class FakeScorer:
        loaded = Loaded()

    from serving.auth import parse_keys

    made: list[object] = []
    state = ServingState(
        parse_keys([("k" * 20, ["crm"])], dev_mode=False),
        None,
        load_error="no champion",
        decisions_for=lambda scorer: made.append(scorer) or "service",  # type: ignore[func-returns-value,arg-type,return-value]
    )
    attempts = iter([RuntimeError("registry busy"), FakeScorer()])

    def open_scorer() -> Any:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    watcher = ModelWatcher(state, lambda: "4", open_scorer, interval_s=60)
    assert not watcher.poll_once() and "registry busy" in str(state.reload_error)
    for _ in range(10):  # a failed version is retried after a few polls, not every poll
        assert not watcher.poll_once()
    assert watcher.poll_once()
    assert state.scorer is not None and state.decisions == "service" and len(made) == 1
    assert state.reload_error is None and state.load_error is None
