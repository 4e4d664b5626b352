"""Deciding and recording actions over HTTP: idempotency, outages, outcomes."""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests
from sqlalchemy import func, select

from serving.action_log.database import ActionLogSchemaError, actions, open_engine, outbox
from serving.action_log.log import WAITING, ActionLog, TransitionError
from serving.action_log.outbox import Outbox
from serving.api.main import create_app
from serving.domain import NewAction
from tests.postgres import fresh_database
from tests.serving.conftest import KEYS, Served, active_ids, running, serving_state

CRM = {"X-API-Key": KEYS["crm"]}
OPS = {"X-API-Key": KEYS["ops"]}


def _log(served: Served) -> ActionLog:
    return ActionLog(open_engine(served.settings.action_db_url))


def _with_proposals(api: str, served: Served, skip: int, count: int) -> list[str]:
    """Customers for whom the policy proposes something (highest risk first)."""
    latest = active_ids(served)
    scored = requests.post(
        f"{api}/v1/score", json={"customer_ids": latest[:1000]}, headers=CRM, timeout=60
    ).json()["results"]
    chosen = [r["customer_id"] for r in scored if r.get("actions")]
    assert len(chosen) >= skip + count, f"only {len(chosen)} customers with proposals"
    return chosen[skip : skip + count]


def test_decide_records_once_per_customer_action_and_day(api: str, served: Served) -> None:
    ids = _with_proposals(api, served, 0, 5)
    first = requests.post(f"{api}/v1/decide", json={"customer_ids": ids}, headers=CRM, timeout=60)
    assert first.status_code == 200, first.text
    made = {
        (r["customer_id"], a["action_type"]): a
        for r in first.json()["results"]
        for a in r["actions"]
    }
    assert made and not any(a["existing"] for a in made.values())
    for action in made.values():
        assert action["status"] in {"queued", "deferred", "suppressed", "waiting_capacity"}
        assert (action["status"] == "suppressed") == (action["channel"] is None)
    again = requests.post(f"{api}/v1/decide", json={"customer_ids": ids}, headers=CRM, timeout=60)
    repeated = {
        (r["customer_id"], a["action_type"]): a
        for r in again.json()["results"]
        for a in r["actions"]
    }
    assert repeated.keys() == made.keys()
    assert all(a["existing"] and a["id"] == made[k]["id"] for k, a in repeated.items())
    with _log(served).engine.connect() as connection:
        rows = connection.execute(
            select(actions.c.customer_id, func.count())
            .where(actions.c.customer_id.in_(ids))
            .group_by(actions.c.customer_id)
        ).all()
        queued = connection.execute(
            select(func.count())
            .select_from(outbox)
            .where(outbox.c.action_id.in_([a["id"] for a in made.values()]))
        ).scalar()
    assert sum(n for _, n in rows) == len(made)
    assert queued == sum(a["status"] in {"queued", "deferred"} for a in made.values())
    history = requests.get(f"{api}/v1/customers/{ids[0]}/actions", headers=CRM, timeout=10).json()
    assert {a["id"] for a in history} == {a["id"] for k, a in made.items() if k[0] == ids[0]}


def test_concurrent_decides_for_one_customer_queue_one_action(api: str, served: Served) -> None:
    customer = _with_proposals(api, served, 5, 1)[0]

    def call(_: int) -> list[str]:
        body = requests.post(
            f"{api}/v1/decide", json={"customer_ids": [customer]}, headers=CRM, timeout=60
        ).json()
        return [a["id"] for a in body["results"][0]["actions"]]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(16)))
    assert all(answer == answers[0] for answer in answers)  # everyone got the same actions
    stored = _log(served).customer_actions(customer)
    assert sorted(a.id for a in stored) == sorted(answers[0])


