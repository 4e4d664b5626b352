"""Choosing the churn model's calibration on the validation months.

Each candidate map is fitted and judged out of fold: the validation rows are split into
stratified folds, each fold is calibrated by a map fitted on the others, and the method
with the lowest out-of-fold log loss wins (expected calibration error is reported beside
it). A map judged on the rows it was fitted on would always favour the more flexible one.
The winner is then refitted on every validation row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from training.metrics import expected_calibration_error
from training.model import Calibrator

SMOOTH_METHODS = ("sigmoid", "beta")


@dataclass(frozen=True)
class CalibrationChoice:
    method: str
    calibrator: Calibrator
    candidates: pd.DataFrame  # per method: out-of-fold log loss and ECE on the validation rows


def out_of_fold(
    method: str, raw: np.ndarray, labels: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """Every row calibrated by a `method` map fitted on the other folds."""
    calibrated = np.empty(len(raw), dtype="float64")
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in splitter.split(raw.reshape(-1, 1), labels):
        calibrator = Calibrator(method).fit(raw[fit_rows], labels[fit_rows])
        calibrated[held_rows] = calibrator(raw[held_rows])
    return calibrated


def choose_calibration(
    raw: np.ndarray,
    labels: np.ndarray,
    methods: tuple[str, ...] = SMOOTH_METHODS,
    folds: int = 5,
    seed: int = 0,
) -> CalibrationChoice:
    """The method with the lowest out-of-fold log loss, refitted on all rows; a single
    method is fitted without the comparison's folds but still reported."""
    raw, labels = np.asarray(raw, dtype="float64"), np.asarray(labels, dtype=int)
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    if minority < 2:
        raise ValueError(
            f"the validation months hold {minority} row(s) of one class: too few to calibrate"
        )
    folds = min(folds, minority)
    rows = []
    for method in methods:
        calibrated = np.clip(out_of_fold(method, raw, labels, folds, seed), 1e-12, 1 - 1e-12)
        rows.append(
            {
                "method": method,
                "log_loss": float(log_loss(labels, calibrated, labels=[0, 1])),
                "ece": expected_calibration_error(labels, calibrated),
            }
        )
    candidates = pd.DataFrame(rows)
    best = str(candidates.loc[candidates["log_loss"].idxmin(), "method"])
    return CalibrationChoice(best, Calibrator(best).fit(raw, labels), candidates)
