"""The action log at its edges: every status x outcome pair, idempotency keys at local midnight,
the outbox's due times, callback capacity and expiry, history windows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError

from serving.action_log import database
from serving.action_log.database import (
    ActionLogSchemaError,
    actions,
    callback_capacity,
    from_db,
    in_transaction,
    log_engine,
    open_engine,
    outbox,
    outcomes,
    to_db,
    upsert_for,
)
from serving.action_log.keys import dedupe_key, local_day
from serving.action_log.log import (
    FOLLOW_UP_OUTCOMES,
    OUTCOMES,
    WAITING,
    ActionLog,
    TransitionError,
)
from serving.action_log.outbox import Outbox
from serving.domain import ActionStatus, NewAction

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
SHANGHAI = ZoneInfo("Asia/Shanghai")
STATUSES = (
    "queued",
    "deferred",
    "waiting_capacity",
    "suppressed",
    "delivered",
    "accepted",
    "declined",
    "no_answer",
    "failed",
    "expired",
)
# The specification, written out: which outcome may be reported for an action in each state.
# An action still on its way may end any way; a delivered one may still be answered or fail;
# an action that never went out (suppressed, expired) or whose outcome is known takes none.
OFFER_OUTCOMES = tuple(o for o in OUTCOMES if o not in FOLLOW_UP_OUTCOMES)
MAY_FOLLOW = {
    "queued": set(OFFER_OUTCOMES),
    "deferred": set(OFFER_OUTCOMES),
    "waiting_capacity": set(OFFER_OUTCOMES),
    "delivered": {"accepted", "declined", "no_answer", "failed"},
}


@pytest.fixture(autouse=True)
def _server_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs in a process whose local time zone is not UTC: what the log stores
    and answers must not depend on where the server runs."""
    monkeypatch.setenv("TZ", "America/Santiago")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def log(tmp_path: Path) -> ActionLog:
    return ActionLog(open_engine(f"sqlite:///{tmp_path / 'actions.db'}"))


def _action(
    customer: str = "C1",
    status: str = "queued",
    action_type: str = "retention_offer",
    key: str = "2026-11-02",
    **fields: Any,
) -> NewAction:
    channel = None if status == "suppressed" else fields.pop("channel", "sms")
    return NewAction(customer, action_type, key, status, "decide", channel, **fields)


def _callback(customer: str, priority: float, capacity: int, **fields: Any) -> NewAction:
    return _action(
        customer,
        action_type="callback",
        channel="phone",
        priority=priority,
        region=fields.pop("region", "harbour"),
        capacity_day=fields.pop("capacity_day", "2026-11-02"),
        capacity=capacity,
        **fields,
    )


def _count(log: ActionLog, table: Any, *where: Any) -> int:
    with log.engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar()
        )


def _outbox(log: ActionLog, action_id: str) -> Any:
    with log.engine.connect() as connection:
        return connection.execute(select(outbox).where(outbox.c.action_id == action_id)).first()


# --- outcomes -----------------------------------------------------------------------------


def _in_status(log: ActionLog, customer: str, status: str) -> str:
    """An action of `customer` in `status`, with its outbox row where it would have one."""
    start = (
        "queued"
        if status in ("delivered", "accepted", "declined", "no_answer", "failed")
        else status
    )
    action_id = log.record([_action(customer, start)], NOW)[0][0].id
    if start != status:
        with log.engine.begin() as connection:
            connection.execute(
                update(actions).where(actions.c.id == action_id).values(status=status)
            )
    return action_id


def test_every_status_and_outcome_pair_follows_the_transition_table(action_db_url: str) -> None:
    log = ActionLog(open_engine(action_db_url))
    later = NOW + timedelta(hours=2)
    for status in STATUSES:
        for outcome in OFFER_OUTCOMES:
            customer = f"{status}-{outcome}"
            action_id = _in_status(log, customer, status)
            before = log.customer_actions(customer)[0]
            waiting_in_outbox = _outbox(log, action_id)
            if outcome == status:  # the same report twice: nothing happens
                assert log.set_outcome(action_id, outcome, later) == before
                assert _count(log, outcomes, outcomes.c.action_id == action_id) == 0
            elif outcome in MAY_FOLLOW.get(status, set()):
                row = log.set_outcome(action_id, outcome, later)
                assert row is not None and row.status == outcome, (status, outcome)
                assert row.updated_at == later
                with log.engine.connect() as connection:
                    recorded = connection.execute(
                        select(outcomes.c.outcome, outcomes.c.recorded_at).where(
                            outcomes.c.action_id == action_id
                        )
                    ).all()
                assert [
                    (o, r.replace(tzinfo=UTC) if r.tzinfo is None else r) for o, r in recorded
                ] == [(outcome, later)]
                settled = _outbox(log, action_id)
                if waiting_in_outbox is not None:  # not to be sent any more
                    assert settled.delivered_at is not None
                    assert settled.last_error == f"settled by outcome {outcome}"
            else:
                with pytest.raises(TransitionError) as refused:
                    log.set_outcome(action_id, outcome, later)
                assert str(refused.value) == f"action {action_id} is {status}: cannot be {outcome}"
                assert log.customer_actions(customer)[0] == before, (status, outcome)
                assert _count(log, outcomes, outcomes.c.action_id == action_id) == 0
                assert _outbox(log, action_id) == waiting_in_outbox


