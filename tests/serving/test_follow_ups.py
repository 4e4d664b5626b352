"""Complaint follow-ups over a real action log: a closed complaint opens one call due 72 h
later that needs no marketing consent but keeps to the do-not-call list and quiet hours; an
overdue one is escalated once, to the CRM sink; "not satisfied" opens a second level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from serving.action_log.database import outbox
from serving.action_log.log import TransitionError
from serving.decisions import DecisionService
from serving.domain import ActionRecord
from serving.follow_ups import ClosedTicket, closed_tickets
from tests.serving.builders import NO_CONSENT
from tests.serving.test_decide import _engine, _scored

CLOSED = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
LATER = CLOSED + timedelta(hours=1)
DAYTIME = {"quiet_start": "21:00", "quiet_end": "08:00"}


def _ticket(
    customer: str = "C1", ticket_type: str = "complaint", **changes: object
) -> ClosedTicket:
    fields: dict[str, object] = {
        "ticket_id": f"T-{customer}",
        "customer_id": customer,
        "ticket_type": ticket_type,
        "closed_at": CLOSED,
        **changes,
    }
    return ClosedTicket(**fields)  # type: ignore[arg-type]


def _follow_ups(engine: DecisionService, customer: str) -> list[ActionRecord]:
    return [r for r in engine._log().customer_actions(customer) if r.action_type == "follow_up"]


def test_a_closed_complaint_opens_a_call_due_in_72_hours_without_marketing_consent(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01, consent=dict(NO_CONSENT))], **DAYTIME)
    (opened,) = engine.follow_ups.open([_ticket()], LATER)
    assert opened.created and opened.action is not None
    call = opened.action
    assert (call.action_type, call.status, call.channel) == ("follow_up", "queued", "phone")
    assert call.due_at == CLOSED + timedelta(hours=72)
    assert call.dedupe_key == "ticket:T-C1" and call.source == "follow_up"
    # the same ticket again (a retry, the batch after the API): the same follow-up
    (again,) = engine.follow_ups.open([_ticket()], LATER + timedelta(minutes=5))
    assert not again.created and again.action is not None and again.action.id == call.id
    assert len(_follow_ups(engine, "C1")) == 1


def test_the_do_not_call_list_stops_the_call_and_an_sms_survey_goes_instead(
    tmp_path: Path,
) -> None:
    listed = tmp_path / "dnc.csv"
    listed.write_text("customer_id\nC1\n")
    engine = _engine(
        tmp_path,
        [_scored("C1", 0.01, consent=dict(NO_CONSENT))],
        **DAYTIME,
        do_not_call_file=str(listed),
    )
    (opened,) = engine.follow_ups.open([_ticket()], LATER)
    assert opened.action is not None
    assert opened.action.channel == "sms"
    assert [s["code"] for s in opened.action.suppressions] == ["do_not_call"]


def test_a_ticket_closed_at_night_is_followed_up_after_the_quiet_hours(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01)], **DAYTIME)
    night = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 23:00 there
    (opened,) = engine.follow_ups.open([_ticket(closed_at=night)], night + timedelta(minutes=1))
    assert opened.action is not None and opened.action.status == "deferred"
    assert opened.action.send_after == datetime(2026, 11, 3, 0, 0, tzinfo=UTC)


def test_only_complaint_and_fault_tickets_of_known_customers_are_followed_up(
    tmp_path: Path,
) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01), _scored("C2", 0.01)], **DAYTIME)
    opened = engine.follow_ups.open(
        [_ticket("C1", "package_question"), _ticket("C2", "network_fault"), _ticket("C404")],
        LATER,
    )
    by_ticket = {o.ticket.ticket_id: o for o in opened}
    assert by_ticket["T-C1"].action is None and "not followed up" in str(by_ticket["T-C1"].note)
    assert by_ticket["T-C2"].action is not None and by_ticket["T-C2"].created
    assert by_ticket["T-C404"].action is None and "unknown" in str(by_ticket["T-C404"].note)


def test_an_overdue_follow_up_is_escalated_once_to_the_crm_sink(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01), _scored("C2", 0.01)], **DAYTIME)
    late, on_time = engine.follow_ups.open(
        [_ticket("C1"), _ticket("C2", closed_at=CLOSED + timedelta(hours=30))], LATER
    )
    assert late.action is not None and on_time.action is not None
    engine._log().set_outcome(late.action.id, "delivered", LATER)  # in the agents' queue
    overdue_at = CLOSED + timedelta(hours=73)

    escalated = engine.follow_ups.escalate_overdue(overdue_at)

    assert [r.id for r in escalated] == [late.action.id]
    (follow_up,) = _follow_ups(engine, "C1")
    assert follow_up.status == "escalated"
    (escalation,) = [
        r for r in engine._log().customer_actions("C1") if r.action_type == "escalation"
    ]
    assert escalation.status == "queued" and escalation.details["follow_up_id"] == late.action.id
    assert escalation.details["hours_late"] == pytest.approx(1.0)
    with engine._log().engine.connect() as connection:
        queued = connection.execute(
            select(outbox.c.action_id).where(outbox.c.delivered_at.is_(None))
        ).scalars()
        assert escalation.id in set(queued)
    assert engine.follow_ups.last_counts == {"open": 1, "overdue": 0, "escalated": 1}
    assert engine.follow_ups.escalate_overdue(overdue_at + timedelta(hours=1)) == []
    # an escalated follow-up is still closed by what the call found
    closed = engine._log().set_outcome(late.action.id, "satisfied", overdue_at + timedelta(hours=2))
    assert closed is not None and closed.status == "satisfied"


def test_not_satisfied_opens_a_second_level_task_once(tmp_path: Path) -> None:
    engine = _engine(tmp_path, [_scored("C1", 0.01)], **DAYTIME)
    (opened,) = engine.follow_ups.open([_ticket()], LATER)
    assert opened.action is not None
    answered = LATER + timedelta(hours=5)
    record, second = engine.follow_ups.record_outcome(opened.action.id, "not_satisfied", answered)
    assert record is not None and record.status == "not_satisfied"
    assert second is not None and second.action is not None and second.created
    assert second.action.dedupe_key == "ticket:T-C1:2"
    assert second.action.details["level"] == 2
    assert second.action.due_at == answered + timedelta(hours=24)
    _, again = engine.follow_ups.record_outcome(opened.action.id, "not_satisfied", answered)
    assert again is not None and not again.created  # the same report: no third task
    satisfied, none = engine.follow_ups.record_outcome(second.action.id, "satisfied", answered)
    assert none is None and satisfied is not None and satisfied.status == "satisfied"
    with pytest.raises(TransitionError):
        engine.follow_ups.record_outcome(second.action.id, "accepted", answered)


def test_closed_tickets_are_read_by_type_and_closing_window() -> None:
    tickets = pd.DataFrame(
        {
            "ticket_id": ["a", "b", "c", "d"],
            "customer_id": ["C1", "C2", "C3", "C4"],
            "ticket_type": ["complaint", "network_fault", "complaint", "package_question"],
            "closed_at": pd.to_datetime(
                ["2026-11-01 10:00", "2026-11-02 09:00", "2026-10-20 10:00", "2026-11-02 08:00"],
                utc=True,
            ),
        }
    )
    since, until = datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    found = closed_tickets(tickets, since, until, ["complaint", "network_fault"])
    assert [t.ticket_id for t in found] == ["a", "b"]
    assert found[0].closed_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="closed_at"):
        closed_tickets(tickets.drop(columns="closed_at"), since, until, ["complaint"])
