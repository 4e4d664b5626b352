"""Decisions by incremental value, the control group, exploration and the budget."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from serving.decisions import DecisionService
from serving.domain import EffectEstimates
from serving.experiment import arm_of, assign, period_of, unit_hash
from serving.forecasts import CapacityForecast
from serving.policy import best_retention, propose, retention_options
from serving.settings import ActionPolicy, Budget, Experiment, ServingSettings
from tests.serving.builders import NOON, score

POLICY = ActionPolicy()
VALUE = 1_800.0  # the customers' value (expected margin) in these tests


def estimates(**reduction: float) -> EffectEstimates:
    return EffectEstimates("churn_effects v7", 60, dict(reduction))


def with_effects(p: float = 0.05, band: str | None = None, **reduction: float) -> Any:
    return replace(score(p, band=band, value=VALUE), effects=estimates(**reduction))


def customer(customer_id: str, **reduction: float) -> Any:
    """A customer at 20 % risk whose estimates are zero but for `reduction`."""
    full = dict.fromkeys(
        ("data_boost", "loyalty_discount", "contract_upgrade_bonus", "callback"), 0.0
    )
    return replace(with_effects(p=0.2, **{**full, **reduction}), customer_id=customer_id)


def test_the_action_of_largest_incremental_value_is_chosen() -> None:
    item = with_effects(
        data_boost=0.01, loyalty_discount=0.04, contract_upgrade_bonus=0.05, callback=0.02
    )
    best = best_retention(item, item.contact, POLICY, NOON)
    assert best is not None
    # 0.04 x 1,800 - 30 = 42 beats 0.05 x 1,800 - 60 = 30 and 0.01 x 1,800 - 5 = 13
    assert best.details["offer_id"] == "loyalty_discount"
    assert best.expected_value == pytest.approx(42.0)
    assert "estimated to cut the chance of leaving within 60 days by 4.0 points" in best.reason
    assert "churn_effects v7" in best.reason


def test_no_marketing_action_when_none_is_worth_it_and_sleeping_dogs_are_left_alone() -> None:
    dog = with_effects(
        p=0.3, data_boost=-0.02, loyalty_discount=-0.01, contract_upgrade_bonus=0.01, callback=-0.03
    )
    assert best_retention(dog, dog.contact, POLICY, NOON) is None
    assert propose(dog, dog.contact, POLICY, NOON) == []  # high risk, yet nothing is sent
    options = retention_options(dog, dog.contact, POLICY, NOON)
    pushed = next(o for o in options if o.details["offer_id"] == "data_boost")
    assert (
        "raise the chance of leaving" in pushed.reason
        and "push this customer away" in pushed.reason
    )


def test_eligibility_rules_still_hold_with_effects() -> None:
    item = replace(
        score(0.2, value=VALUE, contract_type="two_year"),
        effects=estimates(loyalty_discount=0.5, data_boost=0.0, callback=0.5),
    )
    offered = {
        o.details.get("offer_id") or o.action_type
        for o in retention_options(item, item.contact, POLICY, NOON)
    }
    assert "loyalty_discount" not in offered  # month-to-month and one-year only
    assert "callback" in offered  # worth 1,800 >= 1,500: valuable


def test_without_an_effect_model_the_constant_save_rate_is_the_fallback_and_says_so() -> None:
    item = score(0.3)
    found = propose(item, item.contact, POLICY, NOON)
    offer = next(p for p in found if p.action_type == "retention_offer")
    assert "save rate" in offer.reason and "no treatment-effect model registered" in offer.reason


def test_arms_are_a_stable_hash_with_the_configured_shares() -> None:
    experiment = Experiment(control_share=0.05, exploration_share=0.05, period_months=3)
    ids = [f"C{i:08d}" for i in range(40_000)]
    arms = [arm_of(c, NOON, experiment) for c in ids]
    assert abs(arms.count("control") / len(ids) - 0.05) < 0.005
    assert abs(arms.count("exploration") / len(ids) - 0.05) < 0.005
    # the same arm all period long, a new draw the next period
    later = NOON + timedelta(days=25)
    assert period_of(NOON, 3) == period_of(later, 3) == "2026-10"
    assert all(
        arm_of(c, later, experiment) == a for c, a in zip(ids[:2000], arms[:2000], strict=True)
    )
    next_period = [arm_of(c, datetime(2027, 1, 5, tzinfo=UTC), experiment) for c in ids[:2000]]
    assert next_period != arms[:2000]
    assert 0 <= unit_hash("a", "b") < 1 and unit_hash("a", "b") == unit_hash("a", "b")


def customer_in(arm: str, experiment: Experiment) -> str:
    return next(f"C{i:08d}" for i in range(10_000) if arm_of(f"C{i:08d}", NOON, experiment) == arm)


def test_control_gets_no_marketing_and_every_proposal_carries_its_probability() -> None:
    experiment = Experiment(control_share=0.1, exploration_share=0.1)
    reduction = {
        "data_boost": 0.01,
        "loyalty_discount": 0.04,
        "contract_upgrade_bonus": 0.0,
        "callback": 0.0,
    }
    for arm in ("policy", "control", "exploration"):
        item = replace(with_effects(p=0.2, **reduction), customer_id=customer_in(arm, experiment))
        found = propose(item, item.contact, POLICY, NOON)
        options = retention_options(item, item.contact, POLICY, NOON)
        assigned = assign(item, found, options, experiment, NOON)
        marketing = [p for p in assigned if p.action_type in ("retention_offer", "callback")]
        assert len(marketing) == 1 and marketing[0].details["arm"] == arm
        k = len(options)  # 4: three offers and a call
        probability = marketing[0].details["assignment_probability"]
        if arm == "control":
            assert probability == pytest.approx(0.1)
        elif arm == "policy":
            assert probability == pytest.approx(0.8 + 0.1 / k)
        else:
            chosen = marketing[0].details.get("offer_id") == "loyalty_discount"
            assert probability == pytest.approx(0.1 / k + 0.8 * chosen)


def test_exploration_draws_uniformly_among_the_eligible_actions() -> None:
    experiment = Experiment(control_share=0.0, exploration_share=0.5)
    counts: dict[str, int] = {}
    for i in range(4_000):
        item = customer(f"C{i:08d}", loyalty_discount=0.05)
        options = retention_options(item, item.contact, POLICY, NOON)
        assigned = assign(
            item, propose(item, item.contact, POLICY, NOON), options, experiment, NOON
        )
        for p in assigned:
            if p.details.get("arm") == "exploration":
                name = p.details.get("offer_id") or p.action_type
                counts[name] = counts.get(name, 0) + 1
    assert set(counts) == {"data_boost", "loyalty_discount", "contract_upgrade_bonus", "callback"}
    assert max(counts.values()) / min(counts.values()) < 1.25


def service(
    tmp_path: Path, budget: Budget, experiment: Experiment | None = None
) -> DecisionService:
    actions = POLICY.model_copy(
        update={
            "budget": budget,
            "experiment": experiment or Experiment(control_share=0, exploration_share=0),
        }
    )
    settings = ServingSettings.model_validate({"actions": actions.model_dump()})
    settings.actions.packages.candidates_file = tmp_path / "none.parquet"
    return DecisionService(None, settings, None, CapacityForecast(tmp_path / "none.parquet", 40))


def test_the_budget_goes_to_the_best_value_per_cost_first(tmp_path: Path) -> None:
    decisions = service(tmp_path, Budget(retention_offer=60.0))
    items = [
        customer("C1", loyalty_discount=0.03),  # 24 for 30
        customer("C2", data_boost=0.01),  # 13 for 5
        customer("C3", loyalty_discount=0.05),  # 60 for 30
    ]
    plans = decisions.plan(items, NOON)
    allowed = {c: [v.allowed for _, v in plan] for c, plan in plans.items()}
    assert allowed == {"C1": [False], "C2": [True], "C3": [True]}  # 5 + 30 spent; 30 more > 60
    _, verdict = plans["C1"][0]
    assert verdict.suppressions[0].code == "budget"
    assert "budget of 60 per 30 days is spent" in verdict.suppressions[0].message


def test_control_group_decisions_are_suppressed_as_such(tmp_path: Path) -> None:
    experiment = Experiment(control_share=0.5, exploration_share=0.0)
    decisions = service(tmp_path, Budget(), experiment)
    ids = [f"C{i:08d}" for i in range(200)]
    items = [customer(c, loyalty_discount=0.05) for c in ids]
    plans = decisions.plan(items, NOON)
    for customer_id, plan in plans.items():
        ((proposal, verdict),) = plan
        if arm_of(customer_id, NOON, experiment) == "control":
            assert not verdict.allowed and verdict.suppressions[0].code == "control_group"
            assert proposal.details["assignment_probability"] == pytest.approx(0.5)
        else:
            assert verdict.allowed


def test_the_control_group_spends_no_budget_and_is_cut_where_the_treated_are(
    tmp_path: Path,
) -> None:
    """Budget 60, offers of 30 in order of value: the treated get two of them, whatever
    the control group holds above them; a control decision is kept where a treated one in
    its place would have fitted, and suppressed for the budget below that."""
    experiment = Experiment(control_share=0.5, exploration_share=0.0)
    decisions = service(tmp_path, Budget(retention_offer=60.0), experiment)
    ids = [f"C{i:08d}" for i in range(40)]
    control = [c for c in ids if arm_of(c, NOON, experiment) == "control"][:3]
    treated = [c for c in ids if arm_of(c, NOON, experiment) == "policy"][:3]
    # value order: control, treated, control, treated, control, treated
    order = [control[0], treated[0], control[1], treated[1], control[2], treated[2]]
    items = [customer(c, loyalty_discount=0.10 - 0.01 * rank) for rank, c in enumerate(order)]
    plans = decisions.plan(items, NOON)
    allowed = {c: plans[c][0][1].allowed for c in treated}
    assert allowed == {treated[0]: True, treated[1]: True, treated[2]: False}
    codes = {c: plans[c][0][1].suppressions[0].code for c in control}
    assert codes == {control[0]: "control_group", control[1]: "control_group",
                     control[2]: "budget"}  # fmt: skip


def test_without_effects_exploration_counts_every_action_the_policy_would_send() -> None:
    """The fallback can propose an offer and a call at once; exploration drawing either
    must log the policy's share too."""
    experiment = Experiment(control_share=0.1, exploration_share=0.2)
    item = replace(
        score(0.3, reasons=("tickets_complaint_90d",), band="high", value=VALUE),
        customer_id=customer_in("exploration", experiment),
    )
    found = propose(item, item.contact, POLICY, NOON)
    sent = {p.details.get("offer_id") or p.action_type for p in found}
    assert sent >= {"callback"} and len(sent) == 2  # an offer and a call
    options = retention_options(item, item.contact, POLICY, NOON)
    (explored,) = [
        p for p in assign(item, found, options, experiment, NOON) if p.details.get("arm")
    ]
    name = explored.details.get("offer_id") or explored.action_type
    expected = 0.2 / len(options) + 0.7 * (name in sent)
    assert explored.details["assignment_probability"] == pytest.approx(expected)


