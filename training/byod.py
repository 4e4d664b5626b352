"""Bring your own dataset: train and evaluate on any snapshot CSV described by a YAML spec.

A spec names the file(s), the id and label columns, the label's positive value, columns
to drop, type overrides and which strings mean "missing". Evaluation is stratified k-fold
cross-validation: LightGBM and a logistic-regression baseline on the same folds, metrics
as mean and standard deviation. Nothing is resampled, so no fold ever sees its test rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, Field, field_validator
from sklearn.model_selection import StratifiedKFold

from training.churn import baseline_input, logistic_baseline
from training.metrics import evaluate
from training.model import FeatureSchema
from training.settings import Economics


class DatasetError(ValueError):
    """The spec and the file disagree; the message names the column."""


class Label(BaseModel):
    column: str
    positive: str = Field(
        description="The value meaning 'churned', compared as text (Yes, True, 1)."
    )

    @field_validator("positive", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        if isinstance(value, bool):  # YAML reads yes/no/true/false unquoted as booleans
            raise ValueError(
                f"write the positive value in quotes (it was read as the boolean {value})"
            )
        return str(value) if isinstance(value, int | float) else value


class CrossValidation(BaseModel):
    folds: int = Field(5, ge=2)
    seed: int = 1


class DatasetSpec(BaseModel):
    """What a data scientist writes to evaluate on their own churn CSV."""

    model_config = {"extra": "forbid"}

    name: str
    paths: list[Path] = Field(
        description="CSV file(s) with the same columns; relative to the working folder."
    )
    id_column: str | None = None
    label: Label
    drop: list[str] = []
    types: dict[str, Literal["numeric", "category"]] = {}
    missing_values: list[str] = ["", " "]
    cv: CrossValidation = CrossValidation()
    lightgbm: dict[str, float | int | str] = {
        "learning_rate": 0.01,
        "num_leaves": 4,
        "n_estimators": 1200,
        "min_child_samples": 80,
        "colsample_bytree": 0.5,
        "reg_lambda": 10.0,
        "extra_trees": True,
    }

    @field_validator("paths", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str | Path) else value

    @classmethod
    def load(cls, path: Path) -> DatasetSpec:
        return cls.model_validate(yaml.safe_load(path.read_text()))


def load_dataset(spec: DatasetSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """Features and 0/1 labels, with every spec error named by column."""
    for path in spec.paths:
        if not path.exists():
            raise DatasetError(f"{spec.name}: file {path} not found")
    parts = [
        pd.read_csv(p, dtype=str, keep_default_na=False, na_values=spec.missing_values)
        for p in spec.paths
    ]
    for path, part in zip(spec.paths[1:], parts[1:], strict=True):
        if list(part.columns) != list(parts[0].columns):
            differ = sorted(set(part.columns) ^ set(parts[0].columns)) or "the column order"
            raise DatasetError(
                f"{spec.name}: {path} has other columns than {spec.paths[0]}: {differ}"
            )
    frame = pd.concat(parts, ignore_index=True)
    named = {"label.column": [spec.label.column], "drop": spec.drop, "types": list(spec.types)}
    if spec.id_column:
        named["id_column"] = [spec.id_column]
    for field, columns in named.items():
        for column in columns:
            if column not in frame.columns:
                raise DatasetError(
                    f"{spec.name}: {field} names column {column!r}, which the file does not have"
                )
    label = frame[spec.label.column]
    positive = label.astype(str).str.strip().str.lower() == spec.label.positive.strip().lower()
    if label.isna().any():
        raise DatasetError(
            f"{spec.name}: label column {spec.label.column!r} has "
            f"{int(label.isna().sum())} missing values"
        )
    if positive.all() or not positive.any():
        seen = ", ".join(map(repr, label.unique()[:5]))
        raise DatasetError(
            f"{spec.name}: label column {spec.label.column!r} is unusable: positive value "
            f"{spec.label.positive!r} gives a single class (values seen: {seen})"
        )
    features = frame.drop(
        columns=[spec.label.column, *spec.drop, *([spec.id_column] if spec.id_column else [])]
    )
    for column in features.columns:
        wanted = spec.types.get(column)
        numeric = pd.to_numeric(features[column], errors="coerce")
        unparsable = numeric.isna() & features[column].notna()
        if wanted == "numeric" and unparsable.any():
            examples = ", ".join(map(repr, features.loc[unparsable, column].unique()[:3]))
            raise DatasetError(
                f"{spec.name}: column {column!r} is declared numeric but holds {examples}"
            )
        if wanted == "numeric" or (wanted is None and not unparsable.any()):
            features[column] = numeric.astype("float64")
        else:
            features[column] = features[column].astype("object")
    return features, positive.to_numpy().astype(int)


def cross_validate(spec: DatasetSpec, economics: Economics) -> dict[str, pd.DataFrame]:
    """Per-fold metrics of LightGBM and of the logistic baseline on the same folds."""
    features, labels = load_dataset(spec)
    folds = StratifiedKFold(spec.cv.folds, shuffle=True, random_state=spec.cv.seed)
    rows: dict[str, list[dict[str, float]]] = {"lightgbm": [], "logistic_baseline": []}
    for train, test in folds.split(features, labels):
        schema = FeatureSchema.infer(features.iloc[train], list(features.columns))
        x_train, x_test = (
            schema.transform(features.iloc[train]),
            schema.transform(features.iloc[test]),
        )
        params: dict[str, Any] = dict(spec.lightgbm)
        booster = lgb.LGBMClassifier(verbose=-1, random_state=spec.cv.seed, **params)
        booster.fit(x_train, labels[train])
        predicted = np.asarray(booster.predict_proba(x_test))[:, 1]
        rows["lightgbm"].append(evaluate(labels[test], predicted, economics))
        baseline = logistic_baseline(schema).fit(baseline_input(schema, x_train), labels[train])
        predicted = baseline.predict_proba(baseline_input(schema, x_test))[:, 1]
        rows["logistic_baseline"].append(evaluate(labels[test], predicted, economics))
    return {model: pd.DataFrame(folds_metrics) for model, folds_metrics in rows.items()}
