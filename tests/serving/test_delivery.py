"""The outbox is drained at least once, with retries, backoff and a final failure."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.action_log.outbox import Outbox
from serving.delivery import FileSink, drain_once
from serving.domain import NewAction
from serving.settings import Delivery
from tests.serving.conftest import KEYS, Served

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _queue(log: ActionLog, customer: str, send_after: datetime | None = None) -> str:
    status = "deferred" if send_after else "queued"
    action = NewAction(customer, "retention_offer", "2026-11-02", status, "decide", "sms",
                       send_after=send_after)  # fmt: skip
    return log.record([action], NOW)[0][0].id


class Flaky:
    """A channel that refuses the first `failures` messages."""

    def __init__(self, failures: int) -> None:
        self.failures, self.sent = failures, []  # type: ignore[var-annotated]

    def send(self, message: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("CRM unavailable")
        self.sent.append(message)


def test_a_message_is_retried_with_backoff_then_delivered(action_db_url: str) -> None:
    log = ActionLog(open_engine(action_db_url))
    box = Outbox(log.engine)
    action = _queue(log, "C1")
    settings = Delivery(base_backoff_s=10, max_attempts=5)
    sink = Flaky(failures=2)
    assert drain_once(box, sink, settings, NOW).retried == 1
    assert drain_once(box, sink, settings, NOW + timedelta(seconds=5)).retried == 0  # not yet due
    assert drain_once(box, sink, settings, NOW + timedelta(seconds=10)).retried == 1
    assert (
        drain_once(box, sink, settings, NOW + timedelta(seconds=29)).delivered == 0
    )  # 20 s backoff
    assert drain_once(box, sink, settings, NOW + timedelta(seconds=31)).delivered == 1
    assert [m["action_id"] for m in sink.sent] == [action]
    assert log.customer_actions("C1")[0].status == "delivered"
    assert drain_once(box, sink, settings, NOW + timedelta(hours=1)).delivered == 0  # once only


def test_a_message_is_given_up_after_max_attempts(tmp_path: Path) -> None:
    log = ActionLog(open_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    box = Outbox(log.engine)
    _queue(log, "C1")
    settings = Delivery(base_backoff_s=1, max_attempts=3)
    sink = Flaky(failures=10)
    later = NOW
    results = []
    for _ in range(3):
        results.append(drain_once(box, sink, settings, later))
        later += timedelta(hours=1)
    assert [r.failed for r in results] == [0, 0, 1]
    assert log.customer_actions("C1")[0].status == "failed"


def test_deferred_messages_wait_until_quiet_hours_end(tmp_path: Path) -> None:
    log = ActionLog(open_engine(f"sqlite:///{tmp_path / 'a.db'}"))
    box = Outbox(log.engine)
    _queue(log, "C1", send_after=NOW + timedelta(hours=8))
    sink = FileSink(tmp_path / "out.jsonl")
    assert drain_once(box, sink, Delivery(), NOW + timedelta(hours=7)).delivered == 0
    assert drain_once(box, sink, Delivery(), NOW + timedelta(hours=8)).delivered == 1
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["customer_id"] == "C1"


def test_the_server_delivers_decided_actions_to_the_file_sink(api: str, served: Served) -> None:
    from tests.serving.test_actions import _with_proposals

    ids = _with_proposals(api, served, 7, 3)
    body = requests.post(
        f"{api}/v1/decide",
        json={"customer_ids": ids},
        headers={"X-API-Key": KEYS["crm"]},
        timeout=60,
    ).json()
    queued = {a["id"] for r in body["results"] for a in r["actions"] if a["status"] == "queued"}
    assert queued, body
    deadline = time.monotonic() + 20
    delivered: set[str] = set()
    path = served.settings.delivery.file_path
    while time.monotonic() < deadline and not queued <= delivered:
        if path.exists():
            delivered = {json.loads(line)["action_id"] for line in path.read_text().splitlines()}
        time.sleep(0.2)
    assert queued <= delivered
    log = ActionLog(open_engine(served.settings.action_db_url))
    for customer in ids:
        for action in log.customer_actions(customer):
            if action.id in queued:
                assert action.status == "delivered"


def test_a_late_worker_cannot_reopen_or_fail_a_message_another_delivered(
    action_db_url: str,
) -> None:
    log = ActionLog(open_engine(action_db_url))
    box = Outbox(log.engine)
    action = _queue(log, "C1")
    lease = timedelta(seconds=60)
    slow = box.claim(action, NOW, lease)  # worker A claims, then stalls past its lease
    assert slow is not None and box.claim(action, NOW, lease) is None  # nobody else meanwhile
    fast = box.claim(action, NOW + timedelta(seconds=61), lease)  # worker B takes it over
    assert fast is not None and box.mark_delivered(action, fast, NOW + timedelta(seconds=62))
    assert not box.mark_failed(action, slow, "timeout", None, NOW + timedelta(seconds=63))
    assert not box.mark_failed(action, slow, "timeout", NOW + timedelta(hours=1), NOW)
    assert log.customer_actions("C1")[0].status == "delivered"
    assert box.due(NOW + timedelta(days=1)) == []  # never due again
