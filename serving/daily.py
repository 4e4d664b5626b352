"""`retain daily --date D`: the day's risk list for marketing and retention teams.

Every customer active on D is scored from the latest features (the columnar batch path,
`features.batch_rows`), with the champion the API serves. Customers in the listed bands get
their exact reasons and the action the API would choose for them (the API's decision
service, planning only: the list suggests, `/v1/decide` acts).
The list and its report are published to `risk_lists/D/` atomically; the day's figures and
aggregate plots are logged to MLflow (the list itself only with `log_customer_rows`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import mlflow
import numpy as np
import pandas as pd
from feast import FeatureStore

from features.batch_rows import BatchFeatures, latest_features
from features.engine import spark_session
from features.settings import FeatureSettings
from features.store import open_store
from retain.base.publish import publish_folder
from serving.action_log.log import ActionLog
from serving.decisions import DecisionService, decision_service
from serving.domain import CustomerScore, CustomerValue
from serving.effects import LoadedEffects, load_effect_champion
from serving.explain import batch_contributions
from serving.kpi_job import latest_kpis
from serving.kpis import kpis_view
from serving.monitoring_results import latest_result
from serving.reasons import top_reasons
from serving.report import render_report, report_plots
from serving.scoring import LoadedModel, load_champion, read_contact, scoring_refs
from serving.settings import DailySettings, RiskBands, ServingSettings
from serving.spark_scoring import risk_bands, score_on_spark, spark_latest_features
from serving.value import customer_values
from training.demand.staffing import staffing_view
from training.experiments import connect
from training.settings import TrainingSettings

log = logging.getLogger("retain.daily")

LIST_FILE, CSV_FILE, REPORT_FILE, SUMMARY_FILE = (
    "risk_list.parquet",
    "risk_list.csv",
    "report.html",
    "summary.json",
)


def scoring_instant(day: date, serving: ServingSettings) -> datetime:
    """The list is for the working day D: scored when D's quiet hours end (customer time),
    so the contact verdicts are those of the day's first allowed moment."""
    zone = ZoneInfo(serving.contact.timezone)
    return datetime.combine(day, serving.contact.quiet_end or time(8), tzinfo=zone)


@dataclass(frozen=True)
class RiskList:
    day: date
    at: datetime
    snapshot: pd.Timestamp
    model: LoadedModel
    scored: pd.DataFrame  # every active customer: id, probability, band, profile columns
    listed: pd.DataFrame  # the listed bands, with reasons and the suggested action
    summary: dict[str, Any]
    bands: RiskBands


# the exact TreeSHAP rows (features + bias) of chosen positions of the scored frame
Contributions = Callable[[np.ndarray], np.ndarray]

PROFILE_COLUMNS = ["segment", "region", "contract_type", "plan_id", "monthly_fee"]
ACTION_COLUMNS = ["customer_id", "action_type", "cost", "expected_value"]
LIST_COLUMNS = [  # the list's schema, the same on a day with nothing to suggest
    "customer_id", "churn_probability", "risk_band", *PROFILE_COLUMNS, "revenue_at_risk",
    "customer_value", "expected_months", "value_at_risk", "reasons", "reason_features",
    "action_type", "action_detail", "action_expected_value",
    "action_cost", "action_allowed", "action_channel", "action_blocked_by", "action_reason",
    "all_actions",
]  # fmt: skip


