"""Explanations by decision signature: exact TreeSHAP, reused only where LightGBM cannot
tell two rows apart (`serving.explain`).

A tree sees a number through `value <= threshold` (so a value at a threshold goes left and
one a float above it goes right), through whether it is NaN, and, for splits whose missing
type is Zero, through whether |value| <= 1e-35f (so -0.0 and 1e-36 are zero); it sees a
category through its integer code (NaN and negative codes alike: the right child). Rows
are drawn from pools of exactly those boundary values, for tiny boosters (a few hundred
synthetic rows: NaN, zeros, negatives, two categoricals) trained once per module.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.explain import (
    SMALL_BATCH,
    CachedContributions,
    DecisionSignature,
    batch_contributions,
    contributions,
    threads_for,
    tree_splits,
)

ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, widened to double
CATEGORY, CHANNEL = 2, 3  # the categorical columns; 0 and 1 are numeric
WIDTH = 4  # columns; contributions have one more (the bias)
# ±inf in a numeric column: batch_contributions casts every column to a category code, and
# the (unused) codes of those columns overflow the cast
INF_CAST = "ignore:invalid value encountered in cast:RuntimeWarning"
UP, DOWN = math.inf, -math.inf
MISSING_TYPES = {"None": 0, "Zero": 1, "NaN": 2}
BINARY = ["nan", "zero", "single_leaf", "stumps", "deep"]  # the test models (see _booster)


def _data(rows: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x0: normal with 15 % NaN (which churn like high values: NaN goes right);
    x1: few values, many zeros (which churn more), negatives; x2: categories 0-3;
    x3: a second categorical, 0-2 (two of them share a tree's key in batch_contributions)."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(0, 1, rows)
    x0[rng.uniform(size=rows) < 0.15] = np.nan
    x1 = rng.choice([0.0, 1.0, 2.0, 3.5, -1.0], rows)
    category = rng.integers(0, 4, rows).astype("float64")
    logit = np.nan_to_num(x0, nan=2.0) + 1.5 * (x1 == 0) - 2.0 * (category == 0)
    channel = rng.integers(0, 3, rows).astype("float64")
    logit += 1.0 * (category == 2) + 1.2 * (channel == 1) - 0.8 * (channel == 2)
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([x0, x1, category, channel]), labels


PARAMS: dict[str, Any] = {
    "objective": "binary",
    "verbosity": -1,
    "num_threads": 1,
    "deterministic": True,
    "seed": 1,
    "num_leaves": 7,
    "min_child_samples": 10,
    "min_data_per_group": 5,
    "cat_smooth": 1.0,
    "learning_rate": 0.3,
}
SINGLE_LEAF = (
    "num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\n"
    "left_child=\nright_child=\nleaf_value={value}\nleaf_weight=\nleaf_count=\n"
    "internal_value=\ninternal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n\n"
)


def _train(extra: dict[str, Any], rounds: int, names: list[str] | None = None) -> lgb.Booster:
    x, y = _data()
    data = lgb.Dataset(x, y, categorical_feature=[CATEGORY, CHANNEL], feature_name=names or "auto")
    return lgb.train({**PARAMS, **extra}, data, num_boost_round=rounds)


@functools.cache
def _booster(kind: str) -> lgb.Booster:
    """nan: NaN is its own way at x0's splits; zero: zero_as_missing (missing type Zero);
    single_leaf: trees 0, 7 and 19 of `nan` replaced by single leaves; stumps: trees of one
    split; deep: 63-leaf trees, more outcomes than a 64-bit key holds; multiclass: three
    trees per iteration; leaf_only: a single one-leaf tree; no_trees: none at all;
    default_right: `nan` with decision type 0 (missing type None, default right) in place of
    2 (default left), which changes no prediction: NaN is read as 0 at such splits."""
    if kind == "nan":
        return _train({}, 20)
    if kind == "zero":
        return _train({"zero_as_missing": True}, 20)
    if kind == "multiclass":  # three classes: three trees per iteration
        x, y = _data()
        classes = y + (x[:, 1] > 1.5)
        data = lgb.Dataset(x, classes, categorical_feature=[CATEGORY, CHANNEL])
        return lgb.train({**PARAMS, "objective": "multiclass", "num_class": 3}, data, 2)
    if kind == "leaf_only":  # no split meets min_child_samples: one tree, one leaf
        return _train({"min_child_samples": 1000}, 3)
    if kind == "no_trees":  # a model text without a single tree (LightGBM loads it)
        text = re.sub(
            r"Tree=\d+\n.*?\n\n\n", "", _booster("leaf_only").model_to_string(), flags=re.S
        )
        return lgb.Booster(model_str=re.sub(r"tree_sizes=[^\n]*\n", "", text))
    if kind == "default_right":  # x1's splits written as type 0 (the same tree to LightGBM)
        text = re.sub(
            r"(?m)^decision_type=.*$",
            lambda m: re.sub(r"\b2\b", "0", m.group(0)),
            _booster("nan").model_to_string(),
        )
        return lgb.Booster(model_str=re.sub(r"tree_sizes=[^\n]*\n", "", text))
    if kind == "stumps":
        return _train({"num_leaves": 2}, 20)
    if kind == "deep":
        return _train({"num_leaves": 63, "min_child_samples": 2, "min_data_per_group": 2}, 3)
    if kind == "single_leaf":
        text = _booster("nan").model_to_string()
        for tree, value in ((0, 0.25), (7, -0.125), (19, 0.5)):
            text = re.sub(
                rf"(Tree={tree}\n).*?\n\n\n",
                lambda m, v=value: m.group(1) + SINGLE_LEAF.format(value=v),
                text,
                flags=re.S,
            )
        return lgb.Booster(model_str=re.sub(r"tree_sizes=[^\n]*\n", "", text))
    raise ValueError(kind)


def _nodes(booster: lgb.Booster) -> list[list[dict[str, Any]]]:
    """Each tree's split nodes in model-text order, read from LightGBM's JSON dump (not
    from the model text that the code under test parses)."""
    trees = []
    for info in booster.dump_model()["tree_info"]:
        found: list[dict[str, Any]] = []
        stack = [info["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_index" in node:
                found.append(node)
                stack += [node["left_child"], node["right_child"]]
        trees.append(sorted(found, key=lambda n: n["split_index"]))
    return trees


@functools.cache
def _thresholds(kind: str, feature: int) -> tuple[float, ...]:
    """The distinct numeric thresholds of `feature` in model `kind`, in order."""
    nodes = [n for tree in _nodes(_booster(kind)) for n in tree]
    return tuple(
        sorted(
            {
                float(n["threshold"])
                for n in nodes
                if n["split_feature"] == feature and n["decision_type"] == "<="
            }
        )
    )


@functools.cache
def _pool(kind: str, feature: int) -> tuple[float, ...]:
    """The values a tree can tell apart, and their neighbours."""
    if feature in (CATEGORY, CHANNEL):  # trained codes, unseen, negatives, NaN, fractions
        return (0.0, 1.0, 2.0, 3.0, 4.0, 99.0, -1.0, -2.0, math.nan, 1.5, 2.5, -0.5, -1.5)
    values = [math.nan, 0.0, -0.0, 1e-36, -1e-36, ZERO, -ZERO, math.inf, -math.inf]
    values += [np.nextafter(ZERO, UP), np.nextafter(-ZERO, DOWN), -1e9, 1e9]
    for threshold in _thresholds(kind, feature):
        values += [threshold, np.nextafter(threshold, DOWN), np.nextafter(threshold, UP)]
    return tuple(float(v) for v in values)


@st.composite
def _matrices(draw: st.DrawFn, kind: str, max_rows: int = 40) -> np.ndarray:
    columns = [st.sampled_from(_pool(kind, j)) for j in range(WIDTH)]
    rows = draw(st.lists(st.tuples(*columns), min_size=1, max_size=max_rows))
    return np.array(rows, dtype="float64")


def _row(
    x0: float = 0.5, x1: float = 1.0, category: float = 1.0, channel: float = 0.0
) -> np.ndarray:
    return np.array([[x0, x1, category, channel]])


def _stock(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=1))


# --- tree_splits -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", BINARY)
def test_tree_splits_are_each_trees_splits_as_lightgbm_holds_them(kind: str) -> None:
    booster = _booster(kind)
    splits = tree_splits(booster)
    assert len(splits) == booster.num_trees()
    for (features, thresholds, kinds), nodes in zip(splits, _nodes(booster), strict=True):
        assert features.dtype == np.intp and thresholds.dtype == np.float64
        assert kinds.dtype == np.int64
        assert features.tolist() == [n["split_feature"] for n in nodes]
        expected_kinds = [
            (n["decision_type"] == "==")
            | (n["default_left"] << 1)
            | (MISSING_TYPES[n["missing_type"]] << 2)
            for n in nodes
        ]
        assert kinds.tolist() == expected_kinds
        numeric = [i for i, n in enumerate(nodes) if n["decision_type"] == "<="]
        # bit for bit: the model text writes thresholds with %.17g
        assert thresholds[numeric].tolist() == [float(nodes[i]["threshold"]) for i in numeric]


def test_a_single_leaf_tree_has_no_splits() -> None:
    splits = tree_splits(_booster("single_leaf"))
    assert [len(f) for f, _, _ in splits].count(0) == 3
    for tree in (0, 7, 19):
        features, thresholds, kinds = splits[tree]
        assert features.shape == thresholds.shape == kinds.shape == (0,)


def test_tree_splits_stop_at_the_end_of_the_trees() -> None:
    """After the trees, the model text lists feature importances as `name=count`: features
    named like the split fields must not overwrite the last tree's splits."""
    names = ["split_feature", "threshold", "decision_type", "leaf_value"]
    named = _train({}, 3, names)
    assert "\nthreshold=" in named.model_to_string().split("end of trees")[1]
    plain = _train({}, 3)
    for ours, theirs in zip(tree_splits(named), tree_splits(plain), strict=True):
        for a, b in zip(ours, theirs, strict=True):
            assert np.array_equal(a, b)


