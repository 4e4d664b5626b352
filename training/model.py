"""The churn model as one object: feature preparation, LightGBM booster, calibration.

It is what MLflow stores (a pyfunc) and what serving loads: `predict_proba` gives
calibrated probabilities and `contributions` LightGBM's exact per-feature SHAP values
(log-odds), so scores and their explanations always come from the same model.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

_TIE_BREAK = 1e-6


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


@dataclass
class FeatureSchema:
    """Which columns the model reads and how categorical ones are encoded."""

    numeric: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categories]

    @classmethod
    def infer(cls, frame: pd.DataFrame, columns: list[str]) -> FeatureSchema:
        """Text columns become categoricals with the levels seen here; the rest numeric."""
        categorical = [c for c in columns if _is_text(frame[c])]
        levels = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}
        return cls(numeric=[c for c in columns if c not in levels], categories=levels)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model input in a fixed column order; unseen categories become missing."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"model input lacks feature column(s): {', '.join(missing)}")
        numeric = frame[self.numeric]
        text = [c for c in self.numeric if numeric[c].dtype == object]  # e.g. JSON input: coerce
        if text:
            numeric = numeric.assign(
                **{c: pd.to_numeric(numeric[c], errors="coerce") for c in text}
            )
        out = numeric.astype("float64")  # one block conversion: bools, ints and None alike
        for column, levels in self.categories.items():
            text = frame[column].astype("object").where(frame[column].notna())  # levels are text
            out[column] = pd.Categorical(text.map(str, na_action="ignore"), categories=levels)
        return out

    def matrix(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        """The model input as a float64 matrix, columns in `self.columns` order, with
        categories as their codes: what LightGBM makes of `transform`'s frame, without
        pandas (a single row in microseconds rather than milliseconds)."""
        n = len(next(iter(columns.values()))) if columns else 0
        out = np.empty((n, len(self.columns)), dtype="float64")
        for j, name in enumerate(self.numeric):
            out[:, j] = [_number(v) for v in columns[name]]
        for j, (name, levels) in enumerate(self.categories.items(), start=len(self.numeric)):
            codes = _level_codes(tuple(levels))
            out[:, j] = [
                np.nan if _missing(v) else codes.get(str(v), np.nan) for v in columns[name]
            ]
        return out

    def frame_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """`matrix` for a whole frame, vectorized: `transform`, then categories as codes."""
        prepared = self.transform(frame)
        out = np.empty((len(prepared), len(self.columns)), dtype="float64")
        out[:, : len(self.numeric)] = prepared[self.numeric].to_numpy(dtype="float64")
        for j, name in enumerate(self.categories, start=len(self.numeric)):
            codes = prepared[name].cat.codes.to_numpy()
            out[:, j] = np.where(codes < 0, np.nan, codes)
        return out


def _number(value: Any) -> float:
    """A numeric feature's value as `transform` reads it: text that is not a number (and
    anything missing) is NaN."""
    if _missing(value):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


@functools.lru_cache(maxsize=256)
def _level_codes(levels: tuple[str, ...]) -> dict[str, float]:
    """Category -> code, as pandas numbers the categories LightGBM was trained with."""
    return {level: float(code) for code, level in enumerate(levels)}


class Calibrator:
    """Maps raw LightGBM probabilities to calibrated ones (isotonic or Platt)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._isotonic: IsotonicRegression | None = None
        self._platt: LogisticRegression | None = None

    def fit(self, raw: np.ndarray, labels: np.ndarray) -> Calibrator:
        if self.method == "isotonic":
            self._isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
                raw, labels
            )
        else:
            logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1)).reshape(-1, 1)
            self._platt = LogisticRegression(C=1e6).fit(logit, labels)
        return self

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self._isotonic is not None:
            # Isotonic steps tie thousands of customers; a negligible slope keeps the booster's
            # ranking (so lift and ROC-AUC do not depend on row order) at no calibration cost.
            # np.interp on the fitted steps is exactly what `predict` computes (clip, then
            # scipy's linear interp1d, which calls np.interp) without its input checks,
            # which cost more than the interpolation for a single row.
            iso = self._isotonic
            clipped = np.clip(raw, iso.X_min_, iso.X_max_)
            return np.interp(clipped, iso.X_thresholds_, iso.y_thresholds_) + _TIE_BREAK * raw
        assert self._platt is not None, "calibrator used before fit"
        logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1)).reshape(-1, 1)
        return self._platt.predict_proba(logit)[:, 1]


@dataclass
class ChurnModel:
    schema: FeatureSchema
    booster: lgb.Booster
    calibrator: Calibrator

    def raw_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.schema.transform(frame)))

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(self.calibrator(raw), 0.0, 1.0)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of churning within the label horizon."""
        return self.calibrate(self.raw_proba(frame))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Exact per-feature contributions to the raw log-odds (TreeSHAP), plus `bias`."""
        values = self.booster.predict(self.schema.transform(frame), pred_contrib=True)
        return pd.DataFrame(values, index=frame.index, columns=[*self.schema.columns, "bias"])


class ChurnPyfunc(PythonModel):
    """MLflow wrapper: input a DataFrame of churn_v1 features, output calibrated probabilities."""

    def __init__(self, model: ChurnModel) -> None:
        self.model = model

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return pd.DataFrame(
            {"churn_probability": self.model.predict_proba(model_input)}, index=model_input.index
        )
