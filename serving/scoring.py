"""Score customers with the champion churn model on their live features.

The champion is looked up by alias in the MLflow registry; its run names the Feast
FeatureService it was trained on, and the online features are read through that same
service, so training and serving cannot drift apart. A model whose features the service
does not provide is refused at load time, not at the first request.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore

from features.online_rows import DirectRows, RowReader, row_reader
from features.training_set import service_features
from serving.domain import Channel, Contact, CustomerScore, UnknownCustomer
from serving.effects import LoadedEffects
from serving.explain import CachedContributions, threads_for
from serving.reasons import top_reasons
from serving.settings import ServingSettings
from serving.value import CachedValues
from training.model import ChurnModel
from training.registry import RegistryError, aliased, load_python_model
from training.registry import alias_version as registry_alias_version
from training.settings import TrainingSettings


class ModelLoadError(RuntimeError):
    """The champion cannot be served (missing, unreadable, or its features are not online)."""


@dataclass(frozen=True)
class LoadedModel:
    model: ChurnModel
    name: str
    version: str
    run_id: str
    feature_service: str
    loaded_at: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))


def load_champion(serving: ServingSettings, tracking: TrainingSettings) -> LoadedModel:
    """The model behind the configured alias, with the FeatureService it was trained on."""
    try:
        version = aliased(tracking, serving.model_name, serving.model_alias)
        wrapped = load_python_model(tracking, serving.model_name, version.version)
    except RegistryError as error:
        raise ModelLoadError(str(error)) from error
    model = getattr(wrapped, "model", None)
    if not isinstance(model, ChurnModel):
        raise ModelLoadError(f"model {serving.model_name} v{version.version} is not a churn model")
    service = version.run_tags.get("feature_service") or tracking.feature_service
    return LoadedModel(model, serving.model_name, version.version, version.run_id, service)


def alias_version(serving: ServingSettings, tracking: TrainingSettings) -> str:
    """The version the serving alias points at now."""
    return registry_alias_version(tracking, serving.model_name, serving.model_alias)


CONTACT_VIEW = "customer_contact"
# LightGBM keeps its thread count in one process-wide variable, which every call's
# num_threads sets, and sizes a call's per-thread buffers from it: two calls on two threads
# with different counts (a request's few rows on one thread, the value model's larger batch
# on all cores) can run a parallel loop wider than its buffers and crash the process. So the
# requests of one API process take turns at the models; reading their rows stays concurrent.
MODEL_CALLS = threading.Lock()
CHANNEL_CONSENT: dict[Channel, str] = {
    "sms": "consent_sms",
    "app_push": "consent_app_push",
    "email": "consent_email",
    "phone": "consent_phone",
}


def read_contact(customer_id: str, values: Mapping[str, Any]) -> Contact:
    """A customer's contact profile from its online row; unknown consent is no consent."""
    return Contact(
        customer_id=customer_id,
        segment=str(values["segment"]),
        region=str(values["region"]),
        cell_site_id=str(values["cell_site_id"]),
        contract_type=str(values["contract_type"]),
        monthly_fee=float(values["monthly_fee"]),
        has_account_manager=bool(values["has_account_manager"]),
        consent={
            channel: bool(values[column]) if pd.notna(values[column]) else False
            for channel, column in CHANNEL_CONSENT.items()
        },
        age_band=str(values["age_band"]) if pd.notna(values.get("age_band")) else None,
        large_print=bool(values["large_print"]) if pd.notna(values.get("large_print")) else False,
    )


def scoring_refs(store: FeatureStore, feature_service: str) -> tuple[list[str], str]:
    """What scoring reads ("view:feature"): the service's features, then the contact
    fields it lacks; and the view whose row makes a customer known (the service's first)."""
    service = store.get_feature_service(feature_service)
    model_refs = [
        f"{projection.name_to_use()}:{f.name}"
        for projection in service.feature_view_projections
        for f in projection.features
    ]
    offered = {ref.split(":")[1] for ref in model_refs}
    contact = store.get_feature_view(CONTACT_VIEW)
    refs = model_refs + [
        f"{CONTACT_VIEW}:{f.name}" for f in contact.features if f.name not in offered
    ]
    return refs, service.feature_view_projections[0].name_to_use()