def test_an_outage_notifies_exactly_the_active_customers_homed_there(
    api: str, served: Served
) -> None:
    profile = pd.read_parquet(served.features.tables_dir / "customer_profile.parquet")
    active = set(active_ids(served))
    homed = (
        profile[profile["customer_id"].isin(active)]
        .groupby("cell_site_id")["customer_id"]
        .apply(set)
    )
    site = homed.map(len).idxmax()
    # the API takes outages reported within days of their start: one that began an hour ago
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    event = {
        "event_id": "NOC-TEST-001",
        "sites": [site],
        "start": start.isoformat(),
        "expected_end": (start + timedelta(hours=4)).isoformat(),
        "severity": "major",
    }
    posted = requests.post(f"{api}/v1/events/outage", json=event, headers=OPS, timeout=120)
    assert posted.status_code == 200, posted.text
    counts = posted.json()
    assert counts["affected"] == len(homed[site]) and not counts["duplicate"]
    # a major outage waits out the customers' quiet hours when the suite runs at night
    told = counts["notified"] + counts["deferred"]
    assert told + counts["unreachable"] == counts["affected"] and told > 0
    with _log(served).engine.connect() as connection:
        notified = {
            row.customer_id
            for row in connection.execute(
                select(actions.c.customer_id).where(
                    actions.c.action_type == "outage_notice",
                    actions.c.dedupe_key == f"outage:{event['event_id']}",
                )
            )
        }
    assert notified == homed[site]
    again = requests.post(f"{api}/v1/events/outage", json=event, headers=OPS, timeout=60).json()
    assert again["duplicate"] and again["affected"] == counts["affected"]
    crm = requests.post(f"{api}/v1/events/outage", json=event, headers=CRM, timeout=10)
    assert crm.status_code == 403


def test_outcomes_follow_the_action_and_unknown_actions_are_404(api: str, served: Served) -> None:
    customer = _with_proposals(api, served, 6, 1)[0]
    body = requests.post(
        f"{api}/v1/decide", json={"customer_ids": [customer]}, headers=CRM, timeout=60
    ).json()
    sent = [a for a in body["results"][0]["actions"] if a["status"] != "suppressed"]
    assert sent, body
    action = sent[0]
    url = f"{api}/v1/actions/{action['id']}/outcome"
    done = requests.post(url, json={"outcome": "accepted"}, headers=CRM, timeout=10)
    assert done.status_code == 200 and done.json()["status"] == "accepted"
    same = requests.post(url, json={"outcome": "accepted"}, headers=CRM, timeout=10)
    assert same.status_code == 200  # the same outcome twice is no change
    other = requests.post(url, json={"outcome": "declined"}, headers=CRM, timeout=10)
    assert other.status_code == 409 and other.json()["error"]["code"] == "invalid_transition"
    with _log(served).engine.connect() as connection:  # settled: the outbox will not send it
        delivered_at = connection.execute(
            select(outbox.c.delivered_at).where(outbox.c.action_id == action["id"])
        ).scalar()
    assert delivered_at is not None
    missing = requests.post(
        f"{api}/v1/actions/no-such-action/outcome",
        json={"outcome": "accepted"},
        headers=CRM,
        timeout=10,
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "action_not_found"
    bad = requests.post(url, json={"outcome": "maybe"}, headers=CRM, timeout=10)
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "body.outcome"


def test_score_verdicts_reflect_what_decide_recorded(api: str, served: Served) -> None:
    customer = _with_proposals(api, served, 8, 1)[0]
    requests.post(f"{api}/v1/decide", json={"customer_ids": [customer]}, headers=CRM, timeout=60)
    scored = requests.post(
        f"{api}/v1/score", json={"customer_ids": [customer]}, headers=CRM, timeout=60
    ).json()["results"][0]
    codes = {s["code"] for a in scored["actions"] for s in a["verdict"]["suppressions"]}
    assert codes & {"duplicate_today", "offer_cooldown"}  # already made today: not again


def test_callbacks_beyond_the_days_capacity_wait_instead_of_being_dropped(
    action_db_url: str,
) -> None:
    log = ActionLog(open_engine(action_db_url))
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)

    def callback(customer: str) -> NewAction:
        return NewAction(customer, "callback", "2026-11-02", "queued", "decide", "phone",
                         region="harbour", capacity_day="2026-11-03", capacity=2)  # fmt: skip

    first = log.record([callback("A"), callback("B"), callback("C")], now)
    assert [row.status for row, _ in first] == ["queued", "queued", "waiting_capacity"]
    again = log.record([callback("A")], now)  # a repeat books no second slot
    assert again[0][0].status == "queued" and not again[0][1]
    assert log.record([callback("D")], now)[0][0].status == "waiting_capacity"
    due = {m.action.customer_id for m in Outbox(log.engine).due(now)}
    assert due == {"A", "B"}  # waiting callbacks are not sent