def test_a_follow_up_is_closed_by_what_the_customer_said_and_an_offer_is_not(
    log: ActionLog,
) -> None:
    follow_up = log.record([_action("F1", action_type="follow_up", channel="phone")], NOW)
    offer = log.record([_action("O1")], NOW)
    follow_up_id, offer_id = follow_up[0][0].id, offer[0][0].id
    for outcome in FOLLOW_UP_OUTCOMES:
        with pytest.raises(TransitionError, match=f"is a retention_offer: not {outcome}"):
            log.set_outcome(offer_id, outcome, NOW)
    with pytest.raises(TransitionError, match="is a follow_up: not accepted"):
        log.set_outcome(follow_up_id, "accepted", NOW)
    # tried without an answer, then escalated past its deadline: still closed by the call
    for step in ("no_answer", "unreachable"):
        row = log.set_outcome(follow_up_id, step, NOW + SECOND)
        assert row is not None and row.status == step
    with pytest.raises(TransitionError):
        log.set_outcome(follow_up_id, "satisfied", NOW + 2 * SECOND)  # closed already


def test_an_outcome_for_a_suppressed_action_is_refused(log: ActionLog) -> None:
    action_id = log.record([_action(status="suppressed")], NOW)[0][0].id
    for outcome in OUTCOMES:
        with pytest.raises(TransitionError):
            log.set_outcome(action_id, outcome, NOW)
    assert log.customer_actions("C1")[0].status == "suppressed"


def test_an_outcome_settles_the_waiting_message_so_it_is_never_sent(log: ActionLog) -> None:
    box = Outbox(log.engine)
    later = NOW + timedelta(hours=9)
    action_id = log.record([_action(status="deferred", send_after=later)], NOW)[0][0].id
    log.set_outcome(action_id, "declined", NOW + SECOND)
    assert box.due(later + timedelta(days=1)) == []
    assert box.claim(action_id, later, timedelta(minutes=1)) is None


def test_unknown_actions_and_outcomes(log: ActionLog) -> None:
    assert log.set_outcome("no-such-action", "accepted", NOW) is None
    action_id = log.record([_action()], NOW)[0][0].id
    with pytest.raises(ValueError, match="outcome must be one of accepted, declined, no_answer"):
        log.set_outcome(action_id, "maybe", NOW)


# --- idempotency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2026, 11, 2, 15, 59, 59, tzinfo=UTC), "2026-11-02"),  # 23:59:59 in Shanghai
        (datetime(2026, 11, 2, 16, 0, 0, tzinfo=UTC), "2026-11-03"),  # midnight there
        (datetime(2026, 11, 3, 0, 0, tzinfo=timezone(timedelta(hours=8))), "2026-11-03"),
        (datetime(2026, 11, 2, 23, 59, 59, tzinfo=timezone(timedelta(hours=8))), "2026-11-02"),
    ],
)
def test_the_daily_key_is_the_customers_day_whatever_the_callers_offset(
    moment: datetime, day: str
) -> None:
    assert local_day(moment, SHANGHAI) == day
    assert dedupe_key(moment, SHANGHAI) == day


def test_events_and_campaigns_have_keys_of_their_own() -> None:
    evening = datetime(2026, 11, 2, 16, 30, tzinfo=UTC)  # 00:30 on the 3rd in Shanghai
    assert dedupe_key(evening, SHANGHAI, event="outage:NOC-1") == "outage:NOC-1"
    assert dedupe_key(evening, SHANGHAI, event="outage:NOC-1", suppressed=True) == "outage:NOC-1"
    campaign = "roaming_pack:2026-12-07"
    assert dedupe_key(evening, SHANGHAI, campaign=campaign) == campaign
    assert (
        dedupe_key(evening, SHANGHAI, campaign=campaign, suppressed=True)
        == "roaming_pack:2026-12-07:suppressed:2026-11-03"
    )
    assert dedupe_key(evening, SHANGHAI, suppressed=True) == "2026-11-03"


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_two_instants_share_a_daily_key_exactly_when_they_share_a_local_date(
    moment: datetime,
) -> None:
    at = moment.replace(tzinfo=UTC)
    for other in (at + timedelta(hours=h) for h in (-23, -1, 1, 23)):
        same = at.astimezone(SHANGHAI).date() == other.astimezone(SHANGHAI).date()
        assert (dedupe_key(at, SHANGHAI) == dedupe_key(other, SHANGHAI)) is same


