"""`retain monitor --day D`: the churn model's daily health in production.

Every customer active on D is scored as the daily list scores them (`serving.daily`), and
compared with the reference frozen when the champion was trained (`training.reference`):
feature drift (PSI and KS per feature), score drift (PSI of the calibrated score), the
performance the calibrated scores promise today (CBPE: expected ROC-AUC, churn rate and
precision of the top decile, against the same estimate on the test months), and, once
the label horizon has passed, the performance realised on the customers scored
`label_horizon_days` ago.

Retention actions change the outcomes of the customers they reach, so realised
performance is read on the untreated only: customers with no marketing action that went
out in the outcome window (the action log's control group and suppressed proposals
count as untreated) and no retention contact in the lifecycle data's campaigns.

The day's result is published atomically to `<daily output_dir>/monitoring/D.json` (the
API's /metrics and the daily page read it), logged to MLflow (one metric per feature),
and every crossed threshold becomes an alert: a structured log line and, when
configured, a webhook POST.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict
from rich.console import Console
from rich.table import Table

from features.batch_rows import SnapshotError, latest_features
from features.settings import FeatureSettings
from features.store import open_store
from retain.base.settings import StageSettings
from serving.action_log.log import ActionLog
from serving.alerts import send_alerts
from serving.daily import score_all, scoring_instant
from serving.domain import ActionStatus
from serving.drift import DriftLimits, Status, feature_drift, score_psi, status_of, worst
from serving.experiment import MARKETING
from serving.monitoring_results import MONITORING_DIR, publish_result
from serving.scoring import LoadedModel, load_champion, scoring_refs
from serving.settings import DailySettings, ServingSettings
from training.experiments import connect
from training.reference import (
    READABLE_VERSIONS,
    REFERENCE_ARTIFACT,
    expected_performance,
    realised_performance,
)
from training.registry import use_backend
from training.settings import TrainingSettings

log = logging.getLogger("retain.monitor")

NOT_TREATED = frozenset({ActionStatus.SUPPRESSED, ActionStatus.CONTROL, ActionStatus.EXPIRED})


class Thresholds(BaseModel):
    """Where monitoring warns and alerts."""

    model_config = {"extra": "forbid"}

    psi_warn: float = Field(0.1, gt=0, description="A feature's PSI from here: warn.")
    psi_alert: float = Field(0.25, gt=0, description="A feature's PSI from here: alert.")
    ks_warn: float = Field(0.1, gt=0, le=1, description="A feature's KS statistic: warn.")
    ks_alert: float = Field(0.2, gt=0, le=1, description="A feature's KS statistic: alert.")
    sigmas: float = Field(
        3.0, ge=1, description="A feature alerts only beyond its own monthly drift in the "
        "training months: their mean + this many standard deviations (warns at one less).",
    )  # fmt: skip
    wasserstein_warn: float = Field(
        0.05, gt=0, description="A numeric feature's Wasserstein distance from the training "
        "months over their standard deviation: warn.",
    )  # fmt: skip
    wasserstein_alert: float = Field(
        0.1, gt=0, description="... and alert (a tenth of a standard deviation, as Evidently)."
    )
    missing_warn: float = Field(
        0.1, gt=0, le=1, description="A feature's missing share this far (absolute) from the "
        "training months': warn.",
    )  # fmt: skip
    missing_alert: float = Field(
        0.25, gt=0, le=1, description="... and alert (a feed that stopped, or a new source).",
    )  # fmt: skip
    score_psi_warn: float = Field(0.1, gt=0)
    score_psi_alert: float = Field(0.25, gt=0)
    expected_auc_drop: float = Field(
        0.05, gt=0, lt=1, description="Alert when today's expected ROC-AUC (CBPE) is this "
        "far below the test months' expected ROC-AUC.",
    )  # fmt: skip
    realised_auc_floor: float = Field(
        0.6, gt=0, lt=1, description="Alert when the realised ROC-AUC (untreated) falls below."
    )

    @model_validator(mode="after")
    def _warn_below_alert(self) -> Thresholds:
        for name in ("psi", "ks", "wasserstein", "missing", "score_psi"):
            warn, alert = getattr(self, f"{name}_warn"), getattr(self, f"{name}_alert")
            if warn > alert:
                raise ValueError(
                    f"thresholds.{name}_warn ({warn}) must not exceed {name}_alert ({alert})"
                )
        return self


class MonitoringSettings(StageSettings):
    """`retain monitor`: thresholds, the outcome horizon, where results and alerts go."""

    config_file: ClassVar[str] = "monitoring.yaml"
    model_config = SettingsConfigDict(env_prefix="RETAIN_MONITORING_")

    thresholds: Thresholds = Thresholds()
    label_horizon_days: int = Field(
        30, ge=1, description="Outcomes of the customers scored this many days ago are known."
    )
    min_labelled: int = Field(
        200, ge=10, description="Untreated customers with a known outcome needed for realised "
        "performance (fewer: not computed).",
    )  # fmt: skip
    experiment: str = Field("retain-monitoring", description="MLflow experiment of the runs.")
    alert_webhook_url: str | None = Field(
        None, description="Alerts are also POSTed here as JSON (none: the log line only)."
    )
    alert_webhook_timeout_s: float = Field(5.0, gt=0)
    warn_only_features: list[str] = Field(
        ["home_cell_*"],
        description="Features (names or shell patterns) whose spread at most warns: what "
        "describes the network rather than the customer. A typhoon season or a failing "
        "site moves them for whole cells at once, the outage lifecycle reports that, and "
        "where it moves the model the score drift and expected performance alert.",
    )  # fmt: skip

    def warn_only(self, features: Iterable[str]) -> set[str]:
        """The names among `features` that `warn_only_features` names or matches."""
        return {
            name
            for name in features
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.warn_only_features)
        }

    def limits(self) -> DriftLimits:
        t = self.thresholds
        return DriftLimits(
            t.psi_warn, t.psi_alert, t.ks_warn, t.ks_alert, t.sigmas, t.missing_warn,
            t.missing_alert, t.wasserstein_warn, t.wasserstein_alert,
        )  # fmt: skip


class ReferenceMissing(LookupError):
    """The champion's run has no monitoring reference (trained before it existed, or lost)."""


