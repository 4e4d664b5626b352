"""The treatment-effect model against the simulator's true effects, on the demo world.

Trained as `retain train effects` trains it (Feast's point-in-time join of the churn
features to every randomized campaign assignment), judged on the held-out campaign months
against `truth/`: the expected reduction of each customer's 60-day churn probability by
each action given what the operator observes (what an oracle may know).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from features.build import build_directory
from features.engine import EngineSettings
from features.labels import ACTION, PROPENSITY, SNAPSHOT
from features.lifecycle.validate import resolve_as_of
from features.settings import FeatureSettings
from features.store import apply, open_store
from features.training_set import effect_training_set
from training.effects.evaluation import greedy_policy, qini_coefficient
from training.effects.learner import NO_ACTION
from training.effects.settings import EffectSettings
from training.effects.training import customer_value, eligibility, train_effects

REPO = Path(__file__).resolve().parents[2]
LABEL = "churned_within_60d"
ACTIONS = ("data_boost", "loyalty_discount", "contract_upgrade_bonus", "callback")


def two_month(logit: np.ndarray) -> np.ndarray:
    return 1 - (1 - 1 / (1 + np.exp(-logit))) ** 2


@pytest.fixture(scope="module")
def judged(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("effects")
    (root / "features" / "repo").mkdir(parents=True)
    shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", root / "features" / "repo")
    (root / "data").mkdir()
    (root / "data" / "lifecycle").symlink_to(demo_data)
    features = FeatureSettings.model_validate(
        {"repo_path": root / "features" / "repo", "lifecycle_dir": root / "data" / "lifecycle"}
    )
    build_directory(
        features.lifecycle_dir,
        features.tables_dir,
        resolve_as_of(demo_data, None),
        EngineSettings(),
    )
    store = open_store(features)
    apply(store)
    settings = EffectSettings()
    frame = effect_training_set(
        store, features.lifecycle_dir, 60, "churn_v1", None, settings.baseline_rows
    )
    trained = train_effects(frame, LABEL, settings)
    test = trained.split.test.reset_index(drop=True)
    estimate = trained.effects.reduction(test).add_prefix("estimate_")
    # the request's fast path (no pandas), on the same rows
    rows = {name: test[name].tolist() for name in trained.effects.schema.columns}
    fast = pd.DataFrame(
        trained.effects.reduction_rows(rows), columns=[f"fast_{a}" for a in trained.effects.actions]
    )
    # the truth of each held-out assignment's customer-month, for every action
    hazard = pd.read_parquet(demo_data / "truth" / "churn_hazard.parquet")
    month = test[SNAPSHOT].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M")
    keyed = test.assign(month=month.dt.to_timestamp().dt.tz_localize("UTC"))
    truth = keyed.merge(hazard, on=["customer_id", "month"], how="left", validate="m:1")
    h = truth["hazard"].to_numpy(dtype="float64")
    base = np.log(h / (1 - h)) - truth["logit_campaign"].to_numpy(dtype="float64")
    for a in ACTIONS:
        effect = truth[f"expected_effect_{a}"].to_numpy(dtype="float64")
        test[f"true_{a}"] = two_month(base) - two_month(base + effect)
    return pd.concat([test, estimate, fast], axis=1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("action", "threshold"),
    [("loyalty_discount", 0.75), ("contract_upgrade_bonus", 0.7), ("data_boost", 0.65)],
)
def test_estimates_rank_like_the_true_effects(
    judged: pd.DataFrame, action: str, threshold: float
) -> None:
    rho = spearmanr(judged[f"estimate_{action}"], judged[f"true_{action}"]).statistic
    assert rho >= threshold, f"{action}: Spearman {rho:.3f}"


@pytest.mark.slow
def test_a_request_reads_the_same_effects_as_the_reference_path(judged: pd.DataFrame) -> None:
    for action in ACTIONS:
        assert np.array_equal(judged[f"fast_{action}"], judged[f"estimate_{action}"]), action


@pytest.mark.slow
@pytest.mark.parametrize("action", ["loyalty_discount", "contract_upgrade_bonus"])
def test_qini_approaches_the_oracles(judged: pd.DataFrame, action: str) -> None:
    rows = judged[ACTION].isin([action, NO_ACTION]).to_numpy()
    part = judged[rows]
    args = (
        (part[ACTION] == action).to_numpy(),
        part[LABEL].to_numpy(dtype="float64"),
        part[PROPENSITY].to_numpy(dtype="float64"),
    )
    model = qini_coefficient(part[f"estimate_{action}"].to_numpy(), *args)
    oracle = qini_coefficient(part[f"true_{action}"].to_numpy(), *args)
    assert oracle > 0
    assert model >= 0.6 * oracle, f"{action}: Qini {model:.4f} against the oracle's {oracle:.4f}"


@pytest.mark.slow
def test_acting_on_the_estimates_earns_most_of_what_the_truth_would(judged: pd.DataFrame) -> None:
    settings = EffectSettings()
    value = customer_value(judged, settings)
    allowed = eligibility(judged, ACTIONS, settings)
    costs = settings.action_costs
    true = judged[[f"true_{a}" for a in ACTIONS]].set_axis(list(ACTIONS), axis=1)
    estimate = judged[[f"estimate_{a}" for a in ACTIONS]].set_axis(list(ACTIONS), axis=1)

    def worth(choice: np.ndarray) -> float:
        return float(
            np.mean(
                [
                    0.0 if a == NO_ACTION else true[a].iat[i] * value[i] - costs[a]
                    for i, a in enumerate(choice)
                ]
            )
        )

    model = worth(greedy_policy(estimate, value, costs, allowed))
    oracle = worth(greedy_policy(true, value, costs, allowed))
    everyone = worth(np.full(len(judged), "data_boost"))
    assert model >= 0.8 * oracle, f"model {model:.2f} vs oracle {oracle:.2f} per customer"
    assert model > everyone + 10