# --- DecisionSignature ---------------------------------------------------------------------


def test_a_value_at_a_threshold_goes_left_and_one_float_above_goes_right() -> None:
    booster = _booster("nan")
    signature = DecisionSignature(booster)
    rows, _ = _data(rows=40, seed=5)  # rows that reach different nodes
    for feature in (0, 1):
        for threshold in _thresholds("nan", feature):
            at, above, below = rows.copy(), rows.copy(), rows.copy()
            at[:, feature] = threshold
            above[:, feature] = np.nextafter(threshold, UP)
            below[:, feature] = np.nextafter(threshold, DOWN)
            # every row changes signature; the rows that reach the split change contributions
            assert all(a != b for a, b in zip(signature(at), signature(above), strict=True))
            if abs(threshold) > 2 * ZERO:  # (LightGBM reads both sides of -1e-35f as 0)
                assert not np.array_equal(_stock(booster, at), _stock(booster, above))
                assert signature(at) == signature(below), (feature, threshold)
            # cached: whichever side is seen first, the other is computed for itself
            for first, then in ((above, at), (at, above)):
                cache = CachedContributions(booster, capacity=100)
                cache(first)
                assert np.array_equal(cache(then), _stock(booster, then))


@pytest.mark.parametrize("kind", ["nan", "zero"])
def test_minus_zero_and_1e36_count_as_zero_and_the_next_float_past_1e35f_does_not(
    kind: str,
) -> None:
    booster = _booster(kind)
    signature = DecisionSignature(booster)
    inside = np.concatenate([_row(x1=z) for z in (0.0, -0.0, 1e-36, -1e-36)])
    assert len(set(signature(inside))) == 1
    # LightGBM reads a dense value with |x| <= 1e-35f as 0, the bound included
    edges = np.concatenate([_row(x1=ZERO), _row(x1=-ZERO)])
    assert (_stock(booster, np.concatenate([inside, edges])) == _stock(booster, inside[:1])).all()
    for beyond in (np.nextafter(ZERO, UP), np.nextafter(-ZERO, DOWN)):
        assert signature(_row(x1=beyond)) != signature(_row(x1=0.0))
        assert not np.array_equal(_stock(booster, _row(x1=beyond)), _stock(booster, _row(x1=0.0)))
        cache = CachedContributions(booster, capacity=8)
        cache(_row(x1=0.0))
        assert np.array_equal(cache(_row(x1=beyond)), _stock(booster, _row(x1=beyond)))


