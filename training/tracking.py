"""MLflow: log a churn training run, register the model, move aliases.

Runs go where `training.experiments.connect` points (embedded by default, any team
server through MLFLOW_TRACKING_URI). Each new version gets the alias `challenger`;
`promote` moves `champion` only when the challenger wins on the same held-out months.

A run holds parameters, metrics, plots, aggregates and digests. The held-out rows are
customer rows: they are kept on this disk for promotion (`heldout_dir`) and copied into
the run only with `log_customer_rows`; the model's signature and input example are made
up from typical values (`typical_row`), never a customer's row.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from retain.base.publish import publish_file
from training import plots
from training.churn import SNAPSHOT, TrainedChurn
from training.experiments import connect
from training.metrics import evaluate, profit_curve, reliability
from training.model import ChurnPyfunc
from training.reference import log_reference
from training.registry import model_aliases
from training.settings import TrackedSettings, TrainingSettings

CHALLENGER, CHAMPION = "challenger", "champion"
EVALUATION, TEST_SET_FILE = "evaluation", "test_set.parquet"
TEST_SET = f"{EVALUATION}/{TEST_SET_FILE}"  # in a run's artifacts, with log_customer_rows


def data_digest(frame: pd.DataFrame) -> str:
    """A short, order-sensitive digest of the training data's content."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _log_plots(result: TrainedChurn, folder: Path) -> None:
    labels = result.split.test[result.label].to_numpy().astype(int)
    scores = {
        "LightGBM (calibrated)": result.test_calibrated,
        "logistic baseline": result.test_baseline,
    }
    plots.roc(labels, scores, folder / "roc.png")
    plots.precision_recall(labels, scores, folder / "precision_recall.png")
    plots.calibration(labels, result.test_calibrated, result.test_raw, folder / "calibration.png")
    plots.gains_and_lift(labels, result.test_calibrated, folder / "gains_lift.png")
    importance = pd.Series(
        result.model.booster.feature_importance("gain"), index=result.model.schema.columns
    )
    plots.feature_importance(importance, folder / "feature_importance.png")
    sample = result.split.test.sample(min(3000, len(result.split.test)), random_state=0)
    plots.shap_summary(
        result.model.contributions(sample),
        result.model.schema.transform(sample),
        folder / "shap_summary.png",
    )


def typical_row(frame: pd.DataFrame) -> pd.DataFrame:
    """One made-up row with `frame`'s columns and dtypes: each numeric column's median
    (rounded for integers), every other column's most frequent value. The model's
    signature and input example are inferred from it, so no customer's row is stored
    beside the model."""
    values = {}
    for name, column in frame.items():
        present = column.dropna()
        value: Any = None
        if present.empty:
            pass
        elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            value = present.median()
            if pd.api.types.is_integer_dtype(column):
                value = round(value)
        else:
            value = present.mode().iloc[0]
        values[str(name)] = pd.Series([value], dtype=column.dtype)
    return pd.DataFrame(values)


def heldout_path(folder: Path, registered_model: str, run_id: str) -> Path:
    """Where the held-out rows of a run of `registered_model` are kept on this disk."""
    return folder / registered_model / run_id / TEST_SET_FILE


def keep_heldout(rows: pd.DataFrame, folder: Path, settings: TrackedSettings) -> None:
    """Keep the active run's held-out rows for its promotion: on this disk under `folder`,
    and in the run's artifacts too only with `log_customer_rows`."""
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]  # called inside a run
    path = heldout_path(folder, settings.registered_model, run_id)
    publish_file(path, lambda target: rows.to_parquet(target, index=False))
    mlflow.set_tag("heldout_rows", len(rows))
    if settings.log_customer_rows:
        mlflow.log_artifact(str(path), artifact_path=EVALUATION)


def drop_superseded_heldout(folder: Path, registered_model: str, run_id: str) -> None:
    """Remove the held-out rows of earlier runs: promotion only ever judges the current
    challenger, and customer rows are not kept longer than they serve."""
    for run in (folder / registered_model).glob("*"):
        if run.is_dir() and run.name != run_id:
            shutil.rmtree(run, ignore_errors=True)


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    version: str