def load_reference(loaded: LoadedModel, tracking: TrainingSettings) -> dict[str, Any]:
    """The reference logged with the served model's training run."""
    use_backend(tracking.resolved_tracking_uri())
    try:
        reference: dict[str, Any] = mlflow.artifacts.load_dict(
            f"runs:/{loaded.run_id}/{REFERENCE_ARTIFACT}"
        )
    except (MlflowException, OSError, ValueError):
        raise ReferenceMissing(
            f"{REFERENCE_ARTIFACT} is missing from the run {loaded.run_id} of {loaded.name} "
            f"v{loaded.version} (trained before monitoring existed, or the artifact is gone): "
            "train the model again (`retain train churn`) and promote it"
        ) from None
    if reference.get("version") not in READABLE_VERSIONS:
        readable = " or ".join(str(version) for version in READABLE_VERSIONS)
        raise ReferenceMissing(
            f"{REFERENCE_ARTIFACT} of run {loaded.run_id}: version {reference.get('version')!r}, "
            f"expected {readable}: train the model again"
        )
    return reference


@dataclass(frozen=True)
class Monitored:
    """A day's monitoring: the published payload and the feature drift table."""

    result: dict[str, Any]
    drift: pd.DataFrame
    path: Path | None = None
    run_id: str | None = None


