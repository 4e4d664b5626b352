"""Recovery without a restart, under traffic: a damaged online store, a stopped PostgreSQL.

While a dependency is down the API answers 503 with the dependency's name and Retry-After
(never 500), `/readyz` says which required dependency is down, and once it is back every
request succeeds again, in the same process.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select

from features.online_store import RetainSqliteOnlineStore
from features.store import open_store
from serving.action_log.database import actions
from serving.api.main import create_app
from serving.health import action_log_probe, online_store_probe
from tests.features.conftest import project_settings
from tests.postgres import fresh_database, owned_cluster
from tests.serving.conftest import KEYS, Served, active_ids, running, serving_state

CRM = {"X-API-Key": KEYS["crm"]}
PROBES = [action_log_probe(), online_store_probe()]


@dataclass
class Traffic:
    """Requests sent in a loop from a thread; every answer's (time, status, code)."""

    send: Callable[[int], requests.Response]
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)
    made: list[str] = field(default_factory=list)  # action ids the API acknowledged
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                response = self.send(i)
            except requests.RequestException:
                self.answers.append((time.monotonic(), 0, "connection"))
                continue
            code = None
            if response.status_code != 200:
                code = response.json().get("error", {}).get("code")
            elif "results" in response.json():
                self.made += [
                    a["id"] for r in response.json()["results"] for a in r.get("actions", [])
                ]
            self.answers.append((time.monotonic(), response.status_code, code))
            i += 1
            time.sleep(0.01)

    def since(self, moment: float) -> list[tuple[int, str | None]]:
        return [(status, code) for at, status, code in self.answers if at >= moment]


@contextmanager
def flowing(traffic: Traffic) -> Iterator[Traffic]:
    thread = threading.Thread(target=traffic.run, daemon=True)
    thread.start()
    try:
        yield traffic
    finally:
        traffic.stop.set()
        thread.join(timeout=30)


def wait_ready(url: str, ready: bool, within_s: float = 30) -> dict:
    deadline = time.monotonic() + within_s
    while True:
        answer = requests.get(f"{url}/readyz", timeout=10)
        if (answer.status_code == 200) == ready:
            return dict(answer.json())
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz stayed {answer.status_code}: {answer.text}")
        time.sleep(0.1)


@pytest.fixture
def private(served: Served, tmp_path: Path) -> Served:
    """A copy of the served project this test may damage."""
    old_root = served.features.repo_path.parents[1]
    root = Path(shutil.copytree(old_root, tmp_path / "project"))
    settings = served.settings.model_copy(
        update={
            "action_db_url": f"sqlite:///{tmp_path / 'actions.db'}",
            "probe_interval_s": 0.2,
        }
    )
    tracking = served.tracking.model_copy(
        update={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}"}
    )
    return replace(served, features=project_settings(root), tracking=tracking, settings=settings)


@pytest.mark.slow
def test_a_damaged_online_store_is_reported_and_read_again_once_restored(private: Served) -> None:
    store_file = RetainSqliteOnlineStore.db_path(open_store(private.features).config)
    with sqlite3.connect(store_file) as connection:  # everything in the main file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    intact = store_file.read_bytes()
    ids = active_ids(private)[:3]
    app = create_app(private.settings, lambda: serving_state(private), probes=PROBES)
    with running(app) as url:

        def score(_: int) -> requests.Response:
            body = {"customer_ids": ids}
            return requests.post(f"{url}/v1/score", json=body, headers=CRM, timeout=30)

        with flowing(Traffic(score)) as traffic:
            wait_ready(url, True)
            for damage in ("replaced", "removed"):
                if damage == "replaced":  # another file moved over it (a bad copy)
                    broken = store_file.with_suffix(".broken")
                    broken.write_bytes(os.urandom(len(intact)))
                    os.replace(broken, store_file)
                else:  # gone (a volume unmounted, a clean-up gone wrong)
                    store_file.unlink()
                down = wait_ready(url, False)
                assert down["dependencies"]["online_store"]["status"] == "down"
                assert "online_store" in down["error"]["message"]
                during = time.monotonic()
                time.sleep(0.5)
                failures = [a for a in traffic.since(during) if a[0] != 200]
                assert failures and set(failures) == {(503, "feature_store_unavailable")}
                restored = store_file.with_suffix(".restored")
                restored.write_bytes(intact)
                os.replace(restored, store_file)
                wait_ready(url, True)
                back = time.monotonic()
                time.sleep(1.0)
                after = traffic.since(back)
                assert len(after) >= 10 and all(status == 200 for status, _ in after), after
        assert 500 not in {status for _, status, _ in traffic.answers}
        retry = requests.post(
            f"{url}/v1/score", json={"customer_ids": ids}, headers=CRM, timeout=30
        )
        assert retry.status_code == 200


@pytest.mark.slow
def test_a_stopped_postgresql_is_503_with_retry_after_and_recovers_with_nothing_lost(
    served: Served,
) -> None:
    with owned_cluster() as cluster:
        database = fresh_database(cluster.url)
        settings = served.settings.model_copy(
            update={"action_db_url": database, "probe_interval_s": 0.2}
        )
        ids = active_ids(served)
        app = create_app(settings, lambda: serving_state(served, settings), probes=PROBES)
        with running(app) as url:

            def decide(i: int) -> requests.Response:
                body = {"customer_ids": [ids[i % len(ids)]]}
                return requests.post(f"{url}/v1/decide", json=body, headers=CRM, timeout=30)

            with flowing(Traffic(decide)) as traffic:
                wait_ready(url, True)
                time.sleep(0.5)
                cluster.stop("fast")
                down = wait_ready(url, False)
                assert down["dependencies"]["action_log"]["status"] == "down"
                during = time.monotonic()
                time.sleep(1.0)
                refused = requests.get(  # reads the log, whoever the customer is
                    f"{url}/v1/customers/{ids[0]}/actions", headers=CRM, timeout=30
                )
                assert refused.status_code == 503
                assert refused.headers["Retry-After"] == "5"
                assert refused.json()["error"]["dependency"] == "action_log"
                assert refused.headers.get("connection", "").lower() != "close"
                cluster.start()
                wait_ready(url, True)
                back = time.monotonic()
                time.sleep(1.5)
            failures = {a for a in traffic.since(during) if a[0] != 200}
            assert failures <= {(503, "action_log_unavailable")}
            after = traffic.since(back)
            assert len(after) >= 10 and all(status == 200 for status, _ in after), after
            assert 500 not in {status for _, status, _ in traffic.answers}
        # every action the API acknowledged is stored, once
        engine = create_engine(database)
        with engine.connect() as connection:
            stored = connection.execute(select(actions.c.id)).scalars().all()
            assert set(traffic.made) <= set(stored)
            assert connection.execute(select(func.count()).select_from(actions)).scalar() == len(
                set(stored)
            )
        engine.dispose()
