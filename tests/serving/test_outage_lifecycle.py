"""An outage's lifecycle over a real action log and a stand-in scorer: when its customers
are told (quiet hours by rule, planned work ahead), updates and the end told only to those
told of the start, waiting notices withdrawn, suspected outages confirmed or dismissed,
customers in care, and how long customers waited to hear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from serving.action_log.outbox import Outbox
from serving.decisions import DecisionService
from serving.domain import ActionRecord
from serving.kpis import time_to_notify
from serving.outages import OutageStateError, notice_key, notice_prefix
from tests.serving.test_decide import SECOND, _engine, _scored

# 21:30 on 2 November in Shanghai (quiet hours 21:00-08:00 in these tests)
EVENING = datetime(2026, 11, 2, 13, 30, tzinfo=UTC)
MORNING = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)  # 08:00 on the 3rd there
NIGHT = {"quiet_start": "21:00", "quiet_end": "08:00"}


def _notices(engine: DecisionService, customer: str) -> list[ActionRecord]:
    return [r for r in engine._log().customer_actions(customer) if r.action_type == "outage_notice"]


def _deliver(engine: DecisionService, customer: str, at: datetime) -> None:
    """The channel took the customer's start notice."""
    (notice,) = [n for n in _notices(engine, customer) if n.details["step"] == "start"]
    engine._log().set_outcome(notice.id, "delivered", at)


@pytest.mark.parametrize(
    ("repair_hours", "status", "send_after"),
    [(2, "queued", None), (12, "deferred", MORNING)],  # repaired 23:30 / 09:30 there
)
def test_a_major_outage_in_the_evening_is_told_now_when_its_repair_comes_before_morning(
    tmp_path: Path, repair_hours: int, status: str, send_after: datetime | None
) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01)], **NIGHT)
    end = EVENING + timedelta(hours=repair_hours)
    result = engine.outages.report("NOC-1", ["S1"], EVENING, end, "major", EVENING)
    (notice,) = _notices(engine, "C1")
    assert (notice.status, notice.send_after) == (status, send_after)
    assert notice.channel == "sms" and notice.details["step"] == "start"
    assert result.counts["notified" if status == "queued" else "deferred"] == 1


def test_a_minor_outage_waits_for_the_morning_and_a_large_major_one_does_not(
    tmp_path: Path,
) -> None:
    customers = [_scored(f"C{i}", 0.01) for i in range(3)]
    engine = _engine(
        tmp_path,
        customers,
        **NIGHT,
    )
    engine.settings.actions.outages.skip_quiet_hours[1].min_affected = 3  # "major, 3 reached"
    engine.outages.report("NOC-M", ["S1"], EVENING, None, "minor", EVENING)
    engine.outages.report("NOC-J", ["S1"], EVENING, None, "major", EVENING)
    by_event = {
        (n.details["event_id"], n.status) for c in ("C0", "C1", "C2") for n in _notices(engine, c)
    }
    assert by_event == {("NOC-M", "deferred"), ("NOC-J", "queued")}


def test_ending_an_outage_withdraws_waiting_notices_and_tells_only_those_told(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, [_scored(c, 0.01) for c in ("C1", "C2", "C3")], **NIGHT)
    engine.outages.report("NOC-2", ["S1"], EVENING, None, "minor", EVENING)
    assert {n.status for c in ("C1", "C2", "C3") for n in _notices(engine, c)} == {"deferred"}
    _deliver(engine, "C1", MORNING)  # C1 was told; C2 and C3 still wait
    restored_at = MORNING + timedelta(minutes=5)

    ended = engine.outages.end("NOC-2", "restored", restored_at)

    assert ended.outage.state == "restored" and not ended.duplicate
    assert ended.counts == {"withdrawn": 2, "told_of_end": 1}
    for customer in ("C2", "C3"):
        (withdrawn,) = _notices(engine, customer)
        assert withdrawn.status == "cancelled"
    # nothing withdrawn is left for the delivery worker: only C1's restoration is due
    due = Outbox(engine._log().engine).due(restored_at + timedelta(days=1), 100)
    assert [(m.action.customer_id, m.action.details["step"]) for m in due] == [("C1", "restored")]
    told = {n.details["step"]: n for n in _notices(engine, "C1")}
    assert set(told) == {"start", "restored"}
    assert told["restored"].dedupe_key == notice_key("NOC-2", "restored")
    assert told["restored"].channel == told["start"].channel
    # restoring again is a repeat; cancelling a restored outage is refused
    again = engine.outages.end("NOC-2", "restored", restored_at + SECOND)
    assert again.duplicate and len(_notices(engine, "C1")) == 2
    with pytest.raises(OutageStateError, match="NOC-2 is restored"):
        engine.outages.end("NOC-2", "cancelled", restored_at + SECOND)


def test_a_new_repair_time_is_told_to_those_told_and_carried_by_waiting_notices(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, [_scored(c, 0.01) for c in ("C1", "C2")], **NIGHT)
    engine.outages.report("NOC-3", ["S1"], EVENING, EVENING + timedelta(hours=4), "minor", EVENING)
    _deliver(engine, "C1", EVENING + timedelta(minutes=1))
    later = EVENING + timedelta(hours=9)

    update = engine.outages.update("NOC-3", later, EVENING + timedelta(minutes=30), "parts late")

    assert update.counts == {"updated": 1, "patched": 1}
    (waiting,) = _notices(engine, "C2")
    assert waiting.details["expected_end"] == later.isoformat()
    steps = sorted(n.details["step"] for n in _notices(engine, "C1"))
    assert steps == ["start", "updated"]
    repeat = engine.outages.update("NOC-3", later, EVENING + timedelta(minutes=31))
    assert repeat.duplicate and len(_notices(engine, "C1")) == 2
    history = engine.outages.get("NOC-3")
    assert history is not None
    assert [s["step"] for s in history[1]] == ["reported", "updated"]
    assert history[1][1]["note"] == {"note": "parts late"}