def test_a_control_decision_counts_like_a_sent_one_for_the_contact_rules(tmp_path: Path) -> None:
    """Held out today, held out (not decided again) tomorrow: the treated twin is under the
    offer cooldown, so must the control customer be, or the groups drift apart."""
    from serving.action_log.database import open_engine
    from serving.action_log.log import ActionLog
    from serving.domain import ActionStatus

    experiment = Experiment(control_share=0.5, exploration_share=0.0)
    decisions = service(tmp_path, Budget(), experiment)
    decisions.log = ActionLog(open_engine(f"sqlite:///{tmp_path / 'actions.db'}"))
    held = customer(customer_in("control", experiment), loyalty_discount=0.05)
    treated = customer(customer_in("policy", experiment), loyalty_discount=0.05)
    first = decisions.plan([held, treated], NOON)
    decisions.record_plans([held, treated], first, NOON, "daily")
    stored = {
        r.customer_id: r.status
        for r in decisions.log.decisions(NOON - timedelta(days=1), NOON + timedelta(days=1))
    }
    assert stored == {
        held.customer_id: ActionStatus.CONTROL,
        treated.customer_id: ActionStatus.QUEUED,
    }
    tomorrow = NOON + timedelta(days=1)
    second = decisions.plan([held, treated], tomorrow)
    for plan in second.values():
        ((_, verdict),) = plan
        assert not verdict.allowed and verdict.suppressions[0].code == "offer_cooldown"


