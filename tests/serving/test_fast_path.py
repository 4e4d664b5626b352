"""The scorer's fast path gives exactly what the reference path (Feast, pandas, TreeSHAP) gives."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from features.online_rows import DirectRows, FeastRows, row_reader
from features.store import open_store
from serving.explain import CachedContributions, DecisionSignature, batch_contributions
from serving.scoring import CustomerScore, Scorer, UnknownCustomer
from tests.serving.conftest import Served, active_ids, open_scorer

# a month-end and a mid-day instant: request-time features differ between them
MOMENTS = [pd.Timestamp("2026-10-31T23:59:59+00:00"), pd.Timestamp("2026-11-02T09:17:00+00:00")]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@pytest.fixture(scope="module")
def scorer(served: Served) -> Scorer:
    return open_scorer(served)


def test_direct_rows_equal_feast_rows_value_for_value(served: Served, scorer: Scorer) -> None:
    assert isinstance(scorer.reader, DirectRows)
    store = open_store(served.features)
    feast = FeastRows(store, scorer.refs, scorer.presence_view)
    first = active_ids(served)
    ids = [*first[:400], "C99999999", "nobody", *first[:3]]  # unknowns and repeats
    for at in MOMENTS:
        direct, reference = scorer.reader.read(ids, at), feast.read(ids, at)
        assert direct.known.tolist() == reference.known.tolist()
        assert direct.known.sum() == 403 and not direct.known[400] and not direct.known[401]
        assert list(direct.columns) == list(reference.columns)
        compared = 0
        for name, values in direct.columns.items():
            for i, (ours, theirs) in enumerate(zip(values, reference.columns[name], strict=True)):
                if not direct.known[i] or (_missing(ours) and _missing(theirs)):
                    continue
                assert ours == theirs, f"{name} of {ids[i]} at {at}: {ours!r} != {theirs!r}"
                # equal is not enough: True == 1 == 1.0 (Feast gives floats for ints only
                # where a column has gaps)
                assert isinstance(ours, bool) == isinstance(theirs, bool), name
                assert isinstance(ours, str) == isinstance(theirs, str), name
                compared += 1
        assert compared > 400 * 40


def test_fast_scores_and_reasons_equal_the_reference_path(served: Served, scorer: Scorer) -> None:
    store = open_store(served.features)
    uncached = served.settings.model_copy(update={"explanation_cache": 0})
    reference = Scorer(
        scorer.loaded, store, uncached, FeastRows(store, scorer.refs, scorer.presence_view)
    )
    ids = [*active_ids(served)[:300], "C99999999"]
    for at in MOMENTS:
        for _ in range(2):  # the second round is served from the contribution cache
            fast, slow = scorer.score(ids, at), reference.score(ids, at)
            for ours, theirs in zip(fast, slow, strict=True):
                assert type(ours) is type(theirs)
                if not isinstance(ours, CustomerScore):
                    continue
                assert isinstance(theirs, CustomerScore)
                assert ours.churn_probability == theirs.churn_probability
                assert [(r.feature, r.text, r.contribution) for r in ours.reasons] == [
                    (r.feature, r.text, r.contribution) for r in theirs.reasons
                ]
                assert ours.contact == theirs.contact
    assert scorer.contributions.hits >= 300 and scorer.contributions.misses >= 300


def test_concurrent_requests_of_mixed_sizes_score_as_one_at_a_time(
    served: Served, scorer: Scorer
) -> None:
    """The API scores requests on many threads at once. A single customer predicts on the
    calling thread and forty customers' value model on all cores: LightGBM's thread count
    is one process-wide variable, so such calls must take turns (serving.scoring's
    MODEL_CALLS). Eight threads of mixed requests give what one thread gives."""
    ids = active_ids(served)[:40]
    requests = [ids[:1] if i % 2 else ids for i in range(8)]
    at = MOMENTS[0]
    expected = [scorer.score(r, at) for r in requests]

    def served_again(request: list[str]) -> list[list[tuple[float, object]]]:
        return [_probability_and_value(scorer.score(request, at)) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(served_again, requests))
    for want, rounds in zip(expected, answers, strict=True):
        assert len(want) in (1, 40)
        assert all(got == _probability_and_value(want) for got in rounds)


def _probability_and_value(
    scores: list[CustomerScore | UnknownCustomer],
) -> list[tuple[float, object]]:
    known = [s for s in scores if isinstance(s, CustomerScore)]
    assert len(known) == len(scores)
    return [(s.churn_probability, s.value) for s in known]


def test_the_served_probability_is_the_calibrated_one(served: Served, scorer: Scorer) -> None:
    """What Scorer.score serves is the champion's calibrate(raw score) of the same rows,
    never the booster's raw score (which every comparison of two scorers would accept)."""
    model = scorer.loaded.model
    ids = active_ids(served)[:300]
    scores = scorer.score(ids, MOMENTS[1])
    assert all(isinstance(s, CustomerScore) for s in scores)
    served_p = np.array([s.churn_probability for s in scores if isinstance(s, CustomerScore)])
    rows = scorer.reader.read(ids, MOMENTS[1])
    raw = np.asarray(model.booster.predict(model.schema.matrix(rows.columns)))
    assert np.array_equal(served_p, model.calibrate(raw))
    assert np.array_equal(served_p, model.predict_proba(pd.DataFrame(rows.columns)))
    assert (served_p != raw).all()


