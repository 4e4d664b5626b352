"""Score customers with the champion churn model on their live features.

The champion is looked up by alias in the MLflow registry; its run names the Feast
FeatureService it was trained on, and the online features are read through that same
service, so training and serving cannot drift apart. A model whose features the service
does not provide is refused at load time, not at the first request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import mlflow
import pandas as pd
from feast import FeatureStore
from mlflow import MlflowClient

from features.request_time import REQUEST_TIME_FIELD
from features.training_set import service_features
from serving.reasons import Reason, top_reasons
from serving.settings import Channel, ServingSettings
from training.model import ChurnModel
from training.settings import TrainingSettings
from training.tracking import connect


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
    client: MlflowClient = connect(tracking)
    try:
        version = client.get_model_version_by_alias(serving.model_name, serving.model_alias)
        run = client.get_run(str(version.run_id))
        pyfunc = mlflow.pyfunc.load_model(f"models:/{serving.model_name}/{version.version}")
    except mlflow.exceptions.MlflowException as error:
        raise ModelLoadError(
            f"model {serving.model_name}@{serving.model_alias}: {error.message}"
        ) from error
    model = getattr(pyfunc.unwrap_python_model(), "model", None)
    if not isinstance(model, ChurnModel):
        raise ModelLoadError(f"model {serving.model_name} v{version.version} is not a churn model")
    service = run.data.tags.get("feature_service") or tracking.feature_service
    return LoadedModel(model, serving.model_name, str(version.version), run.info.run_id, service)


CONTACT_VIEW = "customer_contact"
CHANNEL_CONSENT: dict[Channel, str] = {
    "sms": "consent_sms",
    "app_push": "consent_app_push",
    "email": "consent_email",
    "phone": "consent_phone",
}


@dataclass(frozen=True)
class Contact:
    """What the action engine knows about reaching a customer (the customer_contact view)."""

    customer_id: str
    segment: str
    region: str
    cell_site_id: str
    contract_type: str
    monthly_fee: float
    has_account_manager: bool
    consent: dict[Channel, bool]

    @classmethod
    def from_row(cls, row: pd.Series) -> Contact:
        return cls(
            customer_id=str(row["customer_id"]),
            segment=str(row["segment"]),
            region=str(row["region"]),
            cell_site_id=str(row["cell_site_id"]),
            contract_type=str(row["contract_type"]),
            monthly_fee=float(row["monthly_fee"]),
            has_account_manager=bool(row["has_account_manager"]),
            consent={
                channel: bool(row[column]) if pd.notna(row[column]) else False
                for channel, column in CHANNEL_CONSENT.items()
            },
        )


def alias_version(serving: ServingSettings, tracking: TrainingSettings) -> str:
    """The version the serving alias points at now."""
    client: MlflowClient = connect(tracking)
    version = client.get_model_version_by_alias(serving.model_name, serving.model_alias)
    return str(version.version)


@dataclass(frozen=True)
class CustomerScore:
    customer_id: str
    churn_probability: float
    risk_band: str
    reasons: list[Reason]
    contact: Contact


@dataclass(frozen=True)
class UnknownCustomer:
    customer_id: str


class Scorer:
    """Online features in, calibrated probability, band and reasons out."""

    def __init__(self, loaded: LoadedModel, store: FeatureStore, settings: ServingSettings):
        self.loaded = loaded
        self.store = store
        self.settings = settings
        self.service = store.get_feature_service(loaded.feature_service)
        offered = set(service_features(store, loaded.feature_service))
        missing = sorted(set(loaded.model.schema.columns) - offered)
        if missing:
            raise ModelLoadError(
                f"model {loaded.name} v{loaded.version} needs feature(s) "
                f"{', '.join(missing)} that {loaded.feature_service} does not serve"
            )
        # a customer is known when the profile view (the service's first) has a row
        profile = self.service.feature_view_projections[0]
        self.presence = [f.name for f in profile.features]
        # the model's features and the contact profile, read in one online lookup
        contact = store.get_feature_view(CONTACT_VIEW)
        model_refs = [
            f"{projection.name_to_use()}:{f.name}"
            for projection in self.service.feature_view_projections
            for f in projection.features
        ]
        offered_names = {ref.split(":")[1] for ref in model_refs}
        self.refs = model_refs + [
            f"{CONTACT_VIEW}:{f.name}" for f in contact.features if f.name not in offered_names
        ]

    def online_features(self, customer_ids: Sequence[str], at: pd.Timestamp) -> pd.DataFrame:
        at_s = int(at.timestamp())
        rows = [{"customer_id": c, REQUEST_TIME_FIELD: at_s} for c in customer_ids]
        return self.store.get_online_features(features=self.refs, entity_rows=rows).to_df()

    def score(
        self, customer_ids: Sequence[str], at: pd.Timestamp
    ) -> list[CustomerScore | UnknownCustomer]:
        frame = self.online_features(customer_ids, at)
        known = frame[self.presence].notna().any(axis=1)
        results: list[CustomerScore | UnknownCustomer] = [UnknownCustomer(c) for c in customer_ids]
        if known.any():
            rows = frame[known]
            model = self.loaded.model
            probabilities = model.predict_proba(rows)
            contributions = model.contributions(rows)
            bands = self.settings.risk_bands
            for position, (index, probability) in enumerate(
                zip(rows.index, probabilities, strict=True)
            ):
                results[index] = CustomerScore(
                    customer_id=str(rows.at[index, "customer_id"]),
                    churn_probability=float(probability),
                    risk_band=bands.band(float(probability)),
                    reasons=top_reasons(
                        rows.loc[index], contributions.iloc[position], self.settings.top_reasons
                    ),
                    contact=Contact.from_row(rows.loc[index]),
                )
        return results
