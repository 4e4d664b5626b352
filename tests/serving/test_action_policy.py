"""The action policy's eligibility rules, each condition on its own and at its threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.domain import PackageCandidate, Proposal
from serving.policy import (
    best_offer,
    callback,
    is_valuable,
    outage_callback,
    outage_notice,
    propose,
    seasonal_package,
)
from serving.settings import ActionPolicy, Callbacks, Offer, RiskBands, SeasonalPackages
from tests.serving.builders import NOON, contact, score

SECOND = timedelta(seconds=1)
# a score's value is 12 x the monthly fee in these tests (`builders.score`): 100 is worth 1,200
POLICY = ActionPolicy(
    offers=[Offer(id="half", cost=30.0, save_rate={"default": 0.5, "enterprise": 0.25})],
    callbacks=Callbacks(min_probability=0.08, min_value=1200.0, save_rate=0.5, cost=15.0),
)
COMPLAINT = ("tickets_complaint_90d",)


def _offers(*offers: Offer) -> ActionPolicy:
    return POLICY.model_copy(update={"offers": list(offers)})


# --- retention offers ---------------------------------------------------------------------


def test_an_offer_is_worth_probability_times_value_times_save_rate_minus_its_cost() -> None:
    offer = best_offer(score(0.25), contact(), POLICY)  # 0.25 x 1200 x 0.5 - 30 = 120
    assert offer == Proposal(
        "retention_offer",
        120.0,
        ("app_push", "sms", "email"),
        "half: risk 25.0% x value 1200 (expected 24-month margin) x save rate 50% - cost 30 "
        "(constant save rate: no treatment-effect model registered)",
        {"offer_id": "half", "cost": 30.0, "save_rate": 0.5},
    )


def test_an_offer_that_only_breaks_even_is_not_made() -> None:
    even = _offers(Offer(id="even", cost=150.0, save_rate={"default": 0.5}))
    assert best_offer(score(0.25), contact(), even) is None  # 0.25 x 1200 x 0.5 - 150 = 0
    cent = _offers(Offer(id="cent", cost=149.99, save_rate={"default": 0.5}))
    made = best_offer(score(0.25), contact(), cent)
    assert made is not None and made.expected_value == pytest.approx(0.01)


def test_each_eligibility_list_alone_excludes_a_customer() -> None:
    by_contract = Offer(id="c", cost=1, save_rate={"default": 0.5}, contract_types=["one_year"])
    by_segment = Offer(id="s", cost=1, save_rate={"default": 0.5}, segments=["enterprise"])
    for offer in (by_contract, by_segment):
        assert best_offer(score(0.2), contact(), _offers(offer)) is None
    one_year = best_offer(score(0.2), contact(contract_type="one_year"), _offers(by_contract))
    enterprise = best_offer(score(0.2), contact(segment="enterprise"), _offers(by_segment))
    assert one_year is not None and enterprise is not None


def test_the_save_rate_is_the_segments_or_else_the_default_or_else_zero() -> None:
    enterprise = best_offer(score(0.25), contact(segment="enterprise"), POLICY)
    assert enterprise is not None and enterprise.details["save_rate"] == 0.25
    assert enterprise.expected_value == pytest.approx(0.25 * 1200 * 0.25 - 30)
    no_default = _offers(Offer(id="e", cost=0.0, save_rate={"enterprise": 0.9}))
    assert best_offer(score(0.9), contact(), no_default) is None  # rate 0: worth nothing


def test_of_equally_good_offers_the_first_in_the_catalogue_wins() -> None:
    twins = _offers(
        Offer(id="first", cost=30, save_rate={"default": 0.5}),
        Offer(id="second", cost=30, save_rate={"default": 0.5}),
    )
    made = best_offer(score(0.25), contact(), twins)
    assert made is not None and made.details["offer_id"] == "first"


@given(
    p=st.floats(0.0, 1.0),
    fee=st.floats(0.0, 500.0),
    offers=st.lists(
        st.tuples(st.floats(0.0, 200.0), st.floats(0.0, 1.0), st.booleans()), max_size=5
    ),
)
def test_the_best_offer_is_the_largest_positive_net_value_among_the_eligible(
    p: float, fee: float, offers: list[tuple[float, float, bool]]
) -> None:
    catalogue = [
        Offer(
            id=f"o{i}",
            cost=cost,
            save_rate={"default": rate},
            contract_types=None if open_to_all else ["two_year"],
        )
        for i, (cost, rate, open_to_all) in enumerate(offers)
    ]
    policy = _offers(*catalogue)
    value = fee * 12
    nets = [p * value * o.rate("consumer") - o.cost for o in catalogue if o.contract_types is None]
    made = best_offer(score(p, monthly_fee=fee), contact(monthly_fee=fee), policy)
    if not nets or max(nets) <= 0:
        assert made is None
    else:
        assert made is not None and made.expected_value == round(max(nets), 2)


# --- account-manager callbacks ------------------------------------------------------------


def test_a_valuable_customer_with_complaint_driven_risk_gets_a_callback() -> None:
    at_risk = score(0.2, ("days_to_contract_end", *COMPLAINT, "repeat_complaints_90d"))
    call = callback(at_risk, contact(), POLICY, NOON)  # 0.2 x 1200 x 0.5 - 15 = 105
    assert call == Proposal(
        "callback",
        105.0,
        ("phone",),
        "complaint-driven risk (tickets_complaint_90d, repeat_complaints_90d): risk 20.0% x "
        "value 1200 (expected 24-month margin) x save rate 50% - cost 15",
        {
            "drivers": ["tickets_complaint_90d", "repeat_complaints_90d"],
            "cost": 15.0,
            "renewal": False,
        },
        priority=240.0,
        due_at=NOON + timedelta(hours=4),
    )


@pytest.mark.parametrize(
    "who",
    [
        {"segment": "enterprise"},
        {"has_account_manager": True},
        {"monthly_fee": 100.0},  # value exactly the threshold, 1200
    ],
    ids=["enterprise", "account manager", "value at the threshold"],
)
def test_any_one_sign_of_value_alone_earns_a_callback(who: dict[str, object]) -> None:
    small = {"monthly_fee": 99.99, **who}
    worth = 12 * float(small["monthly_fee"])  # type: ignore[arg-type]
    assert is_valuable(contact(**small), worth, POLICY)
    assert callback(score(0.2, COMPLAINT, **small), contact(**small), POLICY, NOON) is not None


def test_a_customer_with_no_sign_of_value_gets_no_callback() -> None:
    small = contact(monthly_fee=99.99)  # worth 1199.88, consumer, no account manager
    assert not is_valuable(small, 1199.88, POLICY)
    assert callback(score(0.9, COMPLAINT, monthly_fee=99.99), small, POLICY, NOON) is None


def test_a_callback_needs_the_minimum_probability_exactly() -> None:
    assert callback(score(0.08, COMPLAINT), contact(), POLICY, NOON) is not None
    assert callback(score(0.0799999, COMPLAINT), contact(), POLICY, NOON) is None


def test_a_callback_needs_a_complaint_or_a_contract_end_among_the_reasons() -> None:
    assert callback(score(0.5, ("bill_30d", "tenure_months")), contact(), POLICY, NOON) is None
    renewal = callback(score(0.5, ("days_to_contract_end", "bill_30d")), contact(), POLICY, NOON)
    assert renewal is not None and renewal.details["drivers"] == ["days_to_contract_end"]
    assert renewal.details["renewal"] is True
    for feature in POLICY.callbacks.complaint_features:
        call = callback(score(0.5, ("bill_30d", feature)), contact(), POLICY, NOON)
        assert call is not None and call.details["drivers"] == [feature]


def test_a_callback_that_only_breaks_even_is_not_made() -> None:
    even = POLICY.model_copy(
        update={"callbacks": POLICY.callbacks.model_copy(update={"cost": 60.0})}
    )
    assert callback(score(0.1, COMPLAINT), contact(), even, NOON) is None  # 0.1x1200x0.5 - 60
    assert callback(score(0.1001, COMPLAINT), contact(), even, NOON) is not None


@pytest.mark.parametrize(("band", "hours"), [("high", 4), ("medium", 24), ("low", 24)])
def test_a_callback_is_due_sooner_at_high_risk(band: str, hours: int) -> None:
    call = callback(score(0.09, COMPLAINT, band=band), contact(), POLICY, NOON)
    assert call is not None and call.due_at == NOON + timedelta(hours=hours)
    assert call.priority == pytest.approx(0.09 * 1200)


# --- outages ------------------------------------------------------------------------------


def test_an_outage_notice_is_a_service_message_carrying_the_event() -> None:
    details = {"event_id": "NOC-7", "sites": ["S1"], "severity": "major"}
    notice = outage_notice(details)
    assert notice == Proposal(
        "outage_notice",
        0.0,
        ("sms", "app_push"),
        "network outage NOC-7 at the customer's home cell",
        details,
    )
    assert notice.details is not details  # the proposal's own copy


@pytest.mark.parametrize(
    ("severity", "cared_for", "called"),
    [("critical", True, True), ("major", True, False), ("critical", False, False)],
)
def test_a_severe_outage_brings_a_service_call_to_customers_in_care_whatever_their_value(
    severity: str, cared_for: bool, called: bool
) -> None:
    small = {"monthly_fee": 9.0}  # worth a fraction of the callback threshold, low risk
    scored = score(0.01, band="low", **small)
    call = outage_callback(scored, contact(**small), POLICY, NOON, "NOC-8", severity, cared_for)
    assert (call is not None) is called
    if call is not None:
        assert call.details == {"event_id": "NOC-8", "service_duty": True}
        assert "service duty" in call.reason and call.due_at == NOON + timedelta(hours=4)


@pytest.mark.parametrize(
    ("band", "who", "called"),
    [
        ("high", {"monthly_fee": 100.0}, True),
        ("high", {"monthly_fee": 10.0, "segment": "enterprise"}, True),
        ("high", {"monthly_fee": 10.0, "has_account_manager": True}, True),
        ("high", {"monthly_fee": 99.99}, False),
        ("medium", {"monthly_fee": 500.0, "segment": "enterprise"}, False),
    ],
)
def test_an_outage_brings_a_callback_to_valuable_customers_at_high_risk_only(
    band: str, who: dict[str, object], called: bool
) -> None:
    scored = score(0.3, band=band, **who)
    call = outage_callback(scored, contact(**who), POLICY, NOON, "NOC-7")
    assert (call is not None) is called
    if call is not None:
        value = 12 * float(who["monthly_fee"])  # type: ignore[arg-type]
        assert call == Proposal(
            "callback",
            0.0,
            ("phone",),
            f"high-risk customer (30.0%, value {value:.0f} (expected 24-month margin)) hit by "
            "outage NOC-7",
            {"event_id": "NOC-7", "service_duty": False},
            priority=round(0.3 * value, 2),
            due_at=NOON + timedelta(hours=4),
        )


# --- seasonal packages --------------------------------------------------------------------

WEEK = datetime(2026, 12, 7, tzinfo=UTC)  # a surge week's Monday
PACKAGES = SeasonalPackages(lead_days=21, message_cost=0.5, value={"roaming_pack": 20.0})
PACKAGE_POLICY = POLICY.model_copy(update={"packages": PACKAGES})


def _candidate(propensity: float = 0.5, package: str = "roaming_pack") -> PackageCandidate:
    return PackageCandidate(package, "harbour", WEEK, propensity)


@pytest.mark.parametrize(
    ("now", "proposed"),
    [
        (WEEK - timedelta(days=21) - SECOND, False),
        (WEEK - timedelta(days=21), True),  # the lead window opens
        (WEEK, True),
        (WEEK + timedelta(days=7) - SECOND, True),
        (WEEK + timedelta(days=7), False),  # the surge week is over
    ],
)
def test_a_package_is_proposed_from_its_lead_window_to_the_end_of_its_surge_week(
    now: datetime, proposed: bool
) -> None:
    made = seasonal_package(_candidate(), PACKAGE_POLICY, now)
    assert (made is not None) is proposed


def test_a_package_notice_is_worth_propensity_times_margin_minus_the_message() -> None:
    made = seasonal_package(_candidate(0.25), PACKAGE_POLICY, WEEK)
    assert made == Proposal(
        "seasonal_package",
        4.5,
        ("app_push", "sms", "email"),
        "roaming pack: demand surge expected in harbour from 07 Dec; purchase propensity 25%",
        {
            "package": "roaming_pack",
            "week_start": "2026-12-07",
            "propensity": 0.25,
            "campaign": "roaming_pack:2026-12-07",
            "cost": 0.5,
        },
    )
    assert seasonal_package(_candidate(0.025), PACKAGE_POLICY, WEEK) is None  # 0.5 - 0.5 = 0
    assert seasonal_package(_candidate(0.9, "unknown_pack"), PACKAGE_POLICY, WEEK) is None


def test_all_proposals_come_best_first() -> None:
    candidates = [_candidate(0.1), _candidate(0.9), _candidate(0.5)]
    found = propose(score(0.3, COMPLAINT), contact(), PACKAGE_POLICY, WEEK, candidates)
    # callback 0.3 x 1200 x 0.5 - 15, offer 0.3 x 1200 x 0.5 - 30, packages p x 20 - 0.5
    assert [(p.action_type, p.expected_value) for p in found] == [
        ("callback", 165.0),
        ("retention_offer", 150.0),
        ("seasonal_package", 17.5),
        ("seasonal_package", 9.5),
        ("seasonal_package", 1.5),
    ]
    assert (
        propose(score(0.001, monthly_fee=1.0), contact(monthly_fee=1.0), PACKAGE_POLICY, NOON) == []
    )


# --- risk bands ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "band"),
    [(0.1, "high"), (0.0999999, "medium"), (0.04, "medium"), (0.0399999, "low"), (0.0, "low")],
)
def test_a_band_starts_at_its_threshold(p: float, band: str) -> None:
    assert RiskBands(high=0.1, medium=0.04).band(p) == band


def test_an_ineligible_offer_does_not_hide_those_after_it() -> None:
    catalogue = _offers(
        Offer(id="two_year_only", cost=1, save_rate={"default": 0.9}, contract_types=["two_year"]),
        Offer(id="enterprise_only", cost=1, save_rate={"default": 0.9}, segments=["enterprise"]),
        Offer(id="for_all", cost=1, save_rate={"default": 0.1}),
    )
    made = best_offer(score(0.2), contact(), catalogue)
    assert made is not None and made.details["offer_id"] == "for_all"


def test_values_and_priorities_are_rounded_to_cents() -> None:
    p = 0.123457  # value 1200: callback 0.123457 x 1200 x 0.5 - 15 = 59.0742; priority 148.1484
    call = callback(score(p, COMPLAINT), contact(), POLICY, NOON)
    assert call is not None and (call.expected_value, call.priority) == (59.07, 148.15)
    offer = best_offer(score(p), contact(), POLICY)  # 74.0742 - 30
    assert offer is not None and offer.expected_value == 44.07
    outage = outage_callback(score(p, band="high"), contact(), POLICY, NOON, "N")
    assert outage is not None and outage.priority == 148.15
    package = seasonal_package(_candidate(0.123456), PACKAGE_POLICY, WEEK)  # 2.46912 - 0.5
    assert package is not None and package.expected_value == 1.97
    assert package.details["propensity"] == 0.1235


def test_a_package_notice_worth_less_than_one_unit_is_still_made() -> None:
    made = seasonal_package(_candidate(0.05), PACKAGE_POLICY, WEEK)  # 0.05 x 20 - 0.5
    assert made is not None and made.expected_value == 0.5