def _model_rows(served: Served, scorer: Scorer, count: int) -> np.ndarray:
    rows = scorer.reader.read(active_ids(served)[:count], MOMENTS[1])
    return scorer.loaded.model.schema.matrix(rows.columns)


def test_the_matrix_is_what_lightgbm_makes_of_the_pandas_frame(
    served: Served, scorer: Scorer
) -> None:
    model = scorer.loaded.model
    rows = scorer.reader.read(active_ids(served)[:200], MOMENTS[1])
    frame = pd.DataFrame(rows.columns)
    # the ugly cases: an unseen category, missing text, missing and boolean numbers
    frame.loc[0, "contract_type"] = "lifetime"
    frame.loc[1, "segment"] = None
    frame.loc[2, "monthly_fee"] = None
    frame["paperless_billing"] = frame["paperless_billing"].astype(object)
    frame.loc[3, "paperless_billing"] = None
    matrix = model.schema.matrix({c: frame[c].tolist() for c in frame.columns})
    assert math.isnan(matrix[0, model.schema.columns.index("contract_type")])
    expected = model.booster.predict(model.schema.transform(frame), pred_contrib=True)
    assert np.array_equal(model.booster.predict(matrix, pred_contrib=True), expected)
    assert np.array_equal(model.booster.predict(matrix), model.raw_proba(frame))


def test_rows_with_one_signature_get_identical_contributions(
    served: Served, scorer: Scorer
) -> None:
    booster = scorer.loaded.model.booster
    signature = DecisionSignature(booster)
    matrix = _model_rows(served, scorer, 300)
    rng = np.random.default_rng(3)
    # move every numeric value as far as it can go without crossing a split threshold
    moved = matrix.copy()
    for j in signature.numeric:
        thresholds = np.sort(signature.split_threshold[signature.split_feature == j])
        for i in range(len(moved)):
            value = moved[i, j]
            if math.isnan(value) or value == 0:
                continue
            k = np.searchsorted(thresholds, value, side="left")
            low = thresholds[k - 1] if k > 0 else value - 1.0
            high = thresholds[k] if k < len(thresholds) else value + 1.0
            # LightGBM's outermost thresholds can be near the float limits: stay sampleable
            low, high = max(low, value - 1e6), min(high, value + 1e6)
            moved[i, j] = rng.uniform(np.nextafter(low, high), high)  # (low, high]
    assert signature(moved) == signature(matrix)
    assert not np.array_equal(moved, matrix)
    assert np.array_equal(
        booster.predict(moved, pred_contrib=True), booster.predict(matrix, pred_contrib=True)
    )
    # crossing one threshold changes the signature
    feature, threshold = signature.split_feature[0], signature.split_threshold[0]
    below, above = matrix[:1].copy(), matrix[:1].copy()
    below[0, feature], above[0, feature] = threshold, np.nextafter(threshold, np.inf)
    assert signature(below) != signature(above)


def test_cached_contributions_are_exactly_treeshap(served: Served, scorer: Scorer) -> None:
    booster = scorer.loaded.model.booster
    matrix = _model_rows(served, scorer, 200)
    matrix[5, :] = np.nan  # all missing
    matrix[6, scorer.loaded.model.schema.numeric.index("monthly_fee")] = 0.0
    doubled = np.concatenate([matrix, matrix[::-1]])  # every row twice, in another order
    cache = CachedContributions(booster, capacity=150)  # smaller than the rows: evictions
    for _ in range(2):
        assert np.array_equal(cache(doubled), booster.predict(doubled, pred_contrib=True))
    assert cache.hits > 0 and cache.misses > 0
    assert len(cache.cache) <= 150


def test_another_on_demand_view_falls_back_to_feast(served: Served, scorer: Scorer) -> None:
    store = open_store(served.features)
    refs = [*scorer.refs, "some_other_odfv:score"]
    with pytest.raises(ValueError, match="some_other_odfv"):
        DirectRows(store, refs, scorer.presence_view)
    assert isinstance(row_reader(store, refs, scorer.presence_view), FeastRows)


def test_batch_contributions_are_treeshap_tree_by_tree(served: Served, scorer: Scorer) -> None:
    booster = scorer.loaded.model.booster
    matrix = _model_rows(served, scorer, 400)
    schema = scorer.loaded.model.schema
    matrix[0, :] = np.nan  # all missing
    matrix[1, schema.numeric.index("monthly_fee")] = 0.0
    matrix[2, schema.columns.index("contract_type")] = np.nan  # an unseen category
    matrix = np.concatenate([matrix, matrix[:50]])  # repeated rows
    stock = booster.predict(matrix, pred_contrib=True)
    fast = batch_contributions(booster, matrix)
    assert fast.shape == stock.shape
    assert np.allclose(fast, stock, rtol=0, atol=1e-12)
    assert np.array_equal(np.argsort(-fast[:, :-1], axis=1)[:, :3],
                          np.argsort(-stock[:, :-1], axis=1)[:, :3])  # fmt: skip
    assert batch_contributions(booster, matrix[:0]).shape == (0, matrix.shape[1] + 1)