def log_training_run(
    result: TrainedChurn, frame: pd.DataFrame, settings: TrainingSettings
) -> LoggedRun:
    """Log parameters, metrics, plots and the model, keep the held-out rows; register the
    model as challenger."""
    client = connect(settings)
    split = result.split
    with mlflow.start_run(run_name=f"churn {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M}"):
        mlflow.log_params(
            {
                **{f"lgbm_{k}": v for k, v in settings.params.model_dump().items()},
                "best_iteration": result.model.booster.best_iteration,
                "calibration": settings.calibration,
                "calibration_method": result.model.calibrator.method,
                "feature_service": settings.feature_service,
                "label": result.label,
                "monotone": ",".join(f"{k}:{v}" for k, v in settings.monotone.items()),
                "train_months": f"{split.months('train')[0]}..{split.months('train')[-1]}",
                "valid_months": ",".join(split.months("valid")),
                "test_months": ",".join(split.months("test")),
                "rows_train": len(split.train),
                "rows_valid": len(split.valid),
                "rows_test": len(split.test),
                "features": len(result.model.schema.columns),
                **{f"economics_{k}": v for k, v in settings.economics.model_dump().items()},
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
        mlflow.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
        mlflow.log_metrics({f"valid_{k}": v for k, v in result.valid_metrics.items()})
        mlflow.log_metrics(
            {f"baseline_test_{k}": v for k, v in result.baseline_test_metrics.items()}
        )
        if result.tuned is not None:  # searched on the validation months: what was chosen
            mlflow.log_params({f"tuned_{k}": v for k, v in result.tuned.searched().items()})
            mlflow.log_metrics(
                {
                    "tuning_valid_roc_auc": result.tuned.score,
                    "tuning_configured_valid_roc_auc": result.tuned.first_score,
                    "tuning_trials": result.tuned.trials,
                }
            )
        mlflow.log_metrics(  # how each candidate calibration did out of fold
            {
                f"calibration_{row.method}_{metric}": float(getattr(row, metric))
                for row in result.calibration.itertuples()
                for metric in ("log_loss", "ece")
            }
        )
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder)
            _log_plots(result, out)
            labels = split.test[result.label].to_numpy().astype(int)
            profit_curve(labels, result.test_calibrated, settings.economics).to_csv(
                out / "profit_curve.csv", index=False
            )
            reliability(labels, result.test_calibrated).to_csv(out / "reliability.csv", index=False)
            mlflow.log_artifacts(str(out), artifact_path=EVALUATION)
        keep_heldout(split.test, settings.heldout_dir, settings)
        log_reference(result)  # what `retain monitor` compares each day with
        example = typical_row(split.test[result.model.schema.columns])
        output = pd.DataFrame({"churn_probability": np.zeros(len(example))})
        logged = register_challenger(client, settings, ChurnPyfunc(result.model), example, output)
    drop_superseded_heldout(settings.heldout_dir, settings.registered_model, logged.run_id)
    return logged


# What a logged model needs to load and predict, pinned to this environment's versions:
# listed rather than left to MLflow, which infers them by loading the model in a
# subprocess (seconds per model) and leaves out lightgbm, which the project pulls in.
MODEL_DISTRIBUTIONS = (
    "retain", "mlflow", "cloudpickle", "lightgbm", "numpy", "pandas", "pyarrow", "pydantic",
    "scikit-learn", "scipy",
)  # fmt: skip


def model_requirements() -> list[str]:
    """`name==version` of each distribution a model needs that this environment has."""
    pinned = []
    for name in MODEL_DISTRIBUTIONS:
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:  # the project run from a source tree
            continue
    return pinned


def register_challenger(
    client: MlflowClient,
    settings: TrackedSettings,
    python_model: PythonModel,
    example: pd.DataFrame,
    output: pd.DataFrame,
) -> LoggedRun:
    """Log the model into the active run with its signature, register it, alias challenger."""
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]  # called inside a run
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=python_model,
        signature=infer_signature(example, output),
        input_example=example,
        registered_model_name=settings.registered_model,
        pip_requirements=model_requirements(),
    )
    version = str(info.registered_model_version)
    client.set_registered_model_alias(settings.registered_model, CHALLENGER, version)
    client.set_model_version_tag(settings.registered_model, version, "run_id", run_id)
    return LoggedRun(run_id, version)


