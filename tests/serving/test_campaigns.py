"""Seasonal-package notifications: from the forecast's campaign candidates to the action log."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests

from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.api.main import create_app
from serving.decisions import DecisionService, decision_service
from serving.domain import CustomerScore, PackageCandidate, PastAction
from serving.forecasts import CapacityForecast, Refreshing
from serving.policy import seasonal_package
from serving.settings import ActionPolicy, ServingSettings
from tests.serving.conftest import KEYS, Served, active_ids, open_scorer, running, serving_state

SURGE = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday


def _candidates(path: Path, ids: list[str], week: datetime = SURGE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "region": "metro_central",
            "package": "roaming_pack",
            "week_start": pd.Timestamp(week),
            "rank": range(1, len(ids) + 1),
            "customer_id": ids,
            "propensity": [0.6 - 0.05 * i for i in range(len(ids))],
        }
    ).to_parquet(path)


@pytest.fixture
def campaign_settings(served: Served, tmp_path: Path) -> ServingSettings:
    """The served settings with their own action log and a candidates file."""
    actions = served.settings.actions.model_copy(
        update={
            "packages": served.settings.actions.packages.model_copy(
                update={"candidates_file": tmp_path / "forecasts" / "campaign_candidates.parquet"}
            )
        }
    )
    return served.settings.model_copy(
        update={"action_db_url": f"sqlite:///{tmp_path / 'actions.db'}", "actions": actions}
    )


def test_a_package_is_proposed_only_in_its_window_and_when_worth_it() -> None:
    policy = ActionPolicy()
    candidate = PackageCandidate("roaming_pack", "metro_central", SURGE, 0.5)
    early = SURGE - timedelta(days=policy.packages.lead_days + 1)
    assert seasonal_package(candidate, policy, early) is None
    proposal = seasonal_package(candidate, policy, SURGE - timedelta(days=3))
    assert proposal is not None and proposal.action_type == "seasonal_package"
    assert proposal.expected_value == pytest.approx(0.5 * 25.0 - 0.05)
    assert proposal.details["campaign"] == "roaming_pack:2026-12-07"
    assert seasonal_package(candidate, policy, SURGE + timedelta(days=7)) is None  # surge over
    unlikely = PackageCandidate("daily_pass", "metro_central", SURGE, 0.01)  # 0.02 < 0.05
    assert seasonal_package(unlikely, policy, SURGE) is None


def test_score_shows_the_package_notification_with_its_contact_verdict(
    served: Served, campaign_settings: ServingSettings
) -> None:
    ids = active_ids(served)[40:46]
    _candidates(campaign_settings.actions.packages.candidates_file, ids)
    app = create_app(campaign_settings, lambda: serving_state(served, campaign_settings))
    now = SURGE - timedelta(days=5)
    with running(app) as url:
        body = requests.post(
            f"{url}/v1/score",
            json={"customer_ids": ids, "context": {"timestamp": now.isoformat()}},
            headers={"X-API-Key": KEYS["crm"]},
            timeout=60,
        ).json()
    for rank, result in enumerate(body["results"]):
        package = [a for a in result["actions"] if a["action_type"] == "seasonal_package"]
        assert len(package) == 1, result
        assert package[0]["expected_value"] == pytest.approx((0.6 - 0.05 * rank) * 25.0 - 0.05)
        assert "roaming pack" in package[0]["reason"]
        verdict = package[0]["verdict"]
        assert verdict["allowed"] or {s["code"] for s in verdict["suppressions"]} & {
            "no_consent",
            "no_channel",
            "duplicate_today",
        }


def test_a_campaign_notifies_each_candidate_once_under_the_contact_policy(
    served: Served, campaign_settings: ServingSettings
) -> None:
    ids = active_ids(served)[50:62]
    _candidates(campaign_settings.actions.packages.candidates_file, ids)
    log = ActionLog(open_engine(campaign_settings.action_db_url))
    engine = decision_service(
        open_scorer(served), campaign_settings, log, served.features.tables_dir
    )
    now = SURGE - timedelta(days=5)
    first = engine.campaign(now)
    assert first["candidates"] == 12 and first["unknown"] == 0 and first["already"] == 0
    # the control group (a hashed 5 %) gets no package notice: recorded, held out
    assert first["queued"] + first["suppressed"] + first["control"] == 12 and first["queued"] > 0
    for customer in ids:
        rows = [r for r in log.customer_actions(customer) if r.action_type == "seasonal_package"]
        assert len(rows) == 1 and rows[0].source == "campaign"
        assert rows[0].dedupe_key.startswith("roaming_pack:2026-12-07")
        if rows[0].status == "suppressed":  # no consent on any package channel
            assert {s["code"] for s in rows[0].suppressions} >= {"no_consent", "no_channel"}
        elif rows[0].status == "control":
            assert rows[0].suppressions[0]["code"] == "control_group"
            assert rows[0].details["arm"] == "control"
        else:
            assert rows[0].channel in {"app_push", "sms", "email"}
    # the next day (and any later run of the same campaign): nobody is notified again;
    # those the contact policy stopped are looked at again (consent may have come)
    again = engine.campaign(now + timedelta(days=1))
    assert again["already"] == first["queued"] + first["control"] and again["queued"] == 0
    assert again["suppressed"] == first["suppressed"]
    assert engine.campaign(now, package="campus_data_pack")["candidates"] == 0


def test_refreshing_follows_a_republished_file(tmp_path: Path) -> None:
    path = tmp_path / "current" / "table.txt"
    reads: list[str] = []

    def load(p: Path) -> str:
        reads.append(p.read_text())
        return reads[-1]

    value = Refreshing(path, load, "nothing", every_s=0.0)
    assert value.get() == "nothing"  # no file yet
    path.parent.mkdir()
    path.write_text("monday")
    assert value.get() == "monday" and value.get() == "monday" and reads == ["monday"]
    time.sleep(0.01)
    path.write_text("tuesday!")
    assert value.get() == "tuesday!"
    path.unlink()
    assert value.get() == "nothing"


def test_one_call_cannot_exceed_a_cap_or_send_two_of_a_kind(served: Served) -> None:
    """Two proposals on one channel: the first sent counts against the second's cap."""
    scorer = open_scorer(served)
    policy = DecisionService(scorer, served.settings, None, CapacityForecast(Path("none"), 0))
    item = next(
        s
        for s in scorer.score(active_ids(served)[:200], pd.Timestamp(SURGE))
        if isinstance(s, CustomerScore) and s.contact.consent["app_push"]
    )
    now = SURGE - timedelta(days=2)
    cap = served.settings.contact.weekly_caps["app_push"]
    history = [
        PastAction("retention_offer", "app_push", "delivered", now - timedelta(days=2 + i))
        for i in range(cap - 1)
    ]  # one app_push left this week
    packages = [
        seasonal_package(PackageCandidate(name, "metro_central", SURGE, 0.5), ActionPolicy(), now)
        for name in ("roaming_pack", "family_upgrade")
    ]
    planned = policy.check_all(item, [p for p in packages if p], history, now)
    assert planned[0][1].allowed and planned[0][1].channel == "app_push"
    second = planned[1][1]
    assert second.channel != "app_push"  # the cap is used up by the first
    assert not second.allowed and {s.code for s in second.suppressions} == {"duplicate_today"}
