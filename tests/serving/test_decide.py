"""The decision service over a real action log and a stand-in scorer: one action per
customer, type and local day, outage notices per event, callbacks booked on the customers'
day, and a preview that is exactly what decide records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.decisions import DecisionService
from serving.domain import CustomerScore, UnknownCustomer
from serving.forecasts import CapacityForecast
from serving.home_cells import HomeCells
from serving.settings import ServingSettings
from tests.serving.builders import score

SHANGHAI_MIDNIGHT = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)  # 00:00 on 3 November there
SECOND = timedelta(seconds=1)
COMPLAINT = ("tickets_complaint_90d",)


class StandInScorer:
    """Scores from a table: what the service needs of a scorer, without a model."""

    direct = True

    def __init__(self, scores: dict[str, CustomerScore]) -> None:
        self.scores = scores

    def score(
        self, customer_ids: Sequence[str], at: pd.Timestamp
    ) -> list[CustomerScore | UnknownCustomer]:
        return [self.scores.get(c, UnknownCustomer(c)) for c in customer_ids]


def _scored(
    customer: str, p: float, reasons: tuple[str, ...] = COMPLAINT, **contact: Any
) -> CustomerScore:
    made = score(p, reasons, **contact)
    return CustomerScore(customer, p, made.risk_band, made.reasons, made.contact, value=made.value)


def _engine(tmp_path: Path, scores: list[CustomerScore], **contact: Any) -> DecisionService:
    settings = ServingSettings.model_validate(
        {
            "action_db_url": f"sqlite:///{tmp_path / 'actions.db'}",
            "contact": {
                "timezone": "Asia/Shanghai",
                "quiet_start": "22:00",
                "quiet_end": "08:00",
                **contact,
            },
            "actions": {
                "callbacks": {
                    "capacity_file": tmp_path / "none.parquet",
                    "default_daily_capacity": 5,
                },
                "packages": {"candidates_file": tmp_path / "none.parquet"},
            },
        }
    )
    log = ActionLog(open_engine(settings.action_db_url))
    capacity = CapacityForecast(tmp_path / "none.parquet", 5)
    cells = HomeCells(tmp_path)
    cells.__dict__["by_site"] = {"S1": [s.customer_id for s in scores]}  # the homed customers
    scorer = StandInScorer({s.customer_id: s for s in scores})
    return DecisionService(scorer, settings, log, capacity, cells)


def _made(engine: DecisionService, now: datetime, *ids: str) -> list[tuple[str, str, str, bool]]:
    return [
        (row.action_type, row.dedupe_key, row.status, created)
        for decided in engine.decide(list(ids), now)
        for row, created in decided.actions
    ]


def test_decide_keeps_one_action_per_type_and_local_day_across_midnight(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.3)], quiet_start="00:00", quiet_end="00:00")
    first = _made(engine, SHANGHAI_MIDNIGHT - 2 * SECOND, "C1")
    assert sorted(first) == [
        ("callback", "2026-11-02", "queued", True),
        ("retention_offer", "2026-11-02", "queued", True),
    ]
    repeated = _made(engine, SHANGHAI_MIDNIGHT - SECOND, "C1")
    assert sorted(repeated) == [(t, k, s, False) for t, k, s, _ in sorted(first)]
    next_day = dict(((t, k), (s, c)) for t, k, s, c in _made(engine, SHANGHAI_MIDNIGHT, "C1"))
    assert next_day[("retention_offer", "2026-11-03")] == ("suppressed", True)  # cooldown
    assert next_day[("callback", "2026-11-03")] == ("suppressed", True)  # a call a week
    assert len(engine.log.customer_actions("C1")) == 4


def test_a_callback_books_capacity_on_the_customers_day_of_its_due_time(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.3)], quiet_start="00:00", quiet_end="00:00")
    now = SHANGHAI_MIDNIGHT - timedelta(hours=2)  # 22:00 on the 2nd there; due 4 h later
    (call,) = [
        row
        for d in engine.decide(["C1"], now)
        for row, _ in d.actions
        if row.action_type == "callback"
    ]
    assert call.due_at == now + timedelta(hours=4) and call.capacity_day == "2026-11-03"


def test_unknown_customers_get_no_actions(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [])
    (decided,) = engine.decide(["C404"], SHANGHAI_MIDNIGHT)
    assert isinstance(decided.score, UnknownCustomer) and decided.actions == []


@pytest.mark.parametrize(
    ("severity", "status", "key"),
    [("major", "deferred", "notified"), ("critical", "queued", "notified")],
)
def test_an_outage_at_night_waits_for_the_morning_unless_critical(
    tmp_path: Path, severity: str, status: str, key: str
) -> None:
    engine = _engine(
        tmp_path,
        [_scored("C1", 0.01), _scored("C2", 0.5, has_account_manager=True, monthly_fee=5.0)],
    )
    night = SHANGHAI_MIDNIGHT + timedelta(hours=1)  # 01:00 there
    result = engine.outages.report("NOC-9", ["S1"], night, None, severity, night)
    counts = result.counts
    assert not result.duplicate
    notices = {c: engine.log.customer_actions(c) for c in ("C1", "C2")}
    for customer, rows in notices.items():
        (notice,) = [r for r in rows if r.action_type == "outage_notice"]
        assert notice.status == ("deferred" if severity == "major" else "queued"), customer
        assert notice.dedupe_key == "outage:NOC-9"
        expected = datetime(2026, 11, 3, 0, 0, tzinfo=UTC) if severity == "major" else None
        assert notice.send_after == expected
    # the customer with an account manager at high risk is called, whatever the fee
    assert [r.action_type for r in notices["C2"]].count("callback") == 1
    assert [r.action_type for r in notices["C1"]].count("callback") == 0
    assert counts["affected"] == 2 and counts["callbacks"] == 1
    assert counts["deferred" if severity == "major" else "notified"] == 2
    again = engine.outages.report("NOC-9", ["S1"], night, None, severity, night + SECOND)
    assert again.duplicate and again.counts == counts
    assert len(engine.log.customer_actions("C1")) == 1


def test_a_second_outage_the_same_day_notifies_again(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01)], quiet_start="00:00", quiet_end="00:00")
    at = SHANGHAI_MIDNIGHT + timedelta(hours=10)
    for event in ("NOC-1", "NOC-2"):
        counts = engine.outages.report(event, ["S1"], at, None, "minor", at).counts
        assert counts["notified"] == 1
    assert {r.dedupe_key for r in engine.log.customer_actions("C1")} == {
        "outage:NOC-1",
        "outage:NOC-2",
    }
    unhomed = engine.outages.report("NOC-3", ["S404"], at, None, "minor", at).counts
    assert unhomed["affected"] == 0


def test_preview_shows_exactly_what_decide_records(tmp_path: Path) -> None:
    customers = [
        _scored("OFFER", 0.3, ("days_to_contract_end",)),
        _scored("CALL", 0.3, has_account_manager=True),
        _scored("QUIET", 0.001),
    ]
    service = _engine(tmp_path, customers, quiet_start="00:00", quiet_end="00:00")
    ids = ["OFFER", "CALL", "QUIET", "NOBODY"]
    at = SHANGHAI_MIDNIGHT + timedelta(hours=10)
    previews = service.preview(ids, at)
    decided = service.decide(ids, at)
    assert [p.score for p in previews] == [d.score for d in decided]
    for preview, recorded in zip(previews, decided, strict=True):
        shown = [
            (p.action_type, "suppressed" if not v.allowed else "queued", v.channel)
            for p, v in preview.planned
        ]
        made = [(r.action_type, r.status, r.channel) for r, created in recorded.actions]
        assert shown == made and all(created for _, created in recorded.actions)
    assert sum(len(p.planned) for p in previews) >= 3
    assert isinstance(previews[3].score, UnknownCustomer) and previews[3].planned == []
    # once recorded, a preview shows the one-a-day rule holding them back
    again = {p.score.customer_id: p.planned for p in service.preview(ids, at + SECOND)}
    assert all(not v.allowed for planned in again.values() for _, v in planned)


SURGE = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday: a seasonal package's surge week
PACKAGE_DAY = SURGE - timedelta(days=3) + timedelta(hours=3)  # 11:00 in Shanghai


def _package_candidates(path: Path, ids: list[str]) -> None:
    pd.DataFrame(
        {
            "region": "metro_central",
            "package": "roaming_pack",
            "week_start": pd.Timestamp(SURGE),
            "rank": range(1, len(ids) + 1),
            "customer_id": ids,
            "propensity": 0.6,
        }
    ).to_parquet(path)


@pytest.mark.parametrize("action_type", ["retention_offer", "callback", "seasonal_package"])
def test_a_repeated_decide_returns_the_action_made_earlier_that_day(
    tmp_path: Path, action_type: str
) -> None:
    """Whatever path made it and whatever became of it: a seasonal package the campaign
    sent this morning, an offer or a callback an earlier decide made."""
    _package_candidates(tmp_path / "none.parquet", ["C1"])
    engine = _engine(tmp_path, [_scored("C1", 0.3)], quiet_start="00:00", quiet_end="00:00")
    if action_type == "seasonal_package":
        assert engine.campaign(PACKAGE_DAY)["queued"] == 1
        first = {r.action_type: r for r in engine.log.customer_actions("C1")}
    else:
        first = {r.action_type: r for d in engine.decide(["C1"], PACKAGE_DAY) for r, _ in d.actions}
    earlier = first[action_type]
    rows = len(engine.log.customer_actions("C1"))
    again = {
        r.action_type: (r, created)
        for d in engine.decide(["C1"], PACKAGE_DAY + timedelta(hours=2))
        for r, created in d.actions
    }
    record, created = again[action_type]
    assert not created and record.id == earlier.id and record.status == earlier.status
    same_types = [r for r in engine.log.customer_actions("C1") if r.action_type == action_type]
    assert len(same_types) == 1
    if action_type != "seasonal_package":  # nothing at all was added by the repeat
        assert len(engine.log.customer_actions("C1")) == rows


def test_a_repeated_decide_returns_a_suppressed_action_as_it_is(tmp_path: Path) -> None:
    no_consent = _scored("C1", 0.3, consent={})
    engine = _engine(tmp_path, [no_consent], quiet_start="00:00", quiet_end="00:00")
    first = {r.action_type: r for d in engine.decide(["C1"], PACKAGE_DAY) for r, _ in d.actions}
    assert first and all(r.status == "suppressed" for r in first.values())
    again = engine.decide(["C1"], PACKAGE_DAY + timedelta(minutes=5))
    assert {(r.id, created) for d in again for r, created in d.actions} == {
        (r.id, False) for r in first.values()
    }
