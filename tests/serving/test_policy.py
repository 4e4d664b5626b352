"""The action policy and the contact policy, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from serving.contact import check, quiet_until
from serving.domain import PastAction, Proposal
from serving.policy import best_offer, callback, propose
from serving.settings import ActionPolicy, ContactPolicy, Offer
from tests.serving.builders import NOON
from tests.serving.builders import contact as _contact
from tests.serving.builders import score as _score

POLICY = ActionPolicy()  # a score is worth 12 x its fee here (`builders.score`)


def test_the_offer_with_the_largest_positive_expected_value_wins() -> None:
    # value 1200: data_boost 0.2*1200*0.08-5 = 14.2; loyalty 0.2*1200*0.25-30 = 30;
    # upgrade bonus 0.2*1200*0.35-60 = 24
    proposal = best_offer(_score(0.2), _contact(), POLICY)
    assert proposal is not None and proposal.details["offer_id"] == "loyalty_discount"
    assert proposal.expected_value == pytest.approx(30.0)
    # on a two-year contract the loyalty discount is not eligible: the upgrade bonus wins
    two_year = best_offer(_score(0.2), _contact(contract_type="two_year"), POLICY)
    assert two_year is not None and two_year.details["offer_id"] == "contract_upgrade_bonus"
    assert two_year.expected_value == pytest.approx(24.0)
    # at 1% risk nothing pays for itself
    assert best_offer(_score(0.01), _contact(), POLICY) is None


def test_save_rates_are_per_segment() -> None:
    policy = ActionPolicy(
        offers=[Offer(id="x", cost=10, save_rate={"default": 0.1, "enterprise": 0.5})],
    )
    consumer = best_offer(_score(0.2), _contact(), policy)
    enterprise = best_offer(_score(0.2), _contact(segment="enterprise"), policy)
    assert consumer is not None and enterprise is not None
    assert enterprise.expected_value == pytest.approx(0.2 * 1200 * 0.5 - 10)
    assert consumer.expected_value == pytest.approx(0.2 * 1200 * 0.1 - 10)


def test_callbacks_go_to_valuable_customers_with_complaint_or_contract_end_risk() -> None:
    complaints = ("tickets_complaint_90d", "days_to_contract_end")
    urgent = callback(
        _score(0.2, complaints, segment="enterprise"), _contact(segment="enterprise"), POLICY, NOON
    )
    assert urgent is not None and urgent.channels == ("phone",)
    assert urgent.due_at == NOON + timedelta(hours=4) and urgent.priority == pytest.approx(240)
    assert urgent.details["drivers"] == ["tickets_complaint_90d"]
    # a contract ending without complaints: the renewal call that goes with the offer
    renewal = callback(
        _score(0.2, ("days_to_contract_end",)), _contact(segment="enterprise"), POLICY, NOON
    )
    assert renewal is not None and renewal.details["renewal"] is True
    assert "renewal call" in renewal.reason
    # neither complaints nor a contract end behind the risk, or a small customer: no callback
    assert (
        callback(_score(0.2, ("tenure_months",)), _contact(segment="enterprise"), POLICY, NOON)
        is None
    )
    assert (
        callback(
            _score(0.2, complaints, monthly_fee=30.0), _contact(monthly_fee=30.0), POLICY, NOON
        )
        is None
    )
    # medium risk: due within a day
    medium = callback(
        _score(0.09, complaints, monthly_fee=200.0), _contact(monthly_fee=200.0), POLICY, NOON
    )
    assert medium is not None and medium.due_at == NOON + timedelta(hours=24)
    both = propose(
        _score(0.2, complaints, monthly_fee=200.0), _contact(monthly_fee=200.0), POLICY, NOON
    )
    assert {p.action_type for p in both} == {"retention_offer", "callback"}
    values = [p.expected_value for p in both]
    assert values == sorted(values, reverse=True)


OFFER = Proposal("retention_offer", 25.0, ("app_push", "sms", "email"), "test")
NOTICE = Proposal("outage_notice", 0.0, ("sms",), "test")


def test_consent_and_frequency_caps_pick_the_channel_and_say_why() -> None:
    policy = ContactPolicy()
    no_push = _contact(consent={"sms": True, "app_push": False, "email": True, "phone": False})
    verdict = check(OFFER, no_push, [], policy, NOON)
    assert verdict.allowed and verdict.channel == "sms"
    assert [(s.code, s.channel) for s in verdict.suppressions] == [("no_consent", "app_push")]
    two_sms = [
        PastAction("seasonal_package", "sms", "delivered", NOON - timedelta(days=d)) for d in (1, 2)
    ]
    capped = check(OFFER, no_push, two_sms, policy, NOON)
    assert capped.allowed and capped.channel == "email"
    assert [s.code for s in capped.suppressions] == ["no_consent", "frequency_cap"]
    nothing = check(
        OFFER,
        _contact(consent={"sms": False, "app_push": False, "email": False, "phone": False}),
        [],
        policy,
        NOON,
    )
    assert not nothing.allowed and nothing.suppressions[-1].code == "no_channel"


def test_offer_cooldown_and_daily_duplicates_are_suppressed() -> None:
    policy = ContactPolicy(offer_cooldown_days=30)
    recent = [PastAction("retention_offer", "sms", "delivered", NOON - timedelta(days=10))]
    cooled = check(OFFER, _contact(), recent, policy, NOON)
    assert not cooled.allowed and cooled.suppressions[0].code == "offer_cooldown"
    assert "10 days ago" in cooled.suppressions[0].message
    old = [PastAction("retention_offer", "sms", "delivered", NOON - timedelta(days=40))]
    assert check(OFFER, _contact(), old, policy, NOON).allowed
    suppressed_earlier = [
        PastAction("retention_offer", None, "suppressed", NOON - timedelta(hours=1))
    ]
    assert check(OFFER, _contact(), suppressed_earlier, policy, NOON).allowed  # nothing was sent
    season = Proposal("seasonal_package", 3.0, ("app_push",), "test")
    today = [PastAction("seasonal_package", "app_push", "queued", NOON - timedelta(hours=2))]
    again = check(season, _contact(), today, policy, NOON)
    assert not again.allowed and again.suppressions[0].code == "duplicate_today"
    # a second outage the same day is another event: de-duplicated per event, not per day
    earlier = [PastAction("outage_notice", "sms", "queued", NOON - timedelta(hours=2))]
    assert check(NOTICE, _contact(), earlier, policy, NOON).allowed


def test_outage_notices_bypass_consent_and_caps_but_not_quiet_hours() -> None:
    policy = ContactPolicy(
        quiet_start=datetime(2026, 1, 1, 21).time(), quiet_end=datetime(2026, 1, 1, 8).time()
    )
    silent = _contact(consent={"sms": False, "app_push": False, "email": False, "phone": False})
    busy = [PastAction("retention_offer", "sms", "delivered", NOON - timedelta(days=1))] * 5
    assert check(NOTICE, silent, busy, policy, NOON).channel == "sms"
    night = datetime(2026, 11, 2, 23, 30, tzinfo=UTC)
    deferred = check(NOTICE, silent, [], policy, night)
    assert deferred.allowed and deferred.send_after == datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    critical = check(NOTICE, silent, [], policy, night, respect_quiet_hours=False)
    assert critical.send_after is None


def test_quiet_hours_follow_the_customers_time_zone() -> None:
    shanghai = ContactPolicy(timezone="Asia/Shanghai")  # UTC+8: 14:00 UTC is 22:00 there
    resume = quiet_until(datetime(2026, 11, 2, 14, 0, tzinfo=UTC), shanghai)
    assert resume == datetime(2026, 11, 3, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert quiet_until(datetime(2026, 11, 2, 3, 0, tzinfo=UTC), shanghai) is None  # 11:00 there