def test_zero_as_missing_splits_send_zeros_their_default_way() -> None:
    """With missing type Zero, a value with |x| <= 1e-35f takes the default child, wherever
    the thresholds are: only the zero flag tells ±1e-35f from a nonzero value that falls on
    the same sides of every threshold."""
    booster = _booster("zero")
    kinds = {int(k) >> 2 for _, _, ks in tree_splits(booster) for k in ks if not k & 1}
    assert kinds == {1}  # every numeric split has missing type Zero
    signature = DecisionSignature(booster)
    rows, _ = _data(rows=40, seed=5)
    lowest_positive = min(t for t in _thresholds("zero", 0) if t > ZERO)
    for edge in (ZERO, -ZERO):
        zero, nonzero = rows.copy(), rows.copy()
        zero[:, 0] = edge
        nonzero[:, 0] = lowest_positive  # x0 has no threshold in (ZERO, lowest_positive)
        assert all(a != b for a, b in zip(signature(zero), signature(nonzero), strict=True))
        assert not np.array_equal(_stock(booster, zero), _stock(booster, nonzero))
        for first, then in ((nonzero, zero), (zero, nonzero)):
            cache = CachedContributions(booster, capacity=100)
            cache(first)
            assert np.array_equal(cache(then), _stock(booster, then))


