"""The outage lifecycle and complaint follow-ups over HTTP: roles (ops for outages, crm for
follow-ups), 422 naming the field, 404 and 409, and every step idempotent on retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import requests

from tests.serving.conftest import KEYS, Served, active_ids
from tests.serving.test_actions import _log

CRM = {"X-API-Key": KEYS["crm"]}
OPS = {"X-API-Key": KEYS["ops"]}


def _busiest_site(served: Served) -> tuple[str, set[str]]:
    profile = pd.read_parquet(served.features.tables_dir / "customer_profile.parquet")
    active = profile[profile["customer_id"].isin(set(active_ids(served)))]
    homed = active.groupby("cell_site_id")["customer_id"].apply(set)
    site = str(homed.map(len).idxmax())
    return site, homed[site]


def test_an_outage_runs_its_lifecycle_over_http(api: str, served: Served) -> None:
    site, homed = _busiest_site(served)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    event = {
        "event_id": "NOC-LIFE-1",
        "sites": [site],
        "start": start.isoformat(),
        "expected_end": (start + timedelta(hours=2)).isoformat(),
        "severity": "critical",  # told at once, whatever the hour
        "cause": "fibre cut",
    }
    posted = requests.post(f"{api}/v1/events/outage", json=event, headers=OPS, timeout=120)
    assert posted.status_code == 200, posted.text
    assert posted.json()["state"] == "confirmed"
    assert posted.json()["notified"] + posted.json()["unreachable"] == len(homed)
    url = f"{api}/v1/events/outage/NOC-LIFE-1"
    # the CRM may not run outages; ops may not open follow-ups
    assert requests.post(f"{url}/restore", json={}, headers=CRM, timeout=10).status_code == 403
    # a new repair time: a repeat of the same time notifies nobody again
    later = (start + timedelta(hours=5)).isoformat()
    for duplicate in (False, True):
        update = requests.post(
            f"{url}/update", json={"expected_end": later}, headers=OPS, timeout=60
        )
        assert update.status_code == 200, update.text
        assert update.json()["duplicate"] is duplicate
    bad = requests.post(f"{url}/update", json={"expected_end": "tomorrow"}, headers=OPS, timeout=10)
    assert bad.status_code == 422 and "expected_end" in bad.text
    unknown = requests.post(f"{url}/updat", json={}, headers=OPS, timeout=10)
    assert unknown.status_code in (404, 405)
    # restored (twice: the second is a repeat), then cancelling it is a conflict
    for duplicate in (False, True):
        restored = requests.post(f"{url}/restore", json={}, headers=OPS, timeout=60)
        assert restored.status_code == 200, restored.text
        assert restored.json()["duplicate"] is duplicate
        assert restored.json()["outage"]["state"] == "restored"
    conflict = requests.post(f"{url}/cancel", json={}, headers=OPS, timeout=10)
    assert conflict.status_code == 409 and "restored" in conflict.json()["error"]["message"]
    detail = requests.get(url, headers=OPS, timeout=10).json()
    assert [s["step"] for s in detail["history"]] == ["reported", "updated", "restored"]
    assert detail["time_to_notify"]["pending"] == 0  # nothing left waiting once it ended
    missing = requests.post(
        f"{api}/v1/events/outage/NOPE/restore", json={}, headers=OPS, timeout=10
    )
    assert missing.status_code == 404
    listed = requests.get(f"{api}/v1/events/outages?state=restored", headers=OPS, timeout=10)
    assert "NOC-LIFE-1" in {o["event_id"] for o in listed.json()}


def test_a_closed_ticket_opens_one_follow_up_over_http(api: str, served: Served) -> None:
    customer = active_ids(served)[0]
    closed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    ticket = {
        "ticket_id": "T-HTTP-1",
        "customer_id": customer,
        "ticket_type": "complaint",
        "closed_at": closed.isoformat(),
    }
    url = f"{api}/v1/events/ticket-closed"
    assert requests.post(url, json=ticket, headers=OPS, timeout=10).status_code == 403
    first = requests.post(url, json=ticket, headers=CRM, timeout=60)
    assert first.status_code == 200, first.text
    follow_up = first.json()["follow_up"]
    assert follow_up["action_type"] == "follow_up" and not follow_up["existing"]
    due = datetime.fromisoformat(follow_up["due_at"])
    assert due == closed + timedelta(hours=72)
    again = requests.post(url, json=ticket, headers=CRM, timeout=60).json()["follow_up"]
    assert again["id"] == follow_up["id"] and again["existing"]
    for field, value in (("closed_at", 0), ("ticket_type", "Complaint!"), ("customer_id", "")):
        bad = requests.post(url, json={**ticket, field: value}, headers=CRM, timeout=10)
        assert bad.status_code == 422 and field in bad.text, (field, bad.text)
    future = {**ticket, "closed_at": (closed + timedelta(days=3)).isoformat()}
    assert requests.post(url, json=future, headers=CRM, timeout=10).status_code == 422
    # what the call found: not satisfied opens the second level
    outcome = requests.post(
        f"{api}/v1/actions/{follow_up['id']}/outcome",
        json={"outcome": "not_satisfied"},
        headers=CRM,
        timeout=30,
    )
    assert outcome.status_code == 200 and outcome.json()["status"] == "not_satisfied"
    levels = [
        int(a.details["level"])
        for a in _log(served).customer_actions(customer)
        if a.action_type == "follow_up"
    ]
    assert sorted(levels) == [1, 2]
    listed = requests.get(f"{api}/v1/follow-ups?status=open", headers=CRM, timeout=10).json()
    assert any(a["customer_id"] == customer and a["details"]["level"] == 2 for a in listed)
