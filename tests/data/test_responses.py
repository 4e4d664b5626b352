"""How simulated customers answer retention actions, and the randomized campaign history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.lifecycle.simulator.responses import ACTIONS, Situation, effects, situational

N = 4_000


def situation(**changes: object) -> Situation:
    """A content, long-standing one-year customer; `changes` set what differs."""
    base: dict[str, object] = {
        "bill_shock": np.zeros(N, bool),
        "near_end": np.zeros(N, bool),
        "complaints": np.zeros(N),
        "unresolved": np.zeros(N),
        "negativity": np.zeros(N),
        "outage_hours": np.zeros(N),
        "had_overage": np.zeros(N, bool),
        "tenure_months": np.full(N, 40.0),
        "month_to_month": np.zeros(N, bool),
        "two_year": np.zeros(N, bool),
        "enterprise": np.zeros(N, bool),
        "age": np.full(N, 2),
        "electronic_check": np.zeros(N, bool),
        "relocating": np.zeros(N, bool),
    }
    base.update({k: np.full(N, v) if np.isscalar(v) else v for k, v in changes.items()})
    return Situation(**base)  # type: ignore[arg-type]


def expected(s: Situation) -> pd.Series:
    rng = np.random.default_rng(0)
    found = effects(s, rng.normal(size=N), rng.normal(size=(N, len(ACTIONS))), np.zeros(N, bool))
    return pd.Series(found.expected.mean(axis=0), index=ACTIONS)


def test_each_action_helps_where_its_story_says() -> None:
    calm = expected(situation(tenure_months=10.0))  # not content enough to be annoyed
    assert (
        expected(situation(tenure_months=10.0, bill_shock=True))["loyalty_discount"]
        < calm["loyalty_discount"] - 1.0
    )
    assert (
        expected(situation(tenure_months=10.0, near_end=True))["contract_upgrade_bonus"]
        < calm["contract_upgrade_bonus"] - 1.2
    )
    angry = expected(situation(tenure_months=10.0, complaints=3.0, unresolved=1.0, negativity=0.6))
    assert angry["callback"] < calm["callback"] - 1.5
    assert (
        expected(situation(tenure_months=10.0, had_overage=True))["data_boost"]
        < calm["data_boost"] - 0.5
    )
    # a discount does nothing more for a customer angry about faults than for a calm one
    assert angry["loyalty_discount"] == pytest.approx(calm["loyalty_discount"])


def test_contact_annoys_content_customers_and_nothing_keeps_one_who_moves() -> None:
    content = situation()
    rng = np.random.default_rng(1)
    averse = effects(content, np.zeros(N), np.zeros((N, 4)), np.ones(N, bool))
    fond = effects(content, np.zeros(N), np.zeros((N, 4)), np.zeros(N, bool))
    assert (averse.realised - fond.realised)[:, 0].min() == pytest.approx(1.0)  # a message
    assert (averse.realised - fond.realised)[:, 3].min() == pytest.approx(0.6)  # a call
    # expected given observables: the annoyance weighted by how likely aversion is
    assert fond.expected[0, 0] - situation_effect(content) == pytest.approx(0.25)
    moving = effects(situation(relocating=True, bill_shock=True), rng.normal(size=N),
                     rng.normal(size=(N, 4)), np.ones(N, bool))  # fmt: skip
    assert not moving.realised.any() and not moving.expected.any()


def situation_effect(s: Situation) -> float:
    return float(situational(s)[0, 0])


def test_individual_variation_hides_the_effect_from_any_single_column() -> None:
    rng = np.random.default_rng(2)
    s = situation(
        bill_shock=rng.random(N) < 0.2,
        near_end=rng.random(N) < 0.1,
        complaints=rng.poisson(0.4, N).astype(float),
        tenure_months=rng.uniform(0, 70, N),
        month_to_month=rng.random(N) < 0.5,
    )
    found = effects(s, rng.normal(size=N), rng.normal(size=(N, 4)), rng.random(N) < 0.3)
    spread = found.realised - found.expected
    assert 0.3 < spread.std() < 0.6  # noise beyond what is observable
    columns = {
        "bill_shock": s.bill_shock,
        "near_end": s.near_end,
        "complaints": s.complaints,
        "tenure": s.tenure_months,
        "mtm": s.month_to_month,
    }
    for k in range(4):
        for values in columns.values():
            r = np.corrcoef(found.realised[:, k], values.astype(float))[0, 1]
            assert abs(r) < 0.9


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("responses") / "lifecycle"
    generate(
        DataSettings.model_validate({"out_dir": out, "customers": 6_000, "months": 12, "seed": 8})
    )
    return out


def test_campaigns_randomize_among_eligible_actions_with_logged_probabilities(world: Path) -> None:
    campaigns = pd.read_parquet(world / "campaigns.parquet")
    customers = pd.read_parquet(world / "customers.parquet").set_index("customer_id")
    assert campaigns["assignment_probability"].between(0, 1, inclusive="right").all()
    control = campaigns[~campaigns["treated"]]
    assert (control["offer_id"] == "none").all()
    assert control["assignment_probability"].eq(0.2).all()
    assert abs(len(control) / len(campaigns) - 0.2) < 0.02
    # each treated row's probability is 0.8 split over the actions the customer may get
    treated = campaigns[campaigns["treated"]]
    profile = customers.loc[treated["customer_id"]]
    loyalty = profile["contract_type"].isin(["month_to_month", "one_year"]).to_numpy()
    valuable = (
        (profile["segment"] == "enterprise")
        | profile["account_manager_id"].notna()
        | (profile["monthly_fee"] >= 1500 / 18)
    ).to_numpy()
    eligible_count = 2 + loyalty + valuable
    assert np.allclose(treated["assignment_probability"], 0.8 / eligible_count)
    assert not treated.loc[~loyalty, "offer_id"].eq("loyalty_discount").any()
    assert not treated.loc[~valuable, "offer_id"].eq("callback").any()


def test_truth_holds_every_action_for_every_customer_month(world: Path) -> None:
    hazard = pd.read_parquet(world / "truth" / "churn_hazard.parquet")
    for action in ACTIONS:
        assert hazard[f"effect_{action}"].notna().all()
        assert hazard[f"expected_effect_{action}"].notna().all()
    effects_truth = pd.read_parquet(world / "truth" / "treatment_effects.parquet")
    treated = effects_truth[effects_truth["action"] != "none"]
    assert (treated["true_effect"] < 0).mean() > 0.6  # most contacts help ...
    assert (treated["true_effect"] > 0).mean() > 0.05  # ... some push customers away
    assert (effects_truth.loc[effects_truth["action"] == "none", "true_effect"] == 0).all()
