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
from scipy.special import expit
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


def _logit(raw: np.ndarray) -> np.ndarray:
    """The booster's log-odds, kept finite: a score of 0 or 1 reads as 1e-9 from the end."""
    p = np.clip(raw, 1e-9, 1 - 1e-9)
    return np.log(p / np.clip(1 - p, 1e-9, 1))


def _beta_inputs(raw: np.ndarray) -> np.ndarray:
    """Beta calibration's two inputs, ln p and -ln(1 - p), as columns."""
    p = np.clip(raw, 1e-9, 1 - 1e-9)
    return np.column_stack([np.log(p), -np.log1p(-p)])


class Calibrator:
    """Maps the booster's raw probabilities to calibrated ones.

    - `sigmoid` (Platt): a logistic regression on the booster's log-odds, 2 parameters.
    - `beta` (Kull, Silva Filho & Flach, 2017): a logistic regression on ln p and -ln(1 - p)
      with both slopes kept non-negative, 3 parameters; it also bends where the booster's
      tails are over- or under-confident, which Platt cannot.
    - `isotonic`: a step function; kept to serve models fitted with it, but it ties many
      customers to one probability and reaches 0 and 1, so training no longer picks it.

    Platt and beta are smooth and strictly increasing: no plateaus, the ranking is the
    booster's, and no score becomes a certainty. Both are evaluated with numpy from their
    fitted coefficients, which costs microseconds for one row.
    """

    def __init__(self, method: str) -> None:
        self.method = method
        self._isotonic: IsotonicRegression | None = None
        self._coef: np.ndarray | None = None  # sigmoid: [slope]; beta: [a, b]
        self._intercept = 0.0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Models pickled before the coefficients were kept hold a fitted scikit-learn
        Platt regression instead: read its coefficients."""
        platt: LogisticRegression | None = state.pop("_platt", None)
        self.__dict__.update(state)
        if platt is not None:
            self._coef = np.asarray(platt.coef_[0], dtype="float64")
            self._intercept = float(platt.intercept_[0])
        self.__dict__.setdefault("_coef", None)
        self.__dict__.setdefault("_intercept", 0.0)

    def fit(self, raw: np.ndarray, labels: np.ndarray) -> Calibrator:
        raw, labels = np.asarray(raw, dtype="float64"), np.asarray(labels)
        if self.method == "isotonic":
            self._isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
                raw, labels
            )
        elif self.method == "sigmoid":
            platt = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), labels)
            self._coef, self._intercept = platt.coef_[0].copy(), float(platt.intercept_[0])
            if self._coef[0] < 0:  # scores that rank backwards: no map may invert them
                self._coef, self._intercept = np.zeros(1), _base_logit(labels)
        elif self.method == "beta":
            self._coef, self._intercept = _fit_beta(_beta_inputs(raw), labels)
        else:
            raise ValueError(
                f"calibration method {self.method!r}: expected sigmoid, beta or isotonic"
            )
        return self

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype="float64")
        if self._isotonic is not None:
            # Isotonic steps tie thousands of customers; a negligible slope keeps the booster's
            # ranking (so lift and ROC-AUC do not depend on row order) at no calibration cost.
            # np.interp on the fitted steps is exactly what `predict` computes (clip, then
            # scipy's linear interp1d, which calls np.interp) without its input checks,
            # which cost more than the interpolation for a single row.
            iso = self._isotonic
            clipped = np.clip(raw, iso.X_min_, iso.X_max_)
            return np.interp(clipped, iso.X_thresholds_, iso.y_thresholds_) + _TIE_BREAK * raw
        assert self._coef is not None, "calibrator used before fit"
        if self.method == "beta":
            return expit(_beta_inputs(raw) @ self._coef + self._intercept)
        return expit(self._coef[0] * _logit(raw) + self._intercept)


def _fit_beta(inputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Beta calibration's [a, b] and intercept. A negative slope would make the map
    non-monotone: that input is dropped and the other refitted alone, as the method's
    authors do; if that one too comes out negative, the map is the base rate's constant."""
    coef = np.zeros(2)
    fitted = LogisticRegression(C=1e6).fit(inputs, labels)
    slopes = fitted.coef_[0]
    if (slopes >= 0).all():
        return slopes.copy(), float(fitted.intercept_[0])
    keep = int(np.argmax(slopes))  # the input whose slope is not the more negative
    alone = LogisticRegression(C=1e6).fit(inputs[:, [keep]], labels)
    if alone.coef_[0, 0] >= 0:
        coef[keep] = alone.coef_[0, 0]
        return coef, float(alone.intercept_[0])
    return coef, _base_logit(labels)


def _base_logit(labels: np.ndarray) -> float:
    """The log-odds of the churn rate: the constant map of scores that say nothing."""
    rate = float(np.clip(np.mean(labels), 1e-9, 1 - 1e-9))
    return float(np.log(rate / (1 - rate)))


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
