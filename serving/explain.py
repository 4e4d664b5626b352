"""Exact per-feature contributions, computed once per decision path and then reused.

LightGBM's exact TreeSHAP (`pred_contrib=True`) costs about 0.8 ms per row for the demo
champion (382 trees, 15 leaves), the largest cost of a single score. But a tree model
sees a row only through the outcome of its split comparisons: two rows that fall on the
same side of every threshold of every tree (and are missing, zero or of a category in
the same places) get the same prediction and the same exact contributions. The
`DecisionSignature` of a row records those outcomes as bytes, and `CachedContributions`
keeps the contributions per signature in a bounded LRU cache.

So the explanation is exact, never approximated: a cache hit returns what TreeSHAP would
compute for this very row. Between materializations a customer's stored features do not
change, and the request-time ones (tenure, days to contract end) cross a split threshold
rarely, so a customer scored again reuses the first computation.
"""

from __future__ import annotations

import threading

import lightgbm as lgb
import numpy as np
import pandas as pd
from cachetools import LRUCache

# LightGBM's kZeroThreshold is the float 1e-35f widened to double (1.00000002e-35): a dense
# row's |x| at or below it is read as 0, "missing" for splits of missing type Zero
_ZERO = float(np.float32(1e-35))


SMALL_BATCH = 64  # rows; fewer are predicted on the calling thread


def threads_for(rows: int) -> int:
    """LightGBM's num_threads for a prediction of `rows` rows: a request's few rows on the
    calling thread (an OpenMP team for one row costs more than the row, and its spinning
    threads steal the other workers' cores), a batch on all cores (0: OpenMP's default)."""
    return 1 if rows <= SMALL_BATCH else 0