def _scored_features(
    store: Any, features: FeatureSettings, refs: list[str], at: datetime, loaded: LoadedModel,
    serving: ServingSettings, daily: DailySettings,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:  # fmt: skip
    """Every customer active at `at`: (id + calibrated probability, model input, snapshot)."""
    batch = latest_features(store, features.tables_dir, refs, pd.Timestamp(at), daily.active_view)
    scored, _ = score_all(batch, loaded, serving)
    prepared = loaded.model.schema.transform(batch.frame)
    return scored[["customer_id", "churn_probability"]], prepared, batch.snapshot


def churn_times(lifecycle_dir: Path) -> pd.Series:
    """Each churned customer's churn instant (UTC), by customer id."""
    churn = pd.read_parquet(
        lifecycle_dir / "churn_events.parquet", columns=["customer_id", "churned_at"]
    )
    return pd.Series(
        pd.to_datetime(churn["churned_at"], utc=True).to_numpy(),
        index=churn["customer_id"].astype(str),
    )


def treated_between(
    lifecycle_dir: Path, action_log: ActionLog | None, customers: list[str], start: datetime,
    end: datetime,
) -> set[str]:  # fmt: skip
    """Customers reached by a marketing action in [start, end): one the engine decided to
    send (control-group, suppressed and expired proposals never went out), or a retention
    contact in the lifecycle data's campaigns."""
    treated: set[str] = set()
    if action_log is not None:
        for customer, records in action_log.made_since(customers, start).items():
            if any(
                r.action_type in MARKETING and r.status not in NOT_TREATED and r.created_at < end
                for r in records
            ):
                treated.add(customer)
    path = lifecycle_dir / "campaigns.parquet"
    if path.exists():
        campaigns = pd.read_parquet(path, columns=["customer_id", "treated", "sent_at"])
        sent = pd.to_datetime(campaigns["sent_at"], utc=True)
        inside = (
            campaigns["treated"].astype(bool)
            & (sent >= pd.Timestamp(start))
            & (sent < pd.Timestamp(end))
        )
        treated |= set(campaigns.loc[inside, "customer_id"].astype(str))
    return treated


def known_until(lifecycle_dir: Path, at: datetime) -> datetime:
    """Until when churn is known: the lifecycle export's as-of instant, else `at`."""
    try:
        as_of = json.loads((lifecycle_dir / "manifest.json").read_text())["as_of"]
        return min(at, datetime.fromisoformat(as_of))
    except (OSError, ValueError, KeyError, TypeError):
        return at


def realised(
    scored: pd.DataFrame, churned: set[str], treated: set[str], minimum: int, floor: float
) -> dict[str, Any]:
    """Realised performance on the untreated customers of `scored` (None when too few)."""
    untreated = scored[~scored["customer_id"].isin(treated)]
    labels = untreated["customer_id"].isin(churned).to_numpy().astype(int)
    found: dict[str, Any] = {"customers": len(scored), "untreated": len(untreated)}
    if len(untreated) < minimum or labels.min(initial=0) == labels.max(initial=0):
        return {**found, "status": "ok", "note": "too few untreated outcomes, or a single class"}
    performance = realised_performance(labels, untreated["churn_probability"].to_numpy())
    status: Status = "alert" if performance["roc_auc"] < floor else "ok"
    return {**found, **performance, "status": status}


def compare(
    reference: dict[str, Any],
    scored: pd.DataFrame,
    prepared: pd.DataFrame,
    monitoring: MonitoringSettings,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Today's feature drift table, and the day's drift and expected-performance figures:
    `scored` holds the calibrated `churn_probability` of every customer, `prepared` their
    model input (`FeatureSchema.transform`)."""
    t = monitoring.thresholds
    features = reference["features"]
    drift = feature_drift(features, prepared, monitoring.limits(), monitoring.warn_only(features))
    probabilities = scored["churn_probability"].to_numpy(dtype="float64")
    score_drift = score_psi(reference["score"]["calibrated"], probabilities)
    expected = expected_performance(probabilities)
    drop = reference["expected"]["roc_auc"] - expected["roc_auc"]
    return drift, {
        "customers": len(scored),
        "features": drift.to_dict("records"),
        "score": {
            "psi": score_drift,
            "mean": float(probabilities.mean()),
            "reference_mean": reference["score"]["calibrated"]["mean"],
            "status": status_of(score_drift, t.score_psi_warn, t.score_psi_alert),
        },
        "expected": {
            **expected,
            "reference_roc_auc": reference["expected"]["roc_auc"],
            "roc_auc_drop": drop,
            "status": "alert" if drop >= t.expected_auc_drop else "ok",
        },
    }


def monitor_day(
    day: date,
    monitoring: MonitoringSettings,
    serving: ServingSettings,
    daily: DailySettings,
    features: FeatureSettings,
    tracking: TrainingSettings,
    action_log: ActionLog | None,
) -> Monitored:
    """Score `day`'s customers and compare them with the champion's reference (and, when
    known, the outcomes of the customers scored a label horizon ago). Nothing is written."""
    store = open_store(features)
    loaded = load_champion(serving, tracking)
    reference = load_reference(loaded, tracking)
    refs, _ = scoring_refs(store, loaded.feature_service)
    at = scoring_instant(day, serving)
    scored, prepared, snapshot = _scored_features(store, features, refs, at, loaded, serving, daily)
    drift, result = compare(reference, scored, prepared, monitoring)
    result = {
        "date": day.isoformat(),
        "at": at.isoformat(),
        "snapshot": snapshot.isoformat(),
        "model": f"{loaded.name} v{loaded.version}",
        "run_id": loaded.run_id,
        **result,
        "realised": _realised_for(
            day, at, monitoring, serving, daily, features, loaded, store, refs, action_log
        ),
    }
    result = _finite(result)
    result["alerts"] = alerts_of(result)
    result["status"] = worst(
        *drift["status"], result["score"]["status"], result["expected"]["status"],
        result["realised"]["status"],
    )  # fmt: skip
    return Monitored(result, drift)


def _realised_for(
    day: date, at: datetime, monitoring: MonitoringSettings, serving: ServingSettings,
    daily: DailySettings, features: FeatureSettings, loaded: LoadedModel, store: Any,
    refs: list[str], action_log: ActionLog | None,
) -> dict[str, Any]:  # fmt: skip
    """Realised performance of the customers scored `label_horizon_days` before `day`."""
    horizon = timedelta(days=monitoring.label_horizon_days)
    scored_day = day - horizon
    then = scoring_instant(scored_day, serving)
    found: dict[str, Any] = {"scored_on": scored_day.isoformat(), "status": "ok"}
    if known_until(features.lifecycle_dir, at) < then + horizon:
        return {**found, "note": "outcomes not known yet"}
    try:
        scored, _, _ = _scored_features(store, features, refs, then, loaded, serving, daily)
    except SnapshotError as error:  # no snapshot fresh enough that day
        return {**found, "note": str(error)}
    # the label: churned in (then, then + horizon]; who had left by `then` is no customer
    left = churn_times(features.lifecycle_dir).reindex(scored["customer_id"].astype(str))
    gone = (left <= pd.Timestamp(then)).to_numpy()
    scored = scored[~gone]
    inside = (left > pd.Timestamp(then)) & (left <= pd.Timestamp(then + horizon))
    churned = set(inside.index[inside.to_numpy()])
    ids = scored["customer_id"].astype(str).tolist()
    treated = treated_between(features.lifecycle_dir, action_log, ids, then, then + horizon)
    return {
        **found,
        **realised(
            scored, churned, treated, monitoring.min_labelled,
            monitoring.thresholds.realised_auc_floor,
        ),
    }  # fmt: skip


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinite float as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def alerts_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every threshold crossed (status `alert`), one entry each."""
    found = [
        {
            "kind": "feature_drift",
            "feature": row["feature"],
            "psi": row["psi"],
            "ks": row["ks"],
            "wasserstein": row.get("wasserstein"),
        }
        for row in result["features"]
        if row["status"] == "alert"
    ]
    if result["score"]["status"] == "alert":
        found.append({"kind": "score_drift", "psi": result["score"]["psi"]})
    if result["expected"]["status"] == "alert":
        found.append(
            {
                "kind": "expected_roc_auc_drop",
                "expected_roc_auc": result["expected"]["roc_auc"],
                "drop": result["expected"]["roc_auc_drop"],
            }
        )
    if result["realised"]["status"] == "alert":
        found.append({"kind": "realised_roc_auc_floor", "roc_auc": result["realised"]["roc_auc"]})
    return found


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The result's figures as MLflow metrics (finite values only)."""
    out = {
        "customers": float(result["customers"]),
        "score_psi": result["score"]["psi"],
        "score_mean": result["score"]["mean"],
        "alerts": float(len(result["alerts"])),
        **{
            f"expected_{k}": result["expected"][k]
            for k in ("roc_auc", "churn_rate", "precision_top_decile", "roc_auc_drop")
        },
        **{
            f"realised_{k}": result["realised"][k]
            for k in ("roc_auc", "churn_rate", "precision_top_decile")
            if k in result["realised"]
        },
    }
    for row in result["features"]:
        out[f"psi_{row['feature']}"] = row["psi"]
        if row["ks"] is not None:
            out[f"ks_{row['feature']}"] = row["ks"]
        if row.get("wasserstein") is not None:
            out[f"wasserstein_{row['feature']}"] = row["wasserstein"]
        if row.get("missing") is not None:
            out[f"missing_{row['feature']}"] = row["missing"]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def log_monitoring_run(
    result: dict[str, Any], path: Path, monitoring: MonitoringSettings, tracking: TrainingSettings
) -> str:
    """The day's figures as an MLflow run of the monitoring experiment (aggregates only)."""
    connect(tracking.model_copy(update={"experiment": monitoring.experiment}))
    with mlflow.start_run(run_name=f"monitor-{result['date']}") as run:
        mlflow.log_params(
            {"date": result["date"], "model": result["model"], "model_run_id": result["run_id"]}
        )
        mlflow.set_tag("status", result["status"])
        mlflow.log_metrics(metrics_of(result))
        mlflow.log_artifact(str(path), artifact_path=MONITORING_DIR)
        return str(run.info.run_id)


def raise_alerts(result: dict[str, Any], monitoring: MonitoringSettings) -> None:
    """One structured log line per alert; and the day's alerts POSTed to the webhook."""
    send_alerts(
        "monitoring_alert",
        {"date": result["date"], "model": result["model"]},
        result["alerts"],
        {key: result[key] for key in ("date", "model", "run_id", "status", "alerts")},
        (monitoring.alert_webhook_url, monitoring.alert_webhook_timeout_s),
        f"monitor-{result['date']}-{result['run_id']}",
        log,
    )


def run_monitor(
    day: date,
    monitoring: MonitoringSettings,
    serving: ServingSettings,
    daily: DailySettings,
    features: FeatureSettings,
    tracking: TrainingSettings,
    action_log: ActionLog | None,
) -> Monitored:
    """Monitor `day`, publish the result, log it to MLflow, raise its alerts."""
    done = monitor_day(day, monitoring, serving, daily, features, tracking, action_log)
    path = publish_result(done.result, daily.output_dir)
    run_id = log_monitoring_run(done.result, path, monitoring, tracking)
    raise_alerts(done.result, monitoring)
    return Monitored(done.result, done.drift, path, run_id)


def _figure(value: Any, digits: int = 3) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and not np.isfinite(value))
        else (f"{value:.{digits}f}")
    )


