"""Kill -9 the server in the middle of a burst of /v1/decide calls, or of an outage's fan-out:
nothing acknowledged is lost, nothing is queued twice, and the restarted server answers with
the same actions (a retried outage finishes its notices)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from sqlalchemy import func, select

from serving.action_log.database import actions, open_engine, outage_events, outbox
from serving.action_log.log import ActionLog
from tests.serving.conftest import KEYS, Served, _free_port, active_ids
from tests.serving.test_actions import _with_proposals
from tests.serving.test_api import _known_ids


def read_ids(served: Served) -> list[str]:
    return _known_ids(served, 1000)


REPO = Path(__file__).resolve().parents[2]
CRM = {"X-API-Key": KEYS["crm"]}


def _start(served: Served, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    root = served.features.repo_path.parents[1]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "RETAIN_CONFIG_DIR": str(REPO / "configs"),
        "RETAIN_API_KEYS": ",".join(f"{key}:{role}" for role, key in KEYS.items()),
        "RETAIN_FEATURES_REPO_PATH": str(root / "features" / "repo"),
        "RETAIN_TRAINING_TRACKING_URI": served.tracking.tracking_uri,
        "RETAIN_TRAINING_ARTIFACT_ROOT": str(served.tracking.artifact_root),
        "RETAIN_SERVING_PORT": str(port),
        "RETAIN_SERVING_ACTION_DB_URL": f"sqlite:///{tmp_path / 'actions.db'}",
        "RETAIN_SERVING_DELIVERY__FILE_PATH": str(tmp_path / "delivered.jsonl"),
        "RETAIN_SERVING_CONTACT__QUIET_START": "00:00",
        "RETAIN_SERVING_CONTACT__QUIET_END": "00:00",
        "RETAIN_SERVING_ACTIONS__CALLBACKS__CAPACITY_FILE": str(tmp_path / "none.parquet"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "retain.cli", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "ab"),  # noqa: SIM115  # kept open for the child
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except requests.ConnectionError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise RuntimeError((tmp_path / "server.log").read_text()[-3000:])


@pytest.mark.slow
def test_sigkill_during_a_burst_loses_and_duplicates_nothing(
    api: str, served: Served, tmp_path: Path
) -> None:
    with_actions = _with_proposals(api, served, 10, 30)
    profile = sorted(set(read_ids(served)) - set(with_actions))
    customers = [c for pair in zip(with_actions, profile[::3], strict=False) for c in pair]
    customers += profile[1:180:3]  # 120 or so: most calls are still in flight at the kill
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start(served, tmp_path, port)
    acknowledged: dict[str, list[str]] = {}

    def decide(customer: str) -> None:
        try:
            response = requests.post(
                f"{url}/v1/decide", json={"customer_ids": [customer]}, headers=CRM, timeout=30
            )
        except requests.RequestException:
            return  # the server died under this request: the caller would retry
        if response.status_code == 200:
            acknowledged[customer] = [a["id"] for a in response.json()["results"][0]["actions"]]

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(decide, c) for c in customers]
        while len(acknowledged) < 20:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-burst: requests are in flight
        for future in futures:
            future.result()
    server.wait(timeout=10)
    assert 20 <= len(acknowledged) < len(customers), "the kill did not land mid-burst"

    server = _start(served, tmp_path, port)
    try:
        after = {}
        for start in range(0, len(customers), 20):
            batch = customers[start : start + 20]
            body = requests.post(
                f"{url}/v1/decide", json={"customer_ids": batch}, headers=CRM, timeout=60
            ).json()
            for result in body["results"]:
                after[result["customer_id"]] = result["actions"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert any(acknowledged.values()), "no acknowledged call made an action"
    for customer, ids in acknowledged.items():  # nothing acknowledged was lost or remade
        assert sorted(a["id"] for a in after[customer]) == sorted(ids)
        assert all(a["existing"] for a in after[customer])
    log = ActionLog(open_engine(f"sqlite:///{tmp_path / 'actions.db'}"))
    with log.engine.connect() as connection:
        per_key = connection.execute(
            select(actions.c.customer_id, actions.c.action_type, func.count()).group_by(
                actions.c.customer_id, actions.c.action_type, actions.c.dedupe_key
            )
        ).all()
        assert all(count == 1 for *_, count in per_key)
        outbox_rows = connection.execute(
            select(actions.c.id, func.count(outbox.c.action_id))
            .join(outbox, outbox.c.action_id == actions.c.id, isouter=True)
            .where(actions.c.status.in_(["queued", "deferred", "delivered"]))
            .group_by(actions.c.id)
        ).all()
        assert outbox_rows and all(count == 1 for _, count in outbox_rows)


@pytest.mark.slow
def test_sigkill_while_an_outage_fans_out_loses_and_duplicates_no_notice(
    served: Served, tmp_path: Path
) -> None:
    profile = pd.read_parquet(served.features.tables_dir / "customer_profile.parquet")
    active = profile[profile["customer_id"].isin(set(active_ids(served)))]
    by_site = active.groupby("cell_site_id")["customer_id"].apply(set)
    sites = list(by_site.sort_values(key=lambda s: s.map(len)).index[-5:])  # the busiest
    homed = set().union(*by_site[sites])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    event = {"event_id": "NOC-KILL", "sites": sites, "start": start.isoformat(),
             "severity": "critical"}  # fmt: skip
    ops = {"X-API-Key": KEYS["ops"]}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    engine = open_engine(f"sqlite:///{tmp_path / 'actions.db'}")
    server = _start(served, tmp_path, port)

    def post() -> None:
        with contextlib.suppress(requests.RequestException):  # it died: the operator retries
            requests.post(f"{url}/v1/events/outage", json=event, headers=ops, timeout=60)

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the outage is recorded, its notices not all made
            with engine.connect() as connection:
                if connection.execute(select(func.count()).select_from(outage_events)).scalar():
                    break
            time.sleep(0.005)
        os.kill(server.pid, signal.SIGKILL)
        pending.result()
    server.wait(timeout=10)

    server = _start(served, tmp_path, port)
    try:
        retried = requests.post(f"{url}/v1/events/outage", json=event, headers=ops, timeout=120)
        assert retried.status_code == 200, retried.text
        again = requests.post(f"{url}/v1/events/outage", json=event, headers=ops, timeout=120)
        assert again.json()["duplicate"] is True
    finally:
        server.terminate()
        server.wait(timeout=10)
    with engine.connect() as connection:
        notices = connection.execute(
            select(actions.c.customer_id, func.count())
            .where(actions.c.action_type == "outage_notice")
            .group_by(actions.c.customer_id)
        ).all()
    told = dict(notices)
    assert set(told) == homed  # nobody lost ...
    assert set(told.values()) == {1}  # ... nobody told twice
    assert retried.json()["affected"] == len(homed)