def test_a_repeated_action_is_found_not_made_again(action_db_url: str) -> None:
    log = ActionLog(open_engine(action_db_url))
    ((first, made),) = log.record([_action()], NOW)
    ((again, made_again),) = log.record([_action(channel="email")], NOW + timedelta(hours=3))
    assert made and not made_again and again == first
    assert _count(log, actions) == 1 and _count(log, outbox) == 1
    # another key, type or customer is another action
    other_day = _action(key="2026-11-03")
    other_type = _action(action_type="seasonal_package")
    other_customer = _action("C2")
    stored = log.record([other_day, other_type, other_customer], NOW)
    assert [created for _, created in stored] == [True, True, True]
    assert _count(log, actions) == 4


def test_one_call_naming_a_key_twice_makes_it_once(log: ActionLog) -> None:
    stored = log.record([_action(), _action(channel="email")], NOW)
    assert [created for _, created in stored] == [True, False]
    assert stored[0][0] == stored[1][0] and stored[0][0].channel == "sms"
    assert _count(log, actions) == 1 and _count(log, outbox) == 1


def test_times_are_kept_as_utc_instants(log: ActionLog) -> None:
    beijing = timezone(timedelta(hours=8))
    at = NOW.astimezone(beijing)
    due = datetime(2026, 11, 3, 9, 0, tzinfo=beijing)
    row, _ = log.record([_action(status="deferred", due_at=due, send_after=due)], at)[0]
    for column, expected in (("created_at", NOW), ("due_at", due), ("send_after", due)):
        value = getattr(row, column)
        assert value == expected and value.utcoffset() == timedelta(0)


def test_every_field_of_an_action_reads_back_as_it_was_recorded(action_db_url: str) -> None:
    log = ActionLog(open_engine(action_db_url))
    full = NewAction(
        "C1",
        "callback",
        "2026-11-02",
        ActionStatus.DEFERRED,
        "outage",
        "phone",
        expected_value=41.5,
        priority=0.75,
        region="harbour",
        due_at=NOW + DAY,
        send_after=NOW + 2 * DAY,
        details={"event_id": "E7", "reasons": ["dropped_calls"]},
        suppressions=[{"code": "frequency_cap", "message": "3 in 7 days", "channel": "sms"}],
        capacity_day="2026-11-03",
        capacity=5,
    )
    bare = NewAction("C2", "retention_offer", "2026-11-02", ActionStatus.SUPPRESSED, "decide")
    (made_full, _), (made_bare, _) = log.record([full, bare], NOW)
    for new, made in ((full, made_full), (bare, made_bare)):
        (read,) = log.customer_actions(new.customer_id)
        assert read == made  # what recording answered is what is stored
        assert read.created_at == read.updated_at == NOW
        for name in (f.name for f in fields(new) if f.name != "capacity"):
            assert getattr(read, name) == getattr(new, name), name
    # an action recorded without details or suppressions has empty ones, never None
    assert made_bare.details == {} and made_bare.suppressions == []


# --- the outbox ---------------------------------------------------------------------------


def test_only_messages_to_send_enter_the_outbox(log: ActionLog) -> None:
    send_after = NOW + timedelta(hours=8)
    stored = log.record(
        [
            _action("C1", "queued"),
            _action("C2", "deferred", send_after=send_after),
            _action("C3", "suppressed"),
            _action("C4", WAITING),
        ],
        NOW,
    )
    ids = [row.id for row, _ in stored]
    assert _outbox(log, ids[0]).next_attempt_at.replace(tzinfo=UTC) == NOW
    assert _outbox(log, ids[1]).next_attempt_at.replace(tzinfo=UTC) == send_after
    assert _outbox(log, ids[2]) is None and _outbox(log, ids[3]) is None


def test_a_message_is_due_from_its_time_on_oldest_first(log: ActionLog) -> None:
    box = Outbox(log.engine)
    send_after = NOW + timedelta(hours=8)
    late = log.record([_action("C1", "deferred", send_after=send_after)], NOW)[0][0].id
    early = log.record([_action("C2")], NOW - timedelta(minutes=5))[0][0].id
    assert [m.action.id for m in box.due(NOW)] == [early]
    assert [m.action.id for m in box.due(send_after - SECOND)] == [early]
    assert [m.action.id for m in box.due(send_after)] == [early, late]
    assert [m.action.id for m in box.due(send_after, limit=1)] == [early]
    assert box.due(send_after)[0].attempts == 0


