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
    return np.asarray(
        booster.predict(matrix, pred_contrib=True, num_threads=threads_for(len(matrix)))
    )


class DecisionSignature:
    """Which side of each distinct numeric threshold a row falls on, where it is NaN or zero,
    and its categorical codes: equal signatures make equal decisions at every node."""

    def __init__(self, booster: lgb.Booster) -> None:
        features: list[int] = []
        thresholds: list[float] = []
        categorical: set[int] = set()
        split_feature: list[int] = []
        values: list[float] = []
        for line in booster.model_to_string().splitlines():
            # thresholds as the model text holds them (%.17g: they round-trip exactly)
            if line.startswith("split_feature="):
                split_feature = [int(v) for v in line.split("=", 1)[1].split()]
            elif line.startswith("threshold="):
                values = [float(v) for v in line.split("=", 1)[1].split()]
            elif line.startswith("decision_type="):
                kinds = [int(v) for v in line.split("=", 1)[1].split()]
                for feature, threshold, kind in zip(split_feature, values, kinds, strict=True):
                    if kind & 1:  # categorical split: the threshold indexes a category set
                        categorical.add(feature)
                    else:
                        features.append(feature)
                        thresholds.append(threshold)
        pairs = sorted(set(zip(features, thresholds, strict=True)))
        self.split_feature = np.array([f for f, _ in pairs], dtype=np.intp)
        self.split_threshold = np.array([t for _, t in pairs], dtype="float64")
        self.numeric = np.array(sorted(set(features)), dtype=np.intp)
        self.categorical = np.array(sorted(categorical), dtype=np.intp)

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