def test_an_action_log_from_an_older_version_is_refused_with_the_missing_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # the actions table as it was before capacity
        connection.execute(
            "CREATE TABLE actions (id TEXT PRIMARY KEY, customer_id TEXT, action_type TEXT)"
        )
        connection.execute("INSERT INTO actions VALUES ('a1', 'C1', 'retention_offer')")
    with pytest.raises(ActionLogSchemaError, match=r"table actions lacks column\(s\) .*status"):
        open_engine(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:  # nothing stored was touched
        assert connection.execute("SELECT * FROM actions").fetchall() == [
            ("a1", "C1", "retention_offer")
        ]


def _waiting_callback(customer: str, priority: float, day: str, capacity: int) -> NewAction:
    return NewAction(customer, "callback", day, "queued", "decide", "phone", priority=priority,
                     region="harbour", capacity_day=day, capacity=capacity)  # fmt: skip


def test_waiting_callbacks_get_free_slots_by_priority_and_expire_when_they_wait_too_long(
    action_db_url: str,
) -> None:
    log = ActionLog(open_engine(action_db_url))
    day1, day2, day3 = "2026-11-02", "2026-11-03", "2026-11-04"
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    first = log.record(
        [_waiting_callback(c, p, day1, 2) for c, p in (("A", 10), ("B", 5), ("C", 1), ("E", 20))],
        now,
    )
    # the most urgent book first, whatever their order in the call
    assert [row.status for row, _ in first] == ["queued", WAITING, WAITING, "queued"]
    assert [r.customer_id for r in log.waiting_callbacks()] == ["B", "C"]  # by priority

    # the next day has one slot: the most urgent waiting callback takes it
    morning = datetime(2026, 11, 3, 8, tzinfo=UTC)
    assert log.promote_waiting(day2, lambda region, day: 1, morning, now) == (1, 0)
    assert [r.customer_id for r in log.waiting_callbacks()] == ["C"]
    promoted = log.customer_actions("B")[0]
    assert promoted.status == "queued" and promoted.capacity_day == day2
    assert "B" in {m.action.customer_id for m in Outbox(log.engine).due(morning)}  # now sent

    # a new callback does not jump the queue: those waiting with a higher priority go first
    later = datetime(2026, 11, 4, 9, tzinfo=UTC)
    low = log.record([_waiting_callback("H", 0.1, day3, 1)], later)[0][0]
    assert low.status == WAITING
    assert log.customer_actions("C")[0].status == "queued"  # C (priority 1) got day 3's slot
    # ... while a more urgent one than everybody waiting books directly
    urgent = log.record([_waiting_callback("G", 50, "2026-11-05", 1)], later)[0][0]
    assert urgent.status == "queued"

    # waiting past the limit: expired, with the reason, and no outcome can follow
    past_limit = later + timedelta(seconds=1)
    assert log.promote_waiting(day3, lambda region, day: 0, past_limit, past_limit) == (0, 1)
    expired = log.customer_actions("H")[0]
    assert expired.status == "expired"
    assert expired.suppressions[-1]["code"] == "capacity_expired"
    with pytest.raises(TransitionError):
        log.set_outcome(expired.id, "accepted", later)
    assert not log.waiting_callbacks()


def test_concurrent_promotions_never_book_more_than_the_capacity(action_db_url: str) -> None:
    log = ActionLog(open_engine(action_db_url))
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    log.record([_waiting_callback(f"C{i}", i, "2026-11-02", 0) for i in range(12)], now)
    assert len(log.waiting_callbacks()) == 12
    morning = datetime(2026, 11, 3, 8, tzinfo=UTC)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: log.promote_waiting("2026-11-03", lambda r, d: 3, morning, now), range(8)
            )
        )
    assert sum(promoted for promoted, _ in results) == 3
    queued = [
        c for c in (f"C{i}" for i in range(12)) if log.customer_actions(c)[0].status == "queued"
    ]
    assert sorted(queued) == ["C10", "C11", "C9"]  # the three highest priorities
    with log.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(outbox)).scalar() == 3