def test_a_claim_holds_a_message_for_its_lease_and_only_its_holder_settles_it(
    log: ActionLog,
) -> None:
    box = Outbox(log.engine)
    action_id = log.record([_action()], NOW)[0][0].id
    lease = timedelta(seconds=60)
    assert box.claim(action_id, NOW - SECOND, lease) is None  # not due yet
    token = box.claim(action_id, NOW, lease)
    assert token is not None
    assert box.claim(action_id, NOW + lease - SECOND, lease) is None  # still held
    assert box.due(NOW + lease - SECOND) == []
    assert not box.mark_delivered(action_id, "someone-else", NOW + SECOND)
    assert not box.mark_failed(action_id, "someone-else", "boom", None, NOW + SECOND)
    assert box.mark_delivered(action_id, token, NOW + SECOND)
    row = log.customer_actions("C1")[0]
    assert row.status == "delivered" and row.updated_at == NOW + SECOND
    assert not box.mark_delivered(action_id, token, NOW + 2 * SECOND)  # settled already
    assert not box.mark_failed(action_id, token, "late", None, NOW + 2 * SECOND)
    assert log.customer_actions("C1")[0].status == "delivered"


def test_a_failed_attempt_is_counted_and_retried_or_given_up(log: ActionLog) -> None:
    box = Outbox(log.engine)
    action_id = log.record([_action()], NOW)[0][0].id
    token = box.claim(action_id, NOW, timedelta(seconds=60))
    assert token is not None
    retry = NOW + timedelta(seconds=10)
    assert box.mark_failed(action_id, token, "x" * 5000, retry, NOW)
    pending = _outbox(log, action_id)
    assert pending.attempts == 1 and len(pending.last_error) == 1000
    assert pending.next_attempt_at.replace(tzinfo=UTC) == retry and pending.delivered_at is None
    assert log.customer_actions("C1")[0].status == "queued"
    token = box.claim(action_id, retry, timedelta(seconds=60))
    assert token is not None and box.mark_failed(action_id, token, "gone", None, retry)
    given_up = _outbox(log, action_id)
    assert given_up.attempts == 2 and given_up.delivered_at.replace(tzinfo=UTC) == retry
    assert log.customer_actions("C1")[0].status == "failed"


# --- callback capacity --------------------------------------------------------------------


def _booked(log: ActionLog, region: str = "harbour", day: str = "2026-11-02") -> tuple[int, int]:
    with log.engine.connect() as connection:
        row = connection.execute(
            select(callback_capacity.c.capacity, callback_capacity.c.booked).where(
                callback_capacity.c.region == region, callback_capacity.c.day == day
            )
        ).one()
    return int(row.capacity), int(row.booked)


def test_callbacks_beyond_the_days_capacity_wait_highest_priority_first(log: ActionLog) -> None:
    stored = log.record(
        [_callback("C1", 10.0, 2), _callback("C2", 30.0, 2), _callback("C3", 20.0, 2)], NOW
    )
    assert [row.status for row, _ in stored] == [WAITING, "queued", "queued"]
    assert _outbox(log, stored[0][0].id) is None
    assert _booked(log) == (2, 2)
    # a zero capacity books nothing; another region has its own
    assert log.record([_callback("C4", 99.0, 0)], NOW)[0][0].status == WAITING
    assert log.record([_callback("C5", 1.0, 1, region="hills")], NOW)[0][0].status == "queued"
    assert _booked(log, "hills") == (1, 1)


def test_a_callback_deferred_by_quiet_hours_takes_its_slot_too(log: ActionLog) -> None:
    morning = NOW + timedelta(hours=8)
    first = log.record([_callback("C1", 5.0, 1, status="deferred", send_after=morning)], NOW)
    second = log.record([_callback("C2", 1.0, 1)], NOW)
    assert first[0][0].status == "deferred" and second[0][0].status == WAITING
    assert _booked(log) == (1, 1)


def test_waiting_callbacks_take_free_slots_before_a_new_one_of_lower_priority(
    log: ActionLog,
) -> None:
    log.record([_callback("C1", 50.0, 0)], NOW)  # no capacity yet: waits
    stored = log.record([_callback("C2", 10.0, 1)], NOW + SECOND)  # a slot, taken by C1
    assert stored[0][0].status == WAITING
    assert log.customer_actions("C1")[0].status == "queued"
    assert [c.customer_id for c in log.waiting_callbacks()] == ["C2"]