@pytest.mark.parametrize("kind", BINARY)
@pytest.mark.filterwarnings(INF_CAST)
def test_every_boundary_value_of_one_feature_is_explained_exactly_in_either_order(
    kind: str,
) -> None:
    """Each training row with one feature replaced by every value of its boundary pool:
    equal signatures only where the contributions are equal, and a cache that sees the
    values in one order, then the other, answers exactly what TreeSHAP computes, and so
    does `batch_contributions` (up to summation order)."""
    booster = _booster(kind)
    signature = DecisionSignature(booster)
    base, _ = _data(rows=6, seed=11)
    for feature in range(WIDTH):
        pool = _pool(kind, feature)
        matrix = np.repeat(base, len(pool), axis=0)
        matrix[:, feature] = np.tile(pool, len(base))
        stock = _stock(booster, matrix)
        seen: dict[bytes, np.ndarray] = {}
        for key, values in zip(signature(matrix), stock, strict=True):
            assert np.array_equal(seen.setdefault(key, values), values), feature
        np.testing.assert_allclose(batch_contributions(booster, matrix), stock, rtol=0, atol=1e-12)
        for order in (slice(None), slice(None, None, -1)):
            cache = CachedContributions(booster, capacity=4096)
            for i in range(len(matrix))[order]:
                assert np.array_equal(cache(matrix[i : i + 1]), stock[i : i + 1]), feature