def test_planned_work_is_announced_the_lead_time_ahead(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01)], quiet_start="00:00", quiet_end="00:00")
    start = EVENING + timedelta(days=5)
    engine.outages.report("MW-1", ["S1"], start, start + timedelta(hours=2), "critical",
                          EVENING, kind="planned")  # fmt: skip
    (notice,) = _notices(engine, "C1")
    assert notice.status == "deferred"
    assert notice.send_after == start - timedelta(hours=48)
    # planned soon: told now
    soon = EVENING + timedelta(hours=3)
    engine.outages.report("MW-2", ["S1"], soon, None, "minor", EVENING, kind="planned")
    (now_told,) = [n for n in _notices(engine, "C1") if n.details["event_id"] == "MW-2"]
    assert now_told.status == "queued" and now_told.send_after is None


def test_a_suspected_outage_tells_nobody_until_confirmed_and_a_dismissed_one_never(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01)], quiet_start="00:00", quiet_end="00:00")
    day = datetime(2026, 11, 2, tzinfo=UTC)
    for event in ("DET-S1-a", "DET-S1-b"):
        opened = engine.outages.suspect(event, ["S1"], day, "major", EVENING, "drop rate 6x")
        assert opened.outage.state == "suspected" and _notices(engine, "C1") == []
    confirmed = engine.outages.confirm("DET-S1-a", EVENING + SECOND, EVENING + timedelta(hours=3))
    assert confirmed.outage.state == "confirmed" and confirmed.counts["notified"] == 1
    assert engine.outages.confirm("DET-S1-a", EVENING + 2 * SECOND).duplicate
    dismissed = engine.outages.end("DET-S1-b", "dismissed", EVENING + SECOND)
    assert dismissed.outage.state == "cancelled" and dismissed.counts["told_of_end"] == 0
    assert {n.details["event_id"] for n in _notices(engine, "C1")} == {"DET-S1-a"}
    with pytest.raises(OutageStateError):
        engine.outages.end("DET-S1-a", "dismissed", EVENING)  # confirmed: restore or cancel
    with pytest.raises(KeyError):
        engine.outages.confirm("NOPE", EVENING)


def test_customers_in_care_get_their_channel_and_a_service_call_in_a_critical_outage(
    tmp_path: Path,
) -> None:
    older = _scored("OLD", 0.01, age_band="60+", monthly_fee=9.0)  # low value, low risk
    young = _scored("YOUNG", 0.01, age_band="25-34", monthly_fee=9.0)
    engine = _engine(tmp_path, [older, young], quiet_start="00:00", quiet_end="00:00")
    engine.outages.report("NOC-C", ["S1"], EVENING, None, "critical", EVENING)
    calls = {
        c: [r for r in engine._log().customer_actions(c) if r.action_type == "callback"]
        for c in ("OLD", "YOUNG")
    }
    assert len(calls["OLD"]) == 1 and calls["YOUNG"] == []
    assert calls["OLD"][0].details["service_duty"] is True
    (notice,) = _notices(engine, "OLD")
    assert notice.details["care"] == {"dedicated_agent": True}
    assert "care" not in _notices(engine, "YOUNG")[0].details


def test_time_to_notify_counts_from_the_report_to_each_delivery(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored(c, 0.01) for c in ("C1", "C2", "C3")], **NIGHT)
    engine.outages.report("NOC-T", ["S1"], EVENING, None, "critical", EVENING)
    for minutes, customer in ((2, "C1"), (4, "C2")):
        _deliver(engine, customer, EVENING + timedelta(minutes=minutes))
    found = engine.outages.get("NOC-T")
    assert found is not None
    delay = found[2]
    assert (delay.notified, delay.pending) == (2, 1)
    assert delay.median_minutes == pytest.approx(3.0)
    assert delay.p95_minutes == pytest.approx(3.9)


def test_notice_keys_stay_within_the_log_and_extend_the_start_key() -> None:
    long_id = "X" * 80
    for step in ("start", "updated", "restored", "cancelled"):
        key = notice_key(long_id, step, "1790000000" if step == "updated" else None)
        assert len(key) <= 80 and key.startswith(notice_prefix(long_id))
    assert notice_key("NOC-1") == "outage:NOC-1"  # as before the lifecycle


def test_the_start_notices_feed_the_kpis_time_to_notify_by_region_and_week(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, [_scored(c, 0.01) for c in ("C1", "C2", "C3")], **NIGHT)
    engine.outages.report("NOC-K", ["S1"], EVENING, None, "critical", EVENING)
    for minutes, customer in ((2, "C1"), (4, "C2")):
        _deliver(engine, customer, EVENING + timedelta(minutes=minutes))
    rows = engine._log().outages.start_notices(EVENING - timedelta(days=7), MORNING)
    found = time_to_notify(pd.DataFrame(rows))
    (week,) = found.to_dict("records")
    assert (week["region"], week["events"], week["notified"], week["not_notified"]) == (
        "harbour",
        1,
        2,
        1,
    )
    assert week["median_minutes"] == pytest.approx(3.0)
    assert engine._log().outages.start_notices(MORNING, MORNING + timedelta(days=1)) == []