class Scorer:
    """Online features in, calibrated probability, band and reasons out.

    Features come through `features.online_rows.row_reader` (straight from our SQLite
    online store when it is the configured one, through Feast otherwise), become one
    float64 matrix, and go to the booster as numpy; exact contributions come from
    `CachedContributions`. No pandas on the request path.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        store: FeatureStore,
        settings: ServingSettings,
        reader: RowReader | None = None,
        effects: LoadedEffects | None = None,
    ):
        self.loaded = loaded
        self.settings = settings
        model = loaded.model
        offered = set(service_features(store, loaded.feature_service))
        missing = sorted(set(model.schema.columns) - offered)
        if missing:
            raise ModelLoadError(
                f"model {loaded.name} v{loaded.version} needs feature(s) "
                f"{', '.join(missing)} that {loaded.feature_service} does not serve"
            )
        if effects is not None and set(effects.columns) - offered:
            raise ModelLoadError(
                f"model {effects.label} needs feature(s) "
                f"{', '.join(sorted(set(effects.columns) - offered))} that "
                f"{loaded.feature_service} does not serve"
            )
        self.effects = effects
        trained_levels = model.booster.pandas_categorical or []
        if [list(levels) for levels in trained_levels] != list(model.schema.categories.values()):
            raise ModelLoadError(
                f"model {loaded.name} v{loaded.version}: the booster's categories differ "
                "from its feature schema's"
            )
        self.refs, self.presence_view = scoring_refs(store, loaded.feature_service)
        self.reader = reader or row_reader(store, self.refs, self.presence_view)
        self.direct = isinstance(self.reader, DirectRows)  # local reads, no Feast
        self.columns = model.schema.columns
        self.contributions = CachedContributions(model.booster, settings.explanation_cache)
        self.values = CachedValues(model, settings.actions.value)

    def score(
        self, customer_ids: Sequence[str], at: pd.Timestamp
    ) -> list[CustomerScore | UnknownCustomer]:
        rows = self.reader.read(customer_ids, at)
        results: list[CustomerScore | UnknownCustomer] = [UnknownCustomer(c) for c in customer_ids]
        positions = [int(i) for i in np.flatnonzero(rows.known)]
        if not positions:
            return results
        model = self.loaded.model
        columns = {name: [rows.columns[name][i] for i in positions] for name in self.columns}
        matrix = model.schema.matrix(columns)
        fees = np.array([_fee(rows.columns["monthly_fee"][i]) for i in positions])
        with MODEL_CALLS:
            raw = model.booster.predict(matrix, num_threads=threads_for(len(matrix)))
            contributions = self.contributions(matrix)
            worth = self.values(matrix, fees)
            effects = (
                self.effects.estimate(
                    {n: [rows.columns[n][i] for i in positions] for n in self.effects.columns}
                )
                if self.effects is not None
                else [None] * len(positions)
            )
        probabilities = model.calibrate(np.asarray(raw))
        bands = self.settings.risk_bands
        for k, i in enumerate(positions):
            values = rows.row(i)
            probability = float(probabilities[k])
            results[i] = CustomerScore(
                customer_id=customer_ids[i],
                churn_probability=probability,
                risk_band=bands.band(probability),
                reasons=top_reasons(
                    values, self.columns, contributions[k], self.settings.top_reasons
                ),
                contact=read_contact(customer_ids[i], values),
                effects=effects[k],
                model=self.model_label,
                value=worth[k],
            )
        return results

    @property
    def model_label(self) -> str:
        return f"{self.loaded.name} v{self.loaded.version}"

    @property
    def version_key(self) -> str:
        """The churn and effect model versions served: what the model watcher compares."""
        return version_key(self.loaded.version, self.effects.version if self.effects else None)


def _fee(value: Any) -> float:
    """A monthly fee as a number; unknown is NaN (worth nothing: `customer_values`)."""
    return np.nan if value is None or pd.isna(value) else float(value)


def version_key(churn_version: str, effect_version: str | None) -> str:
    """The versions served, as the model watcher compares and reports them."""
    return (
        churn_version if effect_version is None else f"{churn_version} (effects {effect_version})"
    )