@pytest.mark.parametrize(("kind", "feature"), [("nan", 0), ("zero", 0), ("zero", 1)])
def test_missing_below_every_threshold_and_zero_get_different_signatures(
    kind: str, feature: int
) -> None:
    booster = _booster(kind)
    signature = DecisionSignature(booster)
    lowest = _thresholds(kind, feature)[0]
    values = {"missing": math.nan, "below every threshold": lowest - 1.0, "zero": 0.0}
    assert lowest - 1.0 < 0  # below, not zero
    rows = {name: _row(**{f"x{feature}": v}) for name, v in values.items()}
    keys = {name: signature(row)[0] for name, row in rows.items()}
    assert len(set(keys.values())) == 3
    # the model tells the value below every threshold from both others
    below = _stock(booster, rows["below every threshold"])
    assert not np.array_equal(below, _stock(booster, rows["missing"]))
    assert not np.array_equal(below, _stock(booster, rows["zero"]))


@pytest.mark.parametrize("kind", ["nan", "zero"])
def test_a_missing_value_never_gets_another_rows_cached_explanation(kind: str) -> None:
    """The bug: a signature that ignores NaN (NaN > threshold is False everywhere) gives a
    missing value the cached reasons of a row below every threshold, which LightGBM sends
    elsewhere: NaN takes its own default way (x0 of `nan`), or is read as 0 (the others)."""
    booster = _booster(kind)
    for feature in (0, 1):
        below = _row(**{f"x{feature}": _thresholds(kind, feature)[0] - 1.0})
        missing = _row(**{f"x{feature}": math.nan})
        assert not np.array_equal(_stock(booster, below), _stock(booster, missing))
        cache = CachedContributions(booster, capacity=16)
        cache(below)
        assert np.array_equal(cache(missing), _stock(booster, missing)), feature
        assert np.array_equal(cache(below), _stock(booster, below)), feature
        assert (cache.hits, cache.misses) == (1, 2)