def score_all(
    features: BatchFeatures, loaded: LoadedModel, serving: ServingSettings
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every customer's calibrated probability and band; also the model matrix."""
    model = loaded.model
    matrix = model.schema.frame_matrix(features.frame)
    probability = model.calibrate(np.asarray(model.booster.predict(matrix)))
    band = risk_bands(probability, serving.risk_bands)
    return _scored(features.frame, probability, band), matrix


def _scored(customers: pd.DataFrame, probability: np.ndarray, band: np.ndarray) -> pd.DataFrame:
    """The list's view of every customer: id, profile, probability, band, revenue at risk."""
    scored = customers[["customer_id", *PROFILE_COLUMNS]].copy()
    scored["churn_probability"] = probability
    scored["risk_band"] = band
    scored["revenue_at_risk"] = probability * scored["monthly_fee"].astype("float64")
    return scored


@dataclass(frozen=True)
class Scores:
    """Every active customer scored, and how to explain chosen ones (positions of `frame`)."""

    snapshot: pd.Timestamp  # the activity snapshot read
    frame: pd.DataFrame  # every customer: id, profile columns, probability, band, revenue at risk
    records: Callable[[np.ndarray], list[dict[str, Any]]]  # their feature rows
    contributions: Contributions  # their exact TreeSHAP rows (features + bias)


def score_locally(batch: BatchFeatures, loaded: LoadedModel, serving: ServingSettings) -> Scores:
    """Features read by the batch reader, scored and explained in this process."""
    scored, matrix = score_all(batch, loaded, serving)
    return Scores(
        batch.snapshot,
        scored,
        lambda chosen: batch.frame.iloc[chosen].to_dict("records"),
        local_contributions(loaded, matrix),
    )


def score_with_spark(
    store: FeatureStore,
    features: FeatureSettings,
    refs: list[str],
    at: pd.Timestamp,
    loaded: LoadedModel,
    serving: ServingSettings,
    daily: DailySettings,
) -> Scores:
    """Features read, every customer scored and the listed ones explained by Spark's
    executors (`serving.spark_scoring`); the driver holds the scored columns and the
    listed customers' rows only."""
    spark = spark_session(features.offline_engine)
    read = spark_latest_features(spark, store, features.tables_dir, refs, at, daily.active_view)
    result = score_on_spark(
        spark, read, loaded.model, serving.risk_bands, daily.list_bands, at, PROFILE_COLUMNS
    )
    scored = _scored(
        result.scored,
        result.scored["churn_probability"].to_numpy(dtype="float64"),
        result.scored["risk_band"].to_numpy(),
    )
    ids = scored["customer_id"]
    width = len(loaded.model.schema.columns) + 1

    def contributions(chosen: np.ndarray) -> np.ndarray:
        rows = [np.asarray(v, dtype="float64") for v in result.contributions.loc[ids.iloc[chosen]]]
        return np.vstack(rows) if rows else np.zeros((0, width))

    return Scores(
        result.snapshot,
        scored,
        lambda chosen: result.listed.loc[ids.iloc[chosen]].to_dict("records"),
        contributions,
    )


def local_contributions(loaded: LoadedModel, matrix: np.ndarray) -> Contributions:
    """Exact TreeSHAP contributions of the chosen rows of the model matrix."""
    return lambda chosen: batch_contributions(loaded.model.booster, matrix[chosen])


def _allowed(customer: str, plan: list[Any]) -> list[dict[str, Any]]:
    """Every action `/v1/decide` would queue for the customer now (not only the first)."""
    return [
        {
            "customer_id": customer,
            "action_type": proposal.action_type,
            "cost": float(proposal.details.get("cost") or 0.0),
            "expected_value": proposal.expected_value,
        }
        for proposal, verdict in plan
        if verdict.allowed
    ]


def _suggestion(plan: list[Any]) -> dict[str, Any]:
    """The action the API would take: the best allowed proposal, else the best one and why
    it may not go out, else nothing."""
    allowed = [(p, v) for p, v in plan if v.allowed]
    chosen = allowed[0] if allowed else (plan[0] if plan else None)
    if chosen is None:
        return {"action_type": None, "action_allowed": False}
    proposal, verdict = chosen
    cost = proposal.details.get("cost")
    return {
        "action_type": proposal.action_type,
        "action_detail": proposal.details.get("offer_id") or proposal.details.get("package"),
        "action_expected_value": proposal.expected_value,
        "action_cost": float(cost) if cost is not None else None,
        "action_allowed": verdict.allowed,
        "action_channel": verdict.channel,
        "action_blocked_by": None
        if verdict.allowed
        else ", ".join(dict.fromkeys(s.code for s in verdict.suppressions)),
        "action_reason": proposal.reason,
    }


def listed_values(
    loaded: LoadedModel, records: list[dict[str, Any]], serving: ServingSettings
) -> list[CustomerValue]:
    """The listed customers' values from their feature rows, as the API computes them for a
    request (`serving.value`); only they are valued, on either scoring engine."""
    columns = loaded.model.schema.columns
    matrix = loaded.model.schema.matrix({c: [r.get(c) for r in records] for c in columns})
    fees = pd.to_numeric(pd.Series([r.get("monthly_fee") for r in records], dtype="object"))
    return customer_values(
        loaded.model, matrix, fees.to_numpy(dtype="float64"), serving.actions.value
    )


def _value_fields(item: CustomerScore) -> dict[str, Any]:
    """The list's value columns: expected margin, expected months, P(churn) x margin."""
    if item.value is None:
        return {"customer_value": None, "expected_months": None, "value_at_risk": None}
    return {
        "customer_value": item.value.expected_margin,
        "expected_months": item.value.expected_months,
        "value_at_risk": item.churn_probability * item.value.expected_margin,
    }


def explain_and_decide(
    scores: Scores,
    loaded: LoadedModel,
    serving: ServingSettings,
    daily: DailySettings,
    decisions: DecisionService,
    at: datetime,
    effects: LoadedEffects | None = None,
    act: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The listed customers, riskiest first, with reasons and the suggested action; and
    every action the API would queue for them (a customer may get more than one). With
    `act`, those decisions are recorded in the action log (control-group and budget
    suppressions included), as `/v1/decide` would."""
    scored = scores.frame
    chosen = np.flatnonzero(scored["risk_band"].isin(daily.list_bands).to_numpy())
    chosen = chosen[np.argsort(-scored["churn_probability"].to_numpy()[chosen], kind="stable")]
    columns = loaded.model.schema.columns
    contrib = scores.contributions(chosen)
    records = scores.records(chosen)
    estimates = (
        effects.estimate({c: [r.get(c) for r in records] for c in effects.columns})
        if effects is not None and records
        else [None] * len(records)
    )
    model_label = f"{loaded.name} v{loaded.version}"
    worth = listed_values(loaded, records, serving)
    items = []
    for k, values in enumerate(records):
        customer = str(values["customer_id"])
        items.append(
            CustomerScore(
                customer,
                float(scored["churn_probability"].iat[chosen[k]]),
                serving.risk_bands.band(float(scored["churn_probability"].iat[chosen[k]])),
                top_reasons(values, columns, contrib[k], serving.top_reasons),
                read_contact(customer, values),
                effects=estimates[k],
                model=model_label,
                value=worth[k],
            )
        )
    # the contact history up to the scoring instant: a list for an earlier day is reproducible
    plans = decisions.plan(items, at)
    if act:
        decisions.record_plans(items, plans, at, "daily")
    rows = []
    actions: list[dict[str, Any]] = []
    for item, values in zip(items, records, strict=True):
        row = {
            "customer_id": item.customer_id,
            "churn_probability": item.churn_probability,
            "risk_band": item.risk_band,
            **{c: values[c] for c in PROFILE_COLUMNS},
            "revenue_at_risk": item.churn_probability * float(values["monthly_fee"]),
            **_value_fields(item),
            "reasons": " | ".join(r.text for r in item.reasons),
            "reason_features": ",".join(r.feature for r in item.reasons),
        }
        plan = plans[item.customer_id]
        row.update(_suggestion(plan))
        allowed = _allowed(item.customer_id, plan)
        row["all_actions"] = ",".join(a["action_type"] for a in allowed) or None
        actions.extend(allowed)
        rows.append(row)
    listed = pd.DataFrame(rows).reindex(columns=LIST_COLUMNS)
    return listed, pd.DataFrame(
        actions, columns=["customer_id", "action_type", "cost", "expected_value"]
    )


def summarize(
    day: date,
    snapshot: pd.Timestamp,
    loaded: LoadedModel,
    scored: pd.DataFrame,
    listed: pd.DataFrame,
    actions: pd.DataFrame,
) -> dict[str, Any]:
    """The headline figures of the day (the report's top, the MLflow metrics, the trend).

    The action figures count every action `/v1/decide` would queue for the listed
    customers; expected saved value = net expected value + cost."""
    bands = scored["risk_band"].value_counts()
    by_type = {
        str(kind): {
            "count": len(group),
            "cost": round(float(group["cost"].sum()), 2),
            "expected_saved_value": round(
                float((group["expected_value"] + group["cost"]).sum()), 2
            ),
        }
        for kind, group in actions.groupby("action_type")
    }
    blocked = int((listed["action_type"].notna() & ~listed["action_allowed"].astype(bool)).sum())
    return {
        "date": day.isoformat(),
        "snapshot": snapshot.isoformat(),
        "model": f"{loaded.name} v{loaded.version}",
        "run_id": loaded.run_id,
        "scored": len(scored),
        "at_risk": {band: int(bands.get(band, 0)) for band in ("high", "medium", "low")},
        "listed": len(listed),
        "monthly_revenue_at_risk": round(float(scored["revenue_at_risk"].sum()), 2),
        "listed_monthly_revenue_at_risk": round(float(listed["revenue_at_risk"].sum()), 2),
        "listed_customer_value": round(float(listed["customer_value"].sum()), 2),
        "listed_value_at_risk": round(float(listed["value_at_risk"].sum()), 2),
        "actions": by_type,
        "actions_blocked_by_contact_policy": blocked,
    }


def earlier_summaries(output_dir: Path, day: date, count: int) -> list[dict[str, Any]]:
    """The summaries of the lists published before `day` (for the trend), oldest first."""
    found: dict[str, dict[str, Any]] = {}
    for path in output_dir.glob(f"????-??-??/{SUMMARY_FILE}"):  # the published links only
        try:
            summary = json.loads(path.read_text())
            if date.fromisoformat(summary["date"]) < day:
                found[summary["date"]] = summary
        except (ValueError, KeyError, OSError):
            log.warning("skipping unreadable summary %s", path)
    return [found[key] for key in sorted(found)][-count:]


def service_sections(daily: DailySettings, day: date) -> dict[str, Any]:
    """The page's service sections: the latest KPIs (`retain kpis`) on or before `day` and
    the agent plan (`retain staffing`); None where not published."""
    kpis = latest_kpis(daily.output_dir, day)
    staffing = None
    if daily.staffing_file.exists():
        try:
            staffing = staffing_view(pd.read_parquet(daily.staffing_file))
        except (OSError, ValueError, KeyError) as error:  # a page without it, not no page
            log.warning("cannot show the staffing plan %s: %s", daily.staffing_file, error)
    return {"kpis": kpis_view(kpis) if kpis is not None else None, "staffing": staffing}


def publish(risk: RiskList, daily: DailySettings, render: Callable[..., str]) -> Path:
    """Write risk_lists/D/ as one atomic swap: readers see the old list or the new one."""
    trend = earlier_summaries(daily.output_dir, risk.day, daily.trend_days)

    def write(folder: Path) -> None:
        risk.listed.to_parquet(folder / LIST_FILE, index=False)
        risk.listed.to_csv(folder / CSV_FILE, index=False)
        (folder / SUMMARY_FILE).write_text(json.dumps(risk.summary, indent=2))
        monitoring = latest_result(daily.output_dir, risk.day)  # `retain monitor`'s latest
        service = service_sections(daily, risk.day)
        (folder / REPORT_FILE).write_text(
            render(risk, trend, daily.table_rows, monitoring, **service)
        )

    return publish_folder(daily.output_dir / risk.day.isoformat(), write)


def log_daily_run(
    risk: RiskList, folder: Path, daily: DailySettings, tracking: TrainingSettings
) -> str:
    """The run in MLflow: the day's figures as metrics, its summary and aggregate plots as
    artifacts (`summary/`). The list names customers: it stays in `folder`, where the
    marketing role reads it, and goes to the run (`risk_list/`) only with
    `log_customer_rows`."""
    # the daily experiment, with its artifacts beside the training ones (inside `mlflow
    # run`, `connect` leaves the experiment to the run MLflow started)
    connect(tracking.model_copy(update={"experiment": daily.experiment}))
    summary = risk.summary
    with mlflow.start_run(run_name=f"daily-{risk.day.isoformat()}") as run:
        mlflow.log_params(
            {
                "date": risk.day.isoformat(),
                "snapshot": summary["snapshot"],
                "model": summary["model"],
                "model_run_id": risk.model.run_id,
                "list_bands": ",".join(daily.list_bands),
                "risk_band_high": risk.bands.high,
                "risk_band_medium": risk.bands.medium,
            }
        )
        metrics = {
            "scored": summary["scored"],
            "listed": summary["listed"],
            "monthly_revenue_at_risk": summary["monthly_revenue_at_risk"],
            "listed_value_at_risk": summary["listed_value_at_risk"],
            **{f"at_risk_{band}": n for band, n in summary["at_risk"].items()},
            **{f"actions_{kind}": v["count"] for kind, v in summary["actions"].items()},
            "actions_cost": sum(v["cost"] for v in summary["actions"].values()),
            "actions_expected_saved_value": sum(
                v["expected_saved_value"] for v in summary["actions"].values()
            ),
        }
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        with tempfile.TemporaryDirectory() as staging:
            out = Path(staging)
            (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
            for title, svg in report_plots(risk, []):
                (out / f"{title.lower().replace(' ', '_')}.svg").write_text(svg)
            mlflow.log_artifacts(staging, artifact_path="summary")
        if daily.log_customer_rows:
            mlflow.log_artifacts(str(folder.resolve()), artifact_path="risk_list")
        return str(run.info.run_id)


def run_daily(
    day: date,
    serving: ServingSettings,
    daily: DailySettings,
    features: FeatureSettings,
    tracking: TrainingSettings,
    action_log: ActionLog | None,
    act: bool = False,
) -> tuple[RiskList, Path, str]:
    """Score, explain, decide, publish and log the list for `day`; (list, folder, run id).
    With `act` the day's decisions are also recorded in the action log (and so delivered)."""
    store = open_store(features)
    loaded = load_champion(serving, tracking)
    effects = load_effect_champion(serving, tracking)
    refs, _ = scoring_refs(store, loaded.feature_service)
    at = scoring_instant(day, serving)
    if daily.scoring_engine == "spark":
        scores = score_with_spark(store, features, refs, pd.Timestamp(at), loaded, serving, daily)
    else:
        batch = latest_features(
            store, features.tables_dir, refs, pd.Timestamp(at), daily.active_view
        )
        scores = score_locally(batch, loaded, serving)
    decisions = decision_service(None, serving, action_log, features.tables_dir)
    listed, actions = explain_and_decide(
        scores, loaded, serving, daily, decisions, at, effects, act
    )
    scored, snapshot = scores.frame, scores.snapshot
    risk = RiskList(
        day, at, snapshot, loaded, scored, listed,
        summarize(day, snapshot, loaded, scored, listed, actions), serving.risk_bands,
    )  # fmt: skip
    folder = publish(risk, daily, render_report)
    return risk, folder, log_daily_run(risk, folder, daily, tracking)