def test_promotion_gives_free_slots_by_priority_and_expires_the_stale(log: ActionLog) -> None:
    old, fresh = NOW - timedelta(days=3), NOW - timedelta(days=3) + SECOND
    log.record([_callback("OLD", 99.0, 0)], old)
    log.record([_callback("LOW", 1.0, 0)], fresh)
    log.record([_callback("HIGH", 5.0, 0, send_after=NOW + timedelta(hours=2))], fresh)
    log.record([_callback("MID", 3.0, 0)], fresh)
    promoted, expired = log.promote_waiting(
        "2026-11-02", lambda _r, _d: 2, NOW, expire_before=fresh
    )
    assert (promoted, expired) == (2, 1)
    status = {c: log.customer_actions(c)[0].status for c in ("OLD", "LOW", "HIGH", "MID")}
    assert status == {"OLD": "expired", "LOW": WAITING, "HIGH": "queued", "MID": "queued"}
    stale = log.customer_actions("OLD")[0]
    assert stale.suppressions[-1] == {
        "code": "capacity_expired",
        "message": "no callback slot came free in time",
        "channel": "phone",
    }
    high = log.customer_actions("HIGH")[0]
    assert _outbox(log, high.id).next_attempt_at.replace(tzinfo=UTC) == NOW + timedelta(hours=2)
    assert (
        _outbox(log, log.customer_actions("MID")[0].id).next_attempt_at.replace(tzinfo=UTC) == NOW
    )
    assert log.promote_waiting("2026-11-02", lambda _r, _d: 2, NOW, expire_before=fresh) == (0, 0)
    # a republished forecast with more capacity frees a slot for the day already booked
    assert log.promote_waiting("2026-11-02", lambda _r, _d: 3, NOW, expire_before=fresh) == (1, 0)
    assert log.customer_actions("LOW")[0].status == "queued"


# --- history, schema, retries, outages ----------------------------------------------------


def test_history_holds_the_customers_actions_of_the_last_days(log: ActionLog) -> None:
    log.record([_action("C1", key="a")], NOW - timedelta(days=8))  # exactly the window's edge
    log.record([_action("C1", key="b")], NOW - timedelta(days=8) - SECOND)
    log.record([_action("C1", status="suppressed", key="c")], NOW - timedelta(days=1))
    log.record([_action("C2", key="d")], NOW)
    ids = ["C1", "C3", "C1", *(f"X{i}" for i in range(1200))]  # repeats and many chunks
    found = log.history(ids, NOW, days=8)
    assert list(found) == list(dict.fromkeys(ids))
    assert sorted((a.status, a.created_at) for a in found["C1"]) == [
        ("queued", NOW - timedelta(days=8)),
        ("suppressed", NOW - timedelta(days=1)),
    ]
    assert found["C3"] == [] and "C2" not in found
    assert (
        found["C1"][0].channel in ("sms", None) and found["C1"][0].action_type == "retention_offer"
    )


def test_a_log_made_by_an_older_version_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_engine(url).dispose()
    engine = open_engine(url)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE actions DROP COLUMN capacity_day"))
    engine.dispose()
    with pytest.raises(ActionLogSchemaError, match=r"table actions lacks column\(s\) capacity_day"):
        open_engine(url)


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="action log on oracle: only SQLite and PostgreSQL"):
        ActionLog(SimpleNamespace(dialect=SimpleNamespace(name="oracle")))  # type: ignore[arg-type]


def _aborted(code: str) -> OperationalError:
    return OperationalError("UPDATE ...", {}, SimpleNamespace(sqlstate=code))  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["40P01", "40001"])
def test_a_deadlock_victim_is_run_again(log: ActionLog, code: str) -> None:
    calls: list[int] = []

    def work(_: Any) -> str:
        calls.append(1)
        if len(calls) < 4:
            raise _aborted(code)
        return "done"

    assert in_transaction(log.engine, work) == "done" and len(calls) == 4
    calls.clear()

    def always(_: Any) -> None:
        calls.append(1)
        raise _aborted(code)

    with pytest.raises(OperationalError):
        in_transaction(log.engine, always, attempts=2)
    assert len(calls) == 2  # then it gives up


def test_other_database_errors_are_not_retried(log: ActionLog) -> None:
    calls: list[int] = []

    def work(_: Any) -> None:
        calls.append(1)
        raise _aborted("08006")  # connection failure

    with pytest.raises(OperationalError):
        in_transaction(log.engine, work)
    assert calls == [1]


def test_an_outage_is_recorded_once(log: ActionLog) -> None:
    assert log.outage("NOC-1") is None
    log.record_outage("NOC-1", {"sites": ["S1"]}, {"affected": 3}, NOW)
    log.record_outage("NOC-1", {"sites": ["S2"]}, {"affected": 9}, NOW + SECOND)
    known = log.outage("NOC-1")
    assert known is not None and known["payload"]["sites"] == ["S1"]
    assert known["counts"] == {"affected": 3} and known["state"] == "confirmed"


def test_a_customers_actions_come_newest_first(log: ActionLog) -> None:
    for hours, key in ((1, "a"), (3, "b"), (2, "c")):
        log.record([_action(key=key)], NOW + timedelta(hours=hours))
    assert [a.dedupe_key for a in log.customer_actions("C1")] == ["b", "c", "a"]
    assert log.customer_actions("nobody") == []


# --- engines and time zones ---------------------------------------------------------------