def contributions(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """LightGBM's exact TreeSHAP contributions (log-odds), features then bias."""
    if len(matrix) == 0:  # LightGBM cannot predict no rows (ZeroDivisionError)
        return np.empty((0, (matrix.shape[1] + 1) * booster.num_model_per_iteration()))
    return np.asarray(
        booster.predict(matrix, pred_contrib=True, num_threads=threads_for(len(matrix)))
    )


Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # features, thresholds, decision types


def tree_splits(booster: lgb.Booster) -> list[Split]:
    """Each tree's splits as the model text holds them, one entry per tree (a single-leaf
    tree has none). Thresholds are written with %.17g: they round-trip exactly."""
    trees: list[dict[str, str]] = []
    for line in booster.model_to_string().splitlines():
        if line.startswith("end of trees"):
            break
        if line.startswith("Tree="):
            trees.append({})
        elif trees and "=" in line:
            name, value = line.split("=", 1)
            trees[-1][name] = value
    return [
        (
            np.array(tree.get("split_feature", "").split(), dtype=np.intp),
            np.array(tree.get("threshold", "").split(), dtype="float64"),
            np.array(tree.get("decision_type", "").split(), dtype=np.int64),
        )
        for tree in trees
    ]


class DecisionSignature:
    """Which side of each distinct numeric threshold a row falls on, where it is NaN or zero,
    and its categorical codes: equal signatures make equal decisions at every node."""

    def __init__(self, booster: lgb.Booster) -> None:
        splits = tree_splits(booster)
        features = np.concatenate([f for f, _, _ in splits]) if splits else np.empty(0, np.intp)
        thresholds = np.concatenate([t for _, t, _ in splits]) if splits else np.empty(0)
        kinds = np.concatenate([k for _, _, k in splits]) if splits else np.empty(0, np.int64)
        numeric = (kinds & 1) == 0  # a categorical split's threshold indexes a category set
        pairs = sorted(set(zip(features[numeric].tolist(), thresholds[numeric].tolist(),
                               strict=True)))  # fmt: skip
        self.split_feature = np.array([f for f, _ in pairs], dtype=np.intp)
        self.split_threshold = np.array([t for _, t in pairs], dtype="float64")
        self.numeric = np.unique(features[numeric]).astype(np.intp)
        self.categorical = np.unique(features[~numeric]).astype(np.intp)

    def __call__(self, matrix: np.ndarray) -> list[bytes]:
        numeric = matrix[:, self.numeric]
        with np.errstate(invalid="ignore"):
            outcomes = np.concatenate(
                [
                    matrix[:, self.split_feature] > self.split_threshold,  # NaN: False
                    np.isnan(numeric),
                    np.abs(numeric) <= _ZERO,
                ],
                axis=1,
            )
        bits = np.packbits(outcomes, axis=1)
        codes = np.nan_to_num(matrix[:, self.categorical], nan=-1.0).astype(np.int32)
        return [b.tobytes() + c.tobytes() for b, c in zip(bits, codes, strict=True)]


class CachedContributions:
    """`booster.predict(matrix, pred_contrib=True)`, each decision path computed once."""

    def __init__(self, booster: lgb.Booster, capacity: int) -> None:
        self.booster = booster
        self.signature = DecisionSignature(booster) if capacity > 0 else None
        self.cache: LRUCache[bytes, np.ndarray] = LRUCache(maxsize=max(capacity, 1))
        self.lock = threading.Lock()  # cachetools caches are not thread-safe
        self.hits = 0
        self.misses = 0

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        if self.signature is None or len(matrix) == 0:
            return contributions(self.booster, matrix)
        keys = self.signature(matrix)
        out = np.empty((len(matrix), matrix.shape[1] + 1), dtype="float64")
        todo: list[int] = []
        with self.lock:
            for i, key in enumerate(keys):
                found = self.cache.get(key)
                if found is None:
                    todo.append(i)
                else:
                    out[i] = found
            self.hits += len(keys) - len(todo)
            self.misses += len(todo)
        if todo:
            computed = contributions(self.booster, matrix[todo])
            out[todo] = computed
            with self.lock:
                for i, values in zip(todo, computed, strict=True):
                    kept = values.copy()  # not a view: it would keep the whole batch alive
                    kept.setflags(write=False)
                    self.cache[keys[i]] = kept
        return out


def _tree_contributions(booster: lgb.Booster, matrix: np.ndarray, tree: int) -> np.ndarray:
    """TreeSHAP of one tree (one iteration of a binary model) for the rows of `matrix`."""
    # one thread: an OpenMP team costs more than a tree's few thousand rows
    return np.asarray(
        booster.predict(
            matrix, pred_contrib=True, start_iteration=tree, num_iteration=1, num_threads=1
        )
    )


def batch_contributions(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """Exactly what `booster.predict(matrix, pred_contrib=True)` computes, for many rows,
    far faster: TreeSHAP is a sum over trees, and a tree sees a row only through the
    outcomes at its own nodes (at most 14 for the demo's 15-leaf trees). So, tree by tree,
    the rows are grouped by those outcomes (as `DecisionSignature` does for the whole
    model), LightGBM computes that tree's contributions for one row per group
    (`start_iteration=t, num_iteration=1`), and every row of the group gets them.
    Thousands of rows share a tree's few hundred outcome patterns.

    The totals equal the stock call up to floating-point summation order (about 1e-15).
    """
    n, width = matrix.shape
    out = np.zeros((width + 1, n), dtype="float64")  # transposed: a feature's row adds fast
    if n == 0:
        return out.T
    columns = np.ascontiguousarray(matrix.T)  # a feature's values side by side
    missing = np.isnan(columns)
    with np.errstate(invalid="ignore"):
        zero = np.abs(columns) <= _ZERO
    if booster.num_model_per_iteration() != 1:
        raise ValueError("batch_contributions supports one tree per iteration (binary)")
    # categorical codes + 1; NaN and negatives (LightGBM sends both the same way) are 0.
    # LightGBM casts a code to int, toward zero: -0.5 is category 0, negative from -1 on
    with np.errstate(invalid="ignore"):
        negative = np.isnan(columns) | (columns <= -1)
    codes = np.where(negative, 0, np.nan_to_num(columns, nan=0.0).astype(np.int64) + 1)
    rows = np.arange(n)
    for tree, (features, thresholds, kinds) in enumerate(tree_splits(booster)):
        if len(features) == 0:  # a single leaf: only its bias
            out[width] += _tree_contributions(booster, matrix[:1], tree)[0, width]
            continue
        key = np.zeros(n, dtype=np.int64)
        shift = 0
        used = np.unique(features)
        for feature, threshold, kind in zip(features, thresholds, kinds, strict=True):
            if kind & 1:  # categorical: its code below
                continue
            with np.errstate(invalid="ignore"):
                key |= (columns[feature] > threshold).astype(np.int64) << shift
            shift += 1
        for feature in used:
            key |= missing[feature].astype(np.int64) << shift
            key |= zero[feature].astype(np.int64) << (shift + 1)
            shift += 2
        for feature in np.unique(features[(kinds & 1) == 1]):
            key |= codes[feature] << shift
            shift += int(codes[feature].max()).bit_length() or 1
        if shift > 63:  # too many outcomes for one integer: this tree row by row
            out += _tree_contributions(booster, matrix, tree).T
            continue
        group, patterns = pd.factorize(key)  # hashing: no sort
        first = np.empty(len(patterns), dtype=np.intp)
        first[group[::-1]] = rows[::-1]  # each pattern's first row
        values = _tree_contributions(booster, matrix[first], tree)
        for column in (*used, width):
            out[column] += values[group, column]
    return out.T