def test_outcomes_are_compared_only_while_the_control_membership_holds() -> None:
    """Arms are drawn anew each period: a control customer whose window (or the two months
    before, when an earlier action may still work) crosses into a period where they are
    treated is no clean control; chosen by the hash alone, never by the outcome."""
    from serving.attribution import compared
    from serving.domain import ActionRecord, ActionStatus

    experiment = Experiment(control_share=0.5, exploration_share=0.0, period_months=12)
    boundary = datetime(2027, 1, 1, tzinfo=UTC)
    ids = [f"C{i:08d}" for i in range(400)]
    flips = [
        c
        for c in ids
        if arm_of(c, boundary - timedelta(days=1), experiment) == "control"
        and arm_of(c, boundary, experiment) != "control"
    ]
    stays = [
        c
        for c in ids
        if all(arm_of(c, boundary + timedelta(days=d), experiment) == "control" for d in (-1, 0))
    ]

    def record(customer_id: str, at: datetime) -> ActionRecord:
        return ActionRecord(
            "a1", customer_id, "retention_offer", "k", ActionStatus.CONTROL, "daily", None, None,
            None, None, None, None, None, {"arm": "control"}, [], at, at,
        )  # fmt: skip

    mid_year = datetime(2026, 6, 1, tzinfo=UTC)
    assert flips and stays
    assert compared(record(flips[0], mid_year), experiment)
    assert not compared(record(flips[0], boundary - timedelta(days=20)), experiment)
    assert compared(record(stays[0], boundary - timedelta(days=20)), experiment)