def test_instants_read_back_are_utc_whatever_zone_the_database_answers_in() -> None:
    beijing = datetime(2026, 11, 2, 20, 0, tzinfo=timezone(timedelta(hours=8)))
    read = from_db(beijing)
    assert read == NOW and read is not None and read.utcoffset() == timedelta(0)
    assert from_db(datetime(2026, 11, 2, 12, 0)) == NOW  # SQLite: naive means UTC
    assert from_db(None) is None
    stored = to_db(beijing)
    assert stored == NOW and stored.utcoffset() == timedelta(0)


def test_a_sqlite_log_is_durable_and_waits_for_a_busy_writer(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'deep' / 'er' / 'actions.db'}")
    with engine.connect() as connection:
        pragmas = {
            name: connection.execute(text(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }
    assert engine.hide_parameters
    with pytest.raises(IntegrityError) as failed, engine.begin() as connection:
        connection.execute(outbox.insert().values(action_id="C-SECRET-1", next_attempt_at=NOW))
    assert "C-SECRET-1" not in str(failed.value)  # no customer data in error logs


def test_a_server_log_checks_its_connections_and_hides_parameters() -> None:
    engine = log_engine("postgresql+psycopg://retain:secret@127.0.0.1:1/actions")
    assert engine.pool._pre_ping and engine.hide_parameters  # type: ignore[attr-defined]
    assert engine.dialect.name == "postgresql"


def test_a_log_made_by_an_older_version_names_every_missing_column(action_db_url: str) -> None:
    with_password = action_db_url.replace("://retain@", "://retain:hunter2@")
    engine = open_engine(with_password)
    with engine.begin() as connection:
        for column in ("capacity_day", "region"):
            connection.execute(text(f"ALTER TABLE actions DROP COLUMN {column}"))
    engine.dispose()
    with pytest.raises(ActionLogSchemaError) as refused:
        open_engine(with_password)
    shown = with_password.replace(":hunter2@", ":***@")
    assert str(refused.value) == (
        f"action log {shown}: table actions lacks column(s) region, capacity_day (made by an "
        "older version): migrate it, or move it aside to start a new log"
    )


def test_the_two_supported_databases_get_their_own_upsert() -> None:
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert)):
        fake = SimpleNamespace(dialect=SimpleNamespace(name=name))
        assert upsert_for(fake) is insert  # type: ignore[arg-type]


# --- more of the action log's edges -------------------------------------------------------


def test_a_call_mixing_known_and_new_actions_makes_the_new_ones(log: ActionLog) -> None:
    log.record([_action("C1")], NOW)
    stored = log.record([_action("C1"), _action("C2"), _action("C3")], NOW)
    assert [created for _, created in stored] == [False, True, True]
    assert _count(log, outbox) == 3


def test_an_action_naming_no_capacity_is_not_booked(log: ActionLog) -> None:
    unbooked = _action(action_type="callback", capacity_day="2026-11-02", capacity=None)
    assert log.record([unbooked], NOW)[0][0].status == "queued"
    assert _count(log, callback_capacity) == 0


def test_a_callback_without_a_region_books_the_blank_region(log: ActionLog) -> None:
    assert log.record([_callback("C1", 1.0, 1, region=None)], NOW)[0][0].status == "queued"
    assert _booked(log, "") == (1, 1)


def test_a_callback_without_a_priority_books_after_those_with_one(log: ActionLog) -> None:
    stored = log.record([_callback("C1", None, 1), _callback("C2", 0.5, 1)], NOW)  # type: ignore[arg-type]
    assert [row.status for row, _ in stored] == [WAITING, "queued"]


def test_a_new_callback_never_promotes_waiting_ones_of_another_region_or_lower_priority(
    log: ActionLog,
) -> None:
    log.record([_callback("HILLS", 90.0, 0, region="hills")], NOW)
    log.record([_callback("LOW", 1.0, 0)], NOW)
    stored = log.record([_callback("NEW", 10.0, 1)], NOW + SECOND)
    assert stored[0][0].status == "queued"
    assert [c.customer_id for c in log.waiting_callbacks()] == ["HILLS", "LOW"]
    assert _booked(log) == (1, 1)


def test_a_waiting_callback_keeps_its_place_before_a_new_one_of_equal_priority(
    log: ActionLog,
) -> None:
    log.record([_callback("FIRST", 10.0, 0)], NOW)
    stored = log.record([_callback("SECOND", 10.0, 1)], NOW + SECOND)
    assert stored[0][0].status == WAITING
    assert log.customer_actions("FIRST")[0].status == "queued"


def _rename(log: ActionLog, ids: dict[str, str]) -> None:
    """Give waiting callbacks (no outbox row yet) chosen ids: ties are broken by id."""
    with log.engine.begin() as connection:
        for customer, new_id in ids.items():
            connection.execute(
                update(actions).where(actions.c.customer_id == customer).values(id=new_id)
            )


