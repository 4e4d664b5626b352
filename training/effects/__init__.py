"""Treatment effects of retention actions: which action lowers churn for whom, and by how much.

`learner` fits a doubly-robust (DR) learner for several actions against "no action" on
logged randomized campaigns; `evaluation` judges its rankings (Qini, AUUC) and the value of
policies built from it (IPS and DR off-policy estimates with standard errors).
"""

from __future__ import annotations

from training.effects.evaluation import (
    PolicyValue,
    auuc,
    dr_value,
    expected_reward,
    greedy_policy,
    ips_value,
    qini_coefficient,
    qini_curve,
)
from training.effects.learner import NO_ACTION, EffectModel, EffectParams, fit_effect_model

__all__ = [
    "NO_ACTION",
    "EffectModel",
    "EffectParams",
    "PolicyValue",
    "auuc",
    "dr_value",
    "expected_reward",
    "fit_effect_model",
    "greedy_policy",
    "ips_value",
    "qini_coefficient",
    "qini_curve",
]