def test_the_api_on_postgresql_records_each_action_once_and_delivers_it(
    api: str, served: Served, postgres_server: str, tmp_path: Path
) -> None:
    """The scale path end to end: the real server with its action log on PostgreSQL."""
    out = tmp_path / "delivered.jsonl"
    settings = served.settings.model_copy(
        update={
            "action_db_url": fresh_database(postgres_server),
            "delivery": served.settings.delivery.model_copy(update={"file_path": out}),
        }
    )
    # a customer with an action the contact policy lets out now (the shared log's history
    # can only suppress more than the new, empty one)
    scored = requests.post(
        f"{api}/v1/score", json={"customer_ids": active_ids(served)[:1000]}, headers=CRM, timeout=60
    ).json()["results"]
    customer = next(
        r["customer_id"]
        for r in scored
        if any(a["verdict"]["allowed"] and not a["verdict"]["send_after"] for a in r["actions"])
    )
    log = ActionLog(open_engine(settings.action_db_url))
    with running(create_app(settings, lambda: serving_state(served, settings))) as url:

        def decide(_: int) -> dict[str, tuple[str, str]]:
            response = requests.post(
                f"{url}/v1/decide", json={"customer_ids": [customer]}, headers=CRM, timeout=60
            )
            assert response.status_code == 200, response.text
            actions = response.json()["results"][0]["actions"]
            return {a["action_type"]: (a["id"], a["status"]) for a in actions}

        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(decide, range(16)))
        ids = [{kind: id_ for kind, (id_, _) in m.items()} for m in made]
        assert ids[0] and all(m == ids[0] for m in ids)  # one set of actions, 16 answers
        stored = log.customer_actions(customer)
        assert {a.id for a in stored} == set(ids[0].values())
        # queued when made (the worker may have delivered them already)
        sent = {id_ for m in made for id_, status in m.values() if status == "queued"}
        assert sent, "nothing to deliver: pick a customer with a queued action"
        deadline = time.monotonic() + 30  # the delivery worker drains the PostgreSQL outbox
        while time.monotonic() < deadline:
            if all(a.status == "delivered" for a in log.customer_actions(customer)
                   if a.id in sent):  # fmt: skip
                break
            time.sleep(0.2)
        delivered = [json.loads(line)["action_id"] for line in out.read_text().splitlines()]
        assert sorted(delivered) == sorted(sent)  # each once
        accepted = requests.post(
            f"{url}/v1/actions/{sorted(sent)[0]}/outcome",
            json={"outcome": "accepted"},
            headers=CRM,
            timeout=10,
        )
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"


def test_callbacks_of_one_call_book_by_priority_and_follow_a_republished_capacity(
    action_db_url: str,
) -> None:
    log = ActionLog(open_engine(action_db_url))
    now = datetime(2026, 11, 2, 9, tzinfo=UTC)
    day = "2026-11-02"
    stored = log.record(
        [_waiting_callback("LOW", 1, day, 1), _waiting_callback("HIGH", 9, day, 1)], now
    )
    assert [row.status for row, _ in stored] == [WAITING, "queued"]  # in the call's order
    # the forecast is republished with more callbacks for the day: the waiting one gets one
    assert log.promote_waiting(day, lambda region, d: 3, now, now - timedelta(days=3)) == (1, 0)
    assert log.customer_actions("LOW")[0].status == "queued"