def test_waiting_callbacks_are_ordered_by_priority_then_waiting_time_then_id(
    log: ActionLog,
) -> None:
    log.record([_callback("LATE", 5.0, 0)], NOW + 2 * SECOND)
    log.record([_callback("TIE-2", 5.0, 0), _callback("TIE-1", 5.0, 0)], NOW)
    log.record([_callback("TOP", 9.0, 0)], NOW + 3 * SECOND)
    _rename(log, {"LATE": "a", "TIE-2": "c", "TIE-1": "b", "TOP": "d"})
    assert [c.customer_id for c in log.waiting_callbacks()] == ["TOP", "TIE-1", "TIE-2", "LATE"]


def test_promotion_follows_the_waiting_order(log: ActionLog) -> None:
    log.record([_callback("LATE", 5.0, 0)], NOW + 2 * SECOND)
    log.record([_callback("TIE-2", 5.0, 0), _callback("TIE-1", 5.0, 0)], NOW)
    _rename(log, {"LATE": "a", "TIE-2": "c", "TIE-1": "b"})
    later = NOW + timedelta(hours=1)
    for slots, promoted in ((1, "TIE-1"), (2, "TIE-2"), (3, "LATE")):
        assert log.promote_waiting("2026-11-03", lambda _r, _d, n=slots: n, later, NOW - DAY) == (
            1,
            0,
        )
        assert log.customer_actions(promoted)[0].status == "queued"


def test_a_waiting_callback_of_no_priority_goes_before_a_new_one_of_none(log: ActionLog) -> None:
    log.record([_callback("WAITING", 0.5, 0)], NOW)
    stored = log.record([_callback("NEW", None, 1)], NOW + SECOND)  # type: ignore[arg-type]
    assert stored[0][0].status == WAITING
    assert log.customer_actions("WAITING")[0].status == "queued"


def test_a_full_region_does_not_stop_promotion_elsewhere(log: ActionLog) -> None:
    log.record([_callback("FULL", 9.0, 0), _callback("FULL-TOO", 8.0, 0)], NOW)
    log.record([_callback("HILLS", 1.0, 0, region="hills")], NOW)
    log.record([_callback("BLANK", 0.5, 0, region=None)], NOW)
    asked: list[tuple[str, str]] = []

    def capacity(region: str, day: str) -> int:
        asked.append((region, day))
        return 0 if region == "harbour" else 1

    later = NOW + timedelta(hours=1)
    assert log.promote_waiting("2026-11-03", capacity, later, expire_before=NOW - DAY) == (2, 0)
    assert ("", "2026-11-03") in asked and ("harbour", "2026-11-03") in asked
    for customer in ("FULL", "FULL-TOO"):
        full = log.customer_actions(customer)[0]
        assert full.status == WAITING and full.capacity_day == "2026-11-02"
    for customer in ("HILLS", "BLANK"):
        promoted = log.customer_actions(customer)[0]
        assert promoted.status == "queued" and promoted.capacity_day == "2026-11-03"
        assert promoted.updated_at == later
        assert _outbox(log, promoted.id).attempts == 0
    assert _booked(log, "", "2026-11-03") == (1, 1)
    assert _booked(log, "hills", "2026-11-03") == (1, 1)


def test_expiry_counts_each_callback_and_keeps_earlier_suppressions(log: ActionLog) -> None:
    earlier = {"code": "no_consent", "message": "no consent for sms", "channel": "sms"}
    for customer in ("C1", "C2"):
        log.record([_callback(customer, 1.0, 0, suppressions=[earlier])], NOW - 4 * DAY)
    later = NOW + timedelta(minutes=5)
    assert log.promote_waiting("2026-11-02", lambda _r, _d: 0, later, expire_before=NOW) == (0, 2)
    expired = log.customer_actions("C1")[0]
    assert expired.status == "expired" and expired.updated_at == later
    assert [s["code"] for s in expired.suppressions] == ["no_consent", "capacity_expired"]


def test_a_booking_takes_a_slot_of_its_own_region_and_day_only(log: ActionLog) -> None:
    log.record([_callback("C1", 1.0, 5)], NOW)
    log.record([_callback("C2", 1.0, 5, region="hills")], NOW)
    tomorrow = _callback("C3", 1.0, 5, capacity_day="2026-11-03", key="2026-11-03")
    log.record([tomorrow], NOW)
    assert _booked(log) == (5, 1) and _booked(log, "hills") == (5, 1)
    assert _booked(log, day="2026-11-03") == (5, 1)


def test_history_reads_every_chunk_of_a_long_list_once(log: ActionLog) -> None:
    ids = [f"X{i:04d}" for i in range(1300)]
    with_actions = [ids[0], ids[500], ids[999], ids[1000], ids[1001], ids[1299]]
    for customer in with_actions:
        log.record([_action(customer)], NOW)
    found = log.history(ids, NOW, days=1)
    assert {c: len(found[c]) for c in with_actions} == dict.fromkeys(with_actions, 1)
    assert sum(len(a) for a in found.values()) == len(with_actions)


