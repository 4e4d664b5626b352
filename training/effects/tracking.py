"""MLflow for the treatment-effect model: log a run, register it, promote on policy value.

The model is registered under its own name (`churn_effects`) with the churn model's
aliases: each new version is `challenger`; `champion` moves when the challenger's greedy
policy is worth more per customer, by its doubly-robust estimate on the challenger's
held-out campaign months, than the champion's on the same rows.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from features.labels import SNAPSHOT
from training.effects.settings import EffectSettings
from training.effects.training import Effects, TrainedEffects, policy_values
from training.experiments import connect
from training.tracking import (
    Decision,
    LoggedRun,
    contenders,
    data_digest,
    drop_superseded_heldout,
    git_commit,
    keep_heldout,
    record_decision,
    register_challenger,
    typical_row,
)


class EffectPyfunc(PythonModel):
    """The registered effect model: feature rows in, estimated churn reduction by action out."""

    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.effects.reduction(model_input)


def log_effect_run(
    trained: TrainedEffects, frame: pd.DataFrame, label: str, settings: EffectSettings
) -> LoggedRun:
    """Parameters, held-out metrics and the model, the held-out rows kept (`keep_heldout`);
    registered challenger."""
    client = connect(settings)
    split = trained.split
    with mlflow.start_run(run_name=f"effects {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M}"):
        mlflow.log_params(
            {
                **{f"learner_{k}": v for k, v in settings.params.model_dump().items()},
                "learner": "doubly-robust (T-learner outcomes, cross-fitted)",
                "actions": ",".join(trained.effects.actions),
                "horizon_days": settings.horizon_days,
                "label": label,
                "feature_service": settings.feature_service,
                "train_months": ",".join(split.months("train")),
                "test_months": ",".join(split.months("test")),
                "rows_train": len(split.train),
                "rows_test": len(split.test),
            }
        )
        mlflow.set_tags(
            {
                "feature_service": settings.feature_service,
                "training_data_digest": data_digest(frame),
                "git_commit": git_commit(),
                "training_time_range": (
                    f"{frame[SNAPSHOT].min():%Y-%m-%d}..{frame[SNAPSHOT].max():%Y-%m-%d}"
                ),
            }
        )
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in trained.metrics.items()})
        keep_heldout(split.test, settings.heldout_dir, settings)
        example = typical_row(split.test[trained.effects.schema.columns])
        output = pd.DataFrame({a: np.zeros(len(example)) for a in trained.effects.actions})
        logged = register_challenger(
            client, settings, EffectPyfunc(trained.effects), example, output
        )
    drop_superseded_heldout(settings.heldout_dir, settings.registered_model, logged.run_id)
    return logged


def promote_effects(settings: EffectSettings, label: str) -> Decision:
    """Make the challenger champion if its policy is worth more on its held-out campaigns."""
    client = connect(settings)
    name = settings.registered_model
    challenger, champion, test = contenders(
        client, name, settings.heldout_dir, "retain train effects"
    )

    def value(version: str) -> dict[str, float]:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
        effects: Effects = model.effects
        found = policy_values(effects, test, label, settings)
        return {
            "policy_value_dr": found["greedy_dr"].value,
            "policy_value_dr_se": found["greedy_dr"].std_error,
            "no_action_value_dr": found["none_dr"].value,
        }

    new_version = str(challenger.version)
    old_version = None if champion is None else str(champion.version)
    new = value(new_version)
    if old_version is None:
        decision = Decision(True, new_version, None, new, None, "no champion yet")
    elif old_version == new_version:
        decision = Decision(
            False, new_version, old_version, new, new, "the challenger already is the champion"
        )
    else:
        old = value(old_version)
        gain = new["policy_value_dr"] - old["policy_value_dr"]
        wins = gain >= settings.promotion.min_value_gain
        reason = (
            f"DR policy value per customer {gain:+.3f} "
            f"(needs >= {settings.promotion.min_value_gain:+.3f})"
        )
        decision = Decision(wins, new_version, old_version, new, old, reason)
    return record_decision(client, name, decision)
