"""The treatment-effect champion: what each retention action would do for a customer.

Optional by design: without a registered model (`retain train effects`), decisions fall
back to the constant save rates and say so. Loaded by alias like the churn model; its
input is the same feature row the churn model reads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving.domain import EffectEstimates
from serving.explain import threads_for
from serving.settings import ServingSettings
from training.effects.training import Effects
from training.registry import RegistryError, aliased, load_python_model
from training.registry import alias_version as registry_alias_version
from training.settings import TrainingSettings

log = logging.getLogger("retain.effects")


@dataclass(frozen=True)
class LoadedEffects:
    effects: Effects
    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def columns(self) -> list[str]:
        return self.effects.schema.columns

    def estimate(self, rows: Mapping[str, Sequence[Any]]) -> list[EffectEstimates]:
        """Each row's estimated churn reduction by action (rows given column-wise)."""
        count = len(rows[self.columns[0]]) if self.columns else 0
        if count == 0:
            return []
        reduction = self.effects.reduction_rows(rows, num_threads=threads_for(count))
        actions = self.effects.actions
        return [
            EffectEstimates(
                self.label,
                self.effects.horizon_days,
                {action: float(value) for action, value in zip(actions, row, strict=True)},
            )
            for row in reduction
        ]


def load_effect_champion(
    serving: ServingSettings, tracking: TrainingSettings
) -> LoadedEffects | None:
    """The treatment-effect model behind the champion alias; None when none is registered
    (or it cannot be loaded: the decisions then fall back, and the log says why)."""
    name = serving.actions.effect_model
    try:
        version = aliased(tracking, name, serving.model_alias)
        wrapped = load_python_model(tracking, name, version.version)
    except RegistryError as error:
        log.info("no treatment-effect model (%s): constant save rates", error)
        return None
    effects = getattr(wrapped, "effects", None)
    if not isinstance(effects, Effects):
        log.error("model %s v%s is not a treatment-effect model: ignored", name, version.version)
        return None
    return LoadedEffects(effects, name, version.version)


def effect_alias_version(serving: ServingSettings, tracking: TrainingSettings) -> str | None:
    try:
        return registry_alias_version(tracking, serving.actions.effect_model, serving.model_alias)
    except RegistryError:
        return None