def test_an_outcome_settles_only_its_own_pending_message(log: ActionLog) -> None:
    box = Outbox(log.engine)
    first, second = (log.record([_action(c)], NOW)[0][0].id for c in ("C1", "C2"))
    log.set_outcome(first, "declined", NOW + SECOND)
    assert [m.action.id for m in box.due(NOW + SECOND)] == [second]
    token = box.claim(second, NOW + SECOND, timedelta(seconds=60))
    assert token is not None and box.mark_delivered(second, token, NOW + 2 * SECOND)
    log.set_outcome(second, "accepted", NOW + timedelta(hours=1))
    delivered = _outbox(log, second)
    assert delivered.delivered_at.replace(tzinfo=UTC) == NOW + 2 * SECOND
    assert delivered.last_error is None


def test_at_most_a_hundred_messages_are_handed_out_at_once(log: ActionLog) -> None:
    box = Outbox(log.engine)
    log.record([_action(f"C{i}") for i in range(101)], NOW)
    assert len(box.due(NOW)) == 100


def test_a_claim_takes_one_message_with_a_token_of_its_own(log: ActionLog) -> None:
    box = Outbox(log.engine)
    first, second = (log.record([_action(c)], NOW)[0][0].id for c in ("C1", "C2"))
    lease = timedelta(seconds=60)
    token = box.claim(first, NOW, lease)
    assert [m.action.id for m in box.due(NOW)] == [second]  # the other is still due
    again = box.claim(first, NOW + lease, lease)  # the lease ran out: claimed anew
    assert again is not None and again != token
    assert not box.mark_delivered(first, str(token), NOW + lease)


def test_a_worker_never_overwrites_an_outcome_reported_meanwhile(log: ActionLog) -> None:
    box = Outbox(log.engine)
    action_id = log.record([_action()], NOW)[0][0].id
    token = box.claim(action_id, NOW, timedelta(seconds=60))
    assert token is not None
    log.set_outcome(action_id, "accepted", NOW + SECOND)  # the CRM answered first
    assert not box.mark_delivered(action_id, token, NOW + 2 * SECOND)
    assert log.customer_actions("C1")[0].status == "accepted"


def test_settling_a_message_changes_only_its_own_action(log: ActionLog) -> None:
    box = Outbox(log.engine)
    first, second, third = (log.record([_action(c)], NOW)[0][0].id for c in ("C1", "C2", "C3"))
    lease = timedelta(seconds=60)
    one, two = (
        box.claim(first, NOW, lease),
        box.claim(second, NOW, lease),
    )
    assert one is not None and two is not None
    assert box.mark_delivered(first, one, NOW + SECOND)
    failed_at = NOW + 2 * SECOND
    assert box.mark_failed(second, two, "bounced", None, failed_at)
    status = {c: log.customer_actions(c)[0] for c in ("C1", "C2", "C3")}
    assert [status[c].status for c in ("C1", "C2", "C3")] == ["delivered", "failed", "queued"]
    assert status["C2"].updated_at == failed_at
    assert _outbox(log, third).delivered_at is None


def test_a_transaction_is_tried_four_times_with_doubling_waits(
    log: ActionLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(database.time, "sleep", waits.append)

    def deadlocked(_: Any) -> None:
        raise _aborted("40P01")

    with pytest.raises(OperationalError):
        in_transaction(log.engine, deadlocked)
    assert waits == [0.02, 0.04, 0.08]


def test_an_error_without_a_state_code_is_raised_at_once(log: ActionLog) -> None:
    calls: list[int] = []

    def broken(_: Any) -> None:
        calls.append(1)
        raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    with pytest.raises(OperationalError):
        in_transaction(log.engine, broken)
    assert calls == [1]


def test_spending_counts_what_was_decided_to_go_out_not_what_was_held_back(
    log: ActionLog,
) -> None:
    """Queued, deferred and delivered offers spend their cost; suppressed, expired and
    control-group decisions spend nothing; other types and other periods are not counted."""
    costs = {
        "C1": ("queued", 30.0),
        "C2": ("deferred", 5.0),
        "C3": ("suppressed", 60.0),
        "C4": ("control", 30.0),
    }
    log.record([_action(c, s, details={"cost": cost}) for c, (s, cost) in costs.items()], NOW)
    log.record([_action("C5", "queued", "callback", details={"cost": 15.0})], NOW)
    log.record([_action("C6", "queued", key="2026-10-01", details={"cost": 60.0})], NOW - 40 * DAY)
    assert log.spent("retention_offer", NOW - 30 * DAY, NOW) == pytest.approx(35.0)
    assert log.spent("callback", NOW - 30 * DAY, NOW) == pytest.approx(15.0)