@pytest.mark.filterwarnings(INF_CAST)
def test_a_split_of_decision_type_0_is_numeric() -> None:
    """Type 0 is a numeric split (bit 0 clear) with missing type None and no default-left
    bit: it must be read by threshold, never as a category code."""
    booster, plain = _booster("default_right"), _booster("nan")
    kinds = np.concatenate([k for _, _, k in tree_splits(booster)])
    assert 0 in kinds and 2 not in kinds
    x, _ = _data(rows=60, seed=3)
    x[::5, 1] = [math.inf, -math.inf, 5.0, -7.0, math.nan, 0.0, -2.0, 3.5, -0.0, 1e-36, 2.0, 1.0]
    assert np.array_equal(_stock(booster, x), _stock(plain, x))  # the same model
    assert DecisionSignature(booster)(x) == DecisionSignature(plain)(x)
    np.testing.assert_allclose(
        batch_contributions(booster, x), _stock(plain, x), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("kind", ["leaf_only", "no_trees"])
def test_a_model_without_splits_gives_every_row_one_signature_and_its_bias(kind: str) -> None:
    booster = _booster(kind)
    assert [len(f) for f, _, _ in tree_splits(booster)] == ([0] if kind == "leaf_only" else [])
    x, _ = _data(rows=30, seed=2)
    matrix = np.concatenate([x, _row(x0=math.nan), _row(x1=0.0, category=-1.0)])
    assert len(set(DecisionSignature(booster)(matrix))) == 1
    stock = _stock(booster, matrix)
    cache = CachedContributions(booster, capacity=8)
    assert np.array_equal(cache(matrix[:1]), stock[:1])
    assert np.array_equal(cache(matrix[1:]), stock[1:])
    assert (cache.hits, cache.misses) == (len(matrix) - 1, 1)
    np.testing.assert_allclose(batch_contributions(booster, matrix), stock, rtol=0, atol=1e-12)


def test_rows_on_the_same_side_of_every_threshold_share_one_signature() -> None:
    """The cache is worth having: values that differ but make the same decisions everywhere
    (here far above x0's highest threshold) are one signature, one computation."""
    booster = _booster("nan")
    top = _thresholds("nan", 0)[-1]
    rows = np.concatenate([_row(x0=top + 1.0), _row(x0=top + 10.0), _row(x0=top + 100.0)])
    assert len(set(DecisionSignature(booster)(rows))) == 1
    cache = CachedContributions(booster, capacity=8)
    assert np.array_equal(cache(rows[:1]), _stock(booster, rows[:1]))
    assert np.array_equal(cache(rows[1:]), _stock(booster, rows[1:]))
    assert (cache.hits, cache.misses) == (2, 1)


def test_categories_are_told_apart_by_code_and_negative_codes_go_with_missing() -> None:
    booster = _booster("nan")
    signature = DecisionSignature(booster)
    codes = [0.0, 1.0, 2.0, 3.0]
    keys = [signature(_row(category=c))[0] for c in codes]
    assert len(set(keys)) == 4
    left = _stock(booster, _row(category=0.0))  # category 0 is in some left sets
    missing = _stock(booster, _row(category=math.nan))
    assert not np.array_equal(left, missing)
    for other in (-1.0, -2.0, 99.0):  # LightGBM sends these right, like NaN
        assert np.array_equal(_stock(booster, _row(category=other)), missing)
    # a code is truncated like LightGBM's cast to int: 1.5 is category 1
    assert signature(_row(category=1.5)) == signature(_row(category=1.0))


def test_a_fractional_category_code_is_truncated_like_lightgbm_does() -> None:
    """LightGBM casts a category code to int, toward zero: -0.5 is category 0 (not a
    negative code, which would go with NaN) and 1.5 is category 1."""
    booster = _booster("nan")
    codes = [-0.5, 0.0, -1.0, math.nan, 1.5, 1.0, -1.5]
    rows = np.concatenate([_row(category=c) for c in codes])
    stock = _stock(booster, rows)
    assert np.array_equal(stock[0], stock[1]) and np.array_equal(stock[4], stock[5])
    assert not np.array_equal(stock[0], stock[2])  # category 0 is in some left sets
    assert np.array_equal(stock[2], stock[3]) and np.array_equal(stock[6], stock[3])
    signature = DecisionSignature(booster)
    assert signature(rows[:1]) == signature(rows[1:2])
    np.testing.assert_allclose(batch_contributions(booster, rows), stock, rtol=0, atol=1e-12)
    for order in (slice(None), slice(None, None, -1)):
        cache = CachedContributions(booster, capacity=16)
        assert np.array_equal(cache(rows[order]), stock[order])


@pytest.mark.parametrize("kind", ["nan", "zero", "single_leaf"])
@settings(max_examples=50)  # every pool value, one feature at a time: the exhaustive test
@given(data=st.data())
def test_rows_with_equal_signatures_get_identical_contributions(
    kind: str, data: st.DataObject
) -> None:
    booster = _booster(kind)
    matrix = data.draw(_matrices(kind))
    seen: dict[bytes, np.ndarray] = {}
    for key, values in zip(
        DecisionSignature(booster)(matrix), _stock(booster, matrix), strict=True
    ):
        assert np.array_equal(seen.setdefault(key, values), values)


# --- CachedContributions ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nan", "zero", "single_leaf"])
@settings(max_examples=50)  # every pool value, one feature at a time: the exhaustive test
@given(data=st.data())
def test_cached_contributions_are_exactly_treeshap_whatever_order_rows_come_in(
    kind: str, data: st.DataObject
) -> None:
    booster = _booster(kind)
    matrix = data.draw(_matrices(kind))
    cache = CachedContributions(booster, capacity=data.draw(st.integers(1, 12)))
    start = 0
    while start < len(matrix):
        chunk = matrix[start : start + data.draw(st.integers(1, 8))]
        assert np.array_equal(cache(chunk), _stock(booster, chunk))
        start += len(chunk)
    assert cache.hits + cache.misses == len(matrix)


def test_hits_and_misses_count_rows_served_from_and_added_to_the_cache() -> None:
    booster = _booster("nan")
    a, b, c = _row(x0=-1e9), _row(x0=1e9), _row(x0=math.nan)
    cache = CachedContributions(booster, capacity=8)
    cache(np.concatenate([a, b, a]))  # a batch is looked up before it is added
    assert (cache.hits, cache.misses, len(cache.cache)) == (0, 3, 2)
    cache(np.concatenate([b, a, c]))
    assert (cache.hits, cache.misses, len(cache.cache)) == (2, 4, 3)
    cache(a)  # a single row is cached too
    assert (cache.hits, cache.misses) == (3, 4)


def test_the_cache_keeps_at_most_capacity_signatures_evicting_the_least_recently_used() -> None:
    booster = _booster("nan")
    signature = DecisionSignature(booster)
    a, b, c = _row(x0=-1e9), _row(x0=1e9), _row(x0=math.nan)
    cache = CachedContributions(booster, capacity=2)
    for row in (a, b, a, c):  # a is used again after b: b goes when c comes
        cache(row)
    assert set(cache.cache) == {signature(a)[0], signature(c)[0]}
    cache(b)
    assert (cache.hits, cache.misses) == (1, 4)
    assert np.array_equal(
        cache(np.concatenate([a, b, c])), _stock(booster, np.concatenate([a, b, c]))
    )


def test_a_capacity_of_one_keeps_the_last_signature_only() -> None:
    booster = _booster("nan")
    signature = DecisionSignature(booster)
    a, b = _row(x0=-1e9), _row(x0=1e9)
    cache = CachedContributions(booster, capacity=1)
    for row in (a, b, b, a):
        assert np.array_equal(cache(row), _stock(booster, row))
    assert list(cache.cache) == signature(a)
    assert (cache.hits, cache.misses) == (1, 3)


def test_a_zero_capacity_computes_every_row_and_caches_nothing() -> None:
    booster = _booster("nan")
    cache = CachedContributions(booster, capacity=0)
    assert cache.signature is None
    matrix = np.concatenate([_row(), _row(), _row(x0=math.nan)])
    for _ in range(2):
        assert np.array_equal(cache(matrix), _stock(booster, matrix))
    assert (cache.hits, cache.misses, len(cache.cache)) == (0, 0, 0)


@pytest.mark.parametrize("capacity", [0, 8])
def test_no_rows_get_no_contributions(capacity: int) -> None:
    cache = CachedContributions(_booster("nan"), capacity=capacity)
    assert cache(np.empty((0, WIDTH))).shape == (0, WIDTH + 1)
    assert (cache.hits, cache.misses) == (0, 0)
    # as wide as LightGBM's answer for rows: features and bias per class
    multiclass = _booster("multiclass")
    x, _ = _data()
    assert contributions(multiclass, x[:0]).shape == (0, _stock(multiclass, x[:2]).shape[1])
    assert _stock(multiclass, x[:2]).shape == (2, 3 * (WIDTH + 1))


def test_what_the_cache_keeps_cannot_be_changed_through_an_answer() -> None:
    booster = _booster("nan")
    cache = CachedContributions(booster, capacity=8)
    matrix = np.concatenate([_row(), _row(x0=math.nan)])
    answer = cache(matrix)
    answer[:] = 0.0  # the caller's copy
    assert np.array_equal(cache(matrix), _stock(booster, matrix))
    for kept in cache.cache.values():
        assert not kept.flags.writeable
        assert kept.base is None  # its own row, not a view keeping the whole batch alive
        assert kept.shape == (WIDTH + 1,)


def test_a_request_is_explained_on_the_calling_thread_and_a_batch_on_all_cores() -> None:
    assert SMALL_BATCH == 64
    assert [threads_for(n) for n in (0, 1, 64, 65, 10_000)] == [1, 1, 1, 0, 0]


def test_contributions_are_lightgbms_for_requests_and_batches() -> None:
    booster = _booster("nan")
    x, _ = _data()
    for rows in (1, 64, 65, 400):
        assert np.array_equal(contributions(booster, x[:rows]), _stock(booster, x[:rows]))


# --- batch_contributions ------------------------------------------------------------------


@pytest.mark.parametrize("kind", BINARY)
@pytest.mark.filterwarnings(INF_CAST)
@settings(max_examples=50)  # every pool value, one feature at a time: the exhaustive test
@given(data=st.data())
def test_batch_contributions_equal_treeshap(kind: str, data: st.DataObject) -> None:
    booster = _booster(kind)
    matrix = data.draw(_matrices(kind, max_rows=60))
    fast, stock = batch_contributions(booster, matrix), _stock(booster, matrix)
    assert fast.shape == stock.shape
    np.testing.assert_allclose(fast, stock, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", BINARY)
def test_batch_contributions_of_the_training_rows_and_their_boundary_cases(kind: str) -> None:
    booster = _booster(kind)
    x, _ = _data()
    special = np.array(
        [
            [math.nan, math.nan, math.nan, math.nan],
            [0.0, 0.0, 0.0, 0.0],
            [-0.0, 1e-36, -1.0, -3.0],
            [-5.0, -1.0, 7.0, 1.0],  # negatives, an unseen category
            [1e9, -ZERO, -2.0, -2.0],
            [1e9, -ZERO, -2.0, 1.0],  # (a negative code must not hide the next one)
            [1e9, -ZERO, 2.0, 99.0],
        ]
    )
    matrix = np.concatenate([x, special, x[:50]])
    np.testing.assert_allclose(
        batch_contributions(booster, matrix), _stock(booster, matrix), rtol=0, atol=1e-12
    )
    one = batch_contributions(booster, matrix[-1:])
    np.testing.assert_allclose(one, _stock(booster, matrix[-1:]), rtol=0, atol=1e-12)
    assert batch_contributions(booster, matrix[:0]).shape == (0, WIDTH + 1)


def test_a_tree_with_more_outcomes_than_a_64_bit_key_is_computed_row_by_row() -> None:
    booster = _booster("deep")
    x, _ = _data()
    rows = np.repeat(x[:20], 5, axis=0)
    rows[:, CATEGORY] = np.tile([0.0, 1.0, 2.0, 3.0, math.nan], 20)  # only the code differs
    # one bit per numeric split, two (NaN, zero) per feature, and each category code's
    # bits: more than 63 in some tree
    bits = [
        int((kinds & 1 == 0).sum())
        + 2 * len(set(features))
        + sum(int(np.nanmax(rows[:, f]) + 1).bit_length() for f in set(features[kinds & 1 == 1]))
        for features, _, kinds in tree_splits(booster)
    ]
    assert max(bits) > 63
    np.testing.assert_allclose(
        batch_contributions(booster, rows), _stock(booster, rows), rtol=0, atol=1e-12
    )


def test_batch_contributions_sum_single_leaf_trees_into_the_bias() -> None:
    booster, plain = _booster("single_leaf"), _booster("nan")
    x, _ = _data()
    fast = batch_contributions(booster, x[:30])
    np.testing.assert_allclose(fast, _stock(booster, x[:30]), rtol=0, atol=1e-12)
    # the three leaves replaced three trees: the bias holds their values
    assert not np.allclose(fast[:, WIDTH], _stock(plain, x[:30])[:, WIDTH])


def test_batch_contributions_refuse_a_multiclass_model() -> None:
    x, _ = _data()
    with pytest.raises(
        ValueError, match=r"^batch_contributions supports one tree per iteration \(binary\)$"
    ):
        batch_contributions(_booster("multiclass"), x[:5])