def print_monitored(done: Monitored) -> None:
    """The day's drift table (feature, PSI, KS, Wasserstein distance, missing share,
    status) and headline figures, on stdout."""
    result = done.result
    table = Table(title=f"{result['date']}: {result['model']}, {result['customers']:,} customers")
    for column in ("feature", "PSI", "KS", "Wasserstein", "missing", "status"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    colour = {"alert": "red", "warn": "yellow", "ok": "green"}
    for row in result["features"]:
        status = row["status"]
        table.add_row(
            row["feature"], _figure(row["psi"]), _figure(row["ks"]),
            _figure(row.get("wasserstein")), _figure(row.get("missing")),
            f"[{colour[status]}]{status}[/]",
        )  # fmt: skip
    console = Console()
    console.print(table)
    score, expected, realised = result["score"], result["expected"], result["realised"]
    console.print(
        f"score PSI {_figure(score['psi'])} ({score['status']}); expected ROC-AUC "
        f"{_figure(expected['roc_auc'])} vs {_figure(expected['reference_roc_auc'])} on the "
        f"test months ({expected['status']}); realised ROC-AUC on untreated customers scored "
        f"{realised['scored_on']}: {_figure(realised.get('roc_auc'))}"
        f"{' (' + realised['note'] + ')' if 'note' in realised else ''}",
        highlight=False,
        soft_wrap=True,  # a path must stay copyable
    )
    console.print(
        f"{len(result['alerts'])} alert(s), status {result['status']}; {done.path} "
        f"(MLflow run {done.run_id})",
        highlight=False,
        soft_wrap=True,  # a path must stay copyable
    )