@dataclass(frozen=True)
class Decision:
    promoted: bool
    challenger: str
    champion: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    reason: str


def contenders(
    client: MlflowClient, name: str, heldout_dir: Path, train_command: str
) -> tuple[Any, Any, pd.DataFrame]:
    """The challenger and champion versions of `name` (None without a champion) and the
    challenger's held-out rows, on which both are judged."""
    aliases = model_aliases(client, name, train_command)
    if CHALLENGER not in aliases:
        raise LookupError(f"model {name!r} has no {CHALLENGER!r}: run `{train_command}` first")
    challenger = client.get_model_version(name, str(aliases[CHALLENGER]))
    champion = (
        client.get_model_version(name, str(aliases[CHAMPION])) if CHAMPION in aliases else None
    )
    return challenger, champion, heldout_rows(name, challenger, heldout_dir, train_command)


def heldout_rows(name: str, version: Any, heldout_dir: Path, train_command: str) -> pd.DataFrame:
    """A version's held-out rows: kept on this disk, else in its run's artifacts (a run
    logged with `log_customer_rows`)."""
    path = heldout_path(heldout_dir, name, str(version.run_id))
    if path.exists():
        return pd.read_parquet(path)
    try:
        logged = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=TEST_SET)
    except (MlflowException, OSError):
        raise LookupError(
            f"{name} v{version.version}: its held-out rows are neither at {path} nor in its "
            f"run's artifacts: promote where it was trained (heldout_dir), or run "
            f"`{train_command}` again"
        ) from None
    return pd.read_parquet(logged)


def promote(settings: TrainingSettings) -> Decision:
    """Make the challenger champion if it beats the champion on the challenger's held-out months."""
    client = connect(settings)
    name = settings.registered_model
    challenger, champion, test = contenders(
        client, name, settings.heldout_dir, "retain train churn"
    )
    label = next(c for c in test.columns if c.startswith("churned_within_"))
    labels = test[label].to_numpy().astype(int)

    def score(version: str) -> dict[str, float]:
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        inputs = test[model.metadata.get_input_schema().input_names()]
        probabilities = model.predict(inputs)["churn_probability"].to_numpy()
        return evaluate(labels, probabilities, settings.economics)

    new_version = str(challenger.version)
    old_version = None if champion is None else str(champion.version)
    new = score(new_version)
    if old_version is None:
        reason = "no champion yet: the first model becomes champion"
        decision = Decision(True, new_version, None, new, None, reason)
    elif old_version == new_version:
        reason = "the challenger already is the champion"
        decision = Decision(False, new_version, old_version, new, new, reason)
    else:
        old = score(old_version)
        gain = new["roc_auc"] - old["roc_auc"]
        brier_increase = new["brier"] - old["brier"]
        rule = settings.promotion
        wins = gain >= rule.min_roc_auc_gain and brier_increase <= rule.max_brier_increase
        reason = (
            f"ROC-AUC {gain:+.4f} (needs >= {rule.min_roc_auc_gain:+.4f}), "
            f"Brier {brier_increase:+.5f} (needs <= {rule.max_brier_increase:+.5f})"
        )
        decision = Decision(wins, new_version, old_version, new, old, reason)
    return record_decision(client, name, decision)


def record_decision(client: MlflowClient, name: str, decision: Decision) -> Decision:
    """Move `champion` when promoted; tag the challenger with the verdict either way."""
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, decision.challenger)
    verdict = "promoted" if decision.promoted else "kept champion"
    client.set_model_version_tag(
        name, decision.challenger, "promotion", f"{verdict}: {decision.reason}"
    )
    return decision
