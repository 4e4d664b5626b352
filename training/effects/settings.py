"""Settings of the treatment-effect model, loaded from configs/effects.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from training.settings import HELDOUT_DIR, TrackedSettings


class EffectLearnerParams(BaseModel):
    """The DR-learner's LightGBM settings (`training.effects.learner.EffectParams`)."""

    model_config = {"extra": "forbid"}

    method: Literal["offset", "dr"] = Field(
        "offset", description="Baseline-offset learner, or the doubly-robust learner."
    )
    outcome_rounds: int = Field(400, ge=10)
    outcome_leaves: int = Field(31, ge=2)
    outcome_min_child_samples: int = Field(200, ge=1)
    effect_rounds: int = Field(100, ge=10)
    effect_leaves: int = Field(2, ge=2)
    effect_min_child_samples: int = Field(300, ge=1)
    folds: int = Field(3, ge=2, le=10, description="Cross-fitting folds (dr, acceptance index).")
    acceptance_index: bool = Field(
        True,
        description="offset: where take-up is logged, model an action's effect as a line in "
        "its acceptance log-odds (training.effects.learner.AcceptanceIndex).",
    )
    acceptance_leaves: int = Field(7, ge=2, description="The acceptance model's tree size.")
    acceptance_min_child_samples: int = Field(200, ge=1)


class EffectPromotion(BaseModel):
    """A challenger replaces the champion when its greedy policy's doubly-robust value per
    customer on the challenger's held-out campaigns beats the champion's by this much."""

    min_value_gain: float = 0.0


class EffectSettings(TrackedSettings):
    """The treatment-effect model: what each retention action does to churn, per customer."""

    config_file: ClassVar[str] = "effects.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_EFFECTS_")

    experiment: str = "effects"
    registered_model: str = "churn_effects"
    feature_service: str = "churn_v1"
    horizon_days: int = Field(60, ge=7, description="Churn within this many days of the action.")
    test_months: int = Field(3, ge=1, description="Latest campaign months held out.")
    heldout_dir: Path = Field(
        HELDOUT_DIR,
        description="The challenger's held-out rows, for promotion: customer rows, kept on "
        "this disk beside the training sets rather than in MLflow.",
    )
    seed: int = 7
    actions: list[str] = Field(
        default_factory=lambda: [
            "data_boost",
            "loyalty_discount",
            "contract_upgrade_bonus",
            "callback",
        ],
        description="Actions to learn (offer ids and callback); `none` is the baseline.",
    )
    action_costs: dict[str, float] = Field(
        default_factory=lambda: {
            "data_boost": 5.0,
            "loyalty_discount": 30.0,
            "contract_upgrade_bonus": 60.0,
            "callback": 15.0,
        },
        description="As in configs/serving.yaml; for the policy values of the evaluation.",
    )
    value_months: float = Field(36.0, gt=0, description="Customer value: monthly fee x this...")
    margin: float = Field(0.5, gt=0, le=1, description="...x this (as configs/serving.yaml).")
    baseline_rows: int = Field(
        200_000,
        ge=0,
        description="Customer-months nobody contacted, sampled for the no-action baseline "
        "(offset learner); 0 learns it from the campaigns' no-action arm alone.",
    )
    params: EffectLearnerParams = EffectLearnerParams()
    promotion: EffectPromotion = EffectPromotion()
    outcomes_file: Path = Field(
        Path("data/outcomes/decision_outcomes.parquet"),
        description="The engine's attributed decisions (`retain attribute`), learnt from too.",
    )
    training_set_file: Path = Field(
        Path("data/training/effects.parquet"), description="The last training set, kept."
    )
