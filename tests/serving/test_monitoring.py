"""`retain monitor`: drift statistics on planted distributions, the day's result published,
logged, exposed and alerted, and a planted price war caught within its first week while
the same world without it raises nothing."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from fastapi import FastAPI, Request
from scipy.stats import ks_2samp, kstest, norm, wasserstein_distance
from typer.testing import CliRunner

from features.batch_rows import latest_features
from features.build import build_directory
from features.engine import EngineSettings
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.sampling import WEIGHT, NegativeSampling, sample_negatives
from features.settings import FeatureSettings
from features.store import apply, open_store
from features.training_set import churn_training_set
from retain.cli import app as cli_app
from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.daily import run_daily, score_all
from serving.domain import ActionStatus, NewAction
from serving.drift import DriftLimits, Statistic, feature_drift, noise_ratio, own_limits
from serving.metrics import ApiMetrics
from serving.monitoring import (
    Monitored,
    MonitoringSettings,
    ReferenceMissing,
    alerts_of,
    compare,
    load_reference,
    print_monitored,
    raise_alerts,
    realised,
    run_monitor,
    treated_between,
)
from serving.monitoring_results import latest_result, result_path
from serving.scoring import LoadedModel, load_champion, scoring_refs
from serving.settings import DailySettings, ServingSettings
from tests.features.conftest import REPO
from tests.serving.conftest import Served, running
from training.churn import train_churn
from training.model import FeatureSchema
from training.reference import (
    categorical_shares,
    churn_reference,
    expected_performance,
    feature_references,
    ks_against_sketch,
    numeric_shares,
    population_sample,
    psi,
    psi_present,
    quantile_edges,
    quantile_sketch,
    realised_performance,
    shares_of,
    wasserstein_on_grid,
)
from training.registry import use_backend
from training.settings import TrainingSettings

# --- statistics on planted distributions ---------------------------------------------------


def _psi_of(reference: np.ndarray, today: np.ndarray) -> float:
    edges = quantile_edges(reference, 10)
    return psi(numeric_shares(reference, edges), numeric_shares(today, edges))


def test_psi_of_the_same_distribution_is_about_zero() -> None:
    rng = np.random.default_rng(0)
    assert _psi_of(rng.normal(size=50_000), rng.normal(size=20_000)) < 0.01


def test_psi_of_a_one_standard_deviation_shift_crosses_the_alert_level() -> None:
    rng = np.random.default_rng(1)
    shifted = _psi_of(rng.normal(size=50_000), rng.normal(1.0, 1.0, size=20_000))
    assert shifted > MonitoringSettings().thresholds.psi_alert


def test_missing_values_and_unseen_levels_have_their_own_bins() -> None:
    values = np.array([1.0, 2.0, np.nan, 3.0])
    assert numeric_shares(values, [1.5, 2.5]) == [0.25, 0.25, 0.25, 0.25]
    shares = categorical_shares(pd.Series(["a", "b", None, "z"]), ["a", "b"])
    assert shares == [0.25, 0.25, 0.25, 0.25]  # a, b, unseen (z), missing


def test_ks_against_the_quantile_sketch_equals_scipys_two_sample_statistic() -> None:
    rng = np.random.default_rng(2)
    reference, today = rng.normal(size=40_000), rng.normal(0.2, 1.2, size=5_000)
    statistic, p_value = ks_against_sketch(quantile_sketch(reference, 201), today, len(reference))
    exact = ks_2samp(reference, today)
    assert statistic == pytest.approx(exact.statistic, abs=0.006)
    assert p_value < 1e-6 and exact.pvalue < 1e-6


def test_expected_performance_of_calibrated_scores_matches_the_realised_one() -> None:
    rng = np.random.default_rng(3)
    probability = rng.beta(0.6, 12.0, size=200_000)  # calibrated by construction
    churned = (rng.random(probability.size) < probability).astype(int)
    expected = expected_performance(probability)
    actual = realised_performance(churned, probability)
    assert expected["roc_auc"] == pytest.approx(actual["roc_auc"], abs=0.005)
    assert expected["churn_rate"] == pytest.approx(actual["churn_rate"], abs=0.002)
    assert expected["precision_top_decile"] == pytest.approx(
        actual["precision_top_decile"], abs=0.01
    )


def test_expected_roc_auc_falls_when_scores_lose_their_spread() -> None:
    rng = np.random.default_rng(4)
    sharp = rng.beta(0.6, 12.0, size=50_000)
    flat = 0.5 * sharp + 0.5 * sharp.mean()  # the same mean, less separation
    assert expected_performance(flat)["roc_auc"] < expected_performance(sharp)["roc_auc"] - 0.05


def test_a_feature_alerts_only_beyond_its_own_monthly_drift() -> None:
    def no_noise(probability: float) -> float:
        return 1.0

    assert own_limits([0.01, 0.02, 0.015], 0.1, 0.25, 3.0, no_noise) == (0.1, 0.25)
    warn, alert = own_limits([0.3, 0.5, 0.4], 0.1, 0.25, 3.0, no_noise)
    assert warn == pytest.approx(0.6) and alert == pytest.approx(0.7)
    assert own_limits([0.5], 0.1, 0.25, 3.0, no_noise) == (0.1, 0.25)  # one month: no spread
    assert own_limits([0.0, 0.0, float("nan")], 0.1, 0.25, 3.0, no_noise) == (0.1, 0.25)
    # months whose drift is steady still alert only where their noise would rarely reach
    warn, alert = own_limits([0.14, 0.14, 0.14], 0.1, 0.2, 3.0, partial(noise_ratio, "ks"))
    assert alert == pytest.approx(0.14 * noise_ratio("ks", float(norm.cdf(3.0))))
    assert 0.14 < warn < alert


@pytest.mark.parametrize(
    ("statistic", "draw"),
    [
        # KS of 300 draws against their own distribution
        ("ks", lambda rng: kstest(rng.random(300), "uniform").statistic),
        # PSI of 2,000 draws on ten equal bins
        (
            "psi",
            lambda rng: psi(
                np.full(10, 0.1), np.bincount(rng.integers(0, 10, 2_000), minlength=10) / 2_000
            ),
        ),
        # the gap between two missing shares of 5 %
        ("gap", lambda rng: abs(rng.binomial(2_000, 0.05) - rng.binomial(2_000, 0.05)) / 2_000),
    ],
)
def test_the_noise_ratio_is_the_statistics_quantile_over_its_mean_under_no_drift(
    statistic: Statistic, draw: Callable[[np.random.Generator], float]
) -> None:
    rng = np.random.default_rng(3)
    null = np.array([draw(rng) for _ in range(3_000)])
    bins = 10 if statistic == "psi" else 2
    for probability in (0.9, 0.99):
        expected = np.quantile(null, probability) / null.mean()
        assert noise_ratio(statistic, probability, bins) == pytest.approx(expected, rel=0.1)


def _panel(rng: np.random.Generator, months: int, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_timestamp": np.repeat(
                pd.date_range("2026-01-01", periods=months, freq="MS", tz="UTC"), rows
            ),
            "usage": rng.normal(10 + shift, 2, months * rows),
            "tickets": rng.poisson(0.3, months * rows).astype(float),
            "plan": rng.choice(["basic", "plus", "max"], months * rows),
        }
    )


def test_feature_drift_flags_the_shifted_feature_and_nothing_else() -> None:
    rng = np.random.default_rng(5)
    train = _panel(rng, 6, 3_000)
    schema = FeatureSchema.infer(train, ["usage", "tickets", "plan"])
    references = feature_references(train, schema, bins=10, sketch_points=201)
    today = _panel(rng, 1, 5_000).assign(usage=lambda f: f["usage"] + 2.0)  # one sd up
    limits = MonitoringSettings().limits()
    drift = feature_drift(references, schema.transform(today), limits).set_index("feature")
    assert drift.loc["usage", "status"] == "alert"
    assert (drift.drop(index="usage")["status"] == "ok").all()
    assert len(references["usage"]["month_psi"]) == 6
    assert np.isnan(drift.loc["plan", "ks"])  # KS is for numeric features only


def test_the_wasserstein_distance_against_the_sketch_equals_scipys() -> None:
    rng = np.random.default_rng(12)
    for reference, today in (
        (rng.normal(size=40_000), rng.normal(0.3, 1.2, size=5_000)),
        (rng.poisson(0.3, 40_000).astype(float), rng.poisson(0.45, 5_000).astype(float)),
        (rng.exponential(1.0, 40_000), rng.exponential(1.3, 5_000)),
    ):
        sd = float(reference.std())
        exact = wasserstein_distance(reference, today) / sd
        ours = wasserstein_on_grid(quantile_sketch(reference, 201), today, sd)
        assert ours == pytest.approx(exact, rel=0.05, abs=0.005)
    assert np.isnan(wasserstein_on_grid(quantile_sketch(reference, 201), today, 0.0))
    assert np.isnan(wasserstein_on_grid([], today, 1.0))


def test_each_months_wasserstein_distance_is_read_against_the_months_far_from_it() -> None:
    rng = np.random.default_rng(13)
    train = _panel(rng, 8, 2_000)
    train.loc[train["event_timestamp"] == train["event_timestamp"].max(), "usage"] += 0.6
    schema = FeatureSchema.infer(train, ["usage", "tickets", "plan"])
    references = feature_references(train, schema, bins=10, sketch_points=201)
    usage = schema.transform(train)["usage"].to_numpy()
    month = pd.factorize(train["event_timestamp"], sort=True)[0]
    sd = references["usage"]["sd"]
    assert sd == pytest.approx(usage.std())
    for m in (0, 7):
        exact = wasserstein_distance(usage[month == m], usage[np.abs(month - m) > 3]) / sd
        assert references["usage"]["month_wasserstein"][m] == pytest.approx(exact, rel=0.05)
    assert "month_wasserstein" not in references["plan"]


def test_a_rise_in_a_sparse_count_alerts_on_the_distance_where_psi_and_ks_stay_quiet() -> None:
    # a fifth of the customers with a ticket, then a week in which a seventh more call: the
    # share with one rises by a third, the tickets per customer by half
    rng = np.random.default_rng(14)
    train = _panel(rng, 12, 3_000)
    schema = FeatureSchema.infer(train, ["usage", "tickets", "plan"])
    references = feature_references(train, schema, bins=10, sketch_points=201)
    today = _panel(rng, 1, 5_000)
    today["tickets"] += rng.random(len(today)) < 0.14
    limits = MonitoringSettings().limits()
    drift = feature_drift(references, schema.transform(today), limits).set_index("feature")
    tickets = drift.loc["tickets"]
    assert tickets["psi"] < limits.psi_alert and tickets["ks"] < limits.ks_alert
    assert tickets["wasserstein"] >= tickets["wasserstein_alert_at"]
    assert tickets["status"] == "alert"
    assert (drift.drop(index="tickets")["status"] == "ok").all()
    assert np.isnan(drift.loc["plan", "wasserstein"])  # numeric features only


def test_a_trend_the_test_months_already_showed_does_not_alert_on_the_distance() -> None:
    # bills rising a little every month: today lies months past the training months but
    # next to the test months
    rng = np.random.default_rng(15)
    panel = _panel(rng, 18, 2_000)
    month = pd.factorize(panel["event_timestamp"], sort=True)[0]
    panel["usage"] += month * 0.06
    train, test = panel[month < 10], panel[month >= 15]
    today = _panel(rng, 1, 2_000).assign(usage=lambda f: f["usage"] + 18 * 0.06)
    schema = FeatureSchema.infer(train, ["usage", "tickets", "plan"])
    prepared = schema.transform(today)
    limits = MonitoringSettings().limits()
    alone = feature_references(train, schema, bins=10, sketch_points=201)
    both = feature_references(train, schema, bins=10, sketch_points=201, recent=test)
    far = feature_drift(alone, prepared, limits).set_index("feature").loc["usage"]
    near = feature_drift(both, prepared, limits).set_index("feature").loc["usage"]
    assert far["wasserstein"] >= far["wasserstein_alert_at"]
    assert near["wasserstein"] < 0.5 * near["wasserstein_alert_at"]
    # a shift from both references still alerts
    shifted = schema.transform(today.assign(usage=lambda f: f["usage"] + 1.0))
    assert feature_drift(both, shifted, limits).set_index("feature").loc["usage", "status"] == (
        "alert"
    )


def test_warn_only_features_warn_on_their_spread_and_alert_on_a_stopped_feed() -> None:
    rng = np.random.default_rng(16)
    train = _panel(rng, 6, 3_000).rename(columns={"usage": "home_cell_drop_rate_30d"})
    names = ["home_cell_drop_rate_30d", "tickets", "plan"]
    schema = FeatureSchema.infer(train, names)
    references = feature_references(train, schema, bins=10, sketch_points=201)
    settings = MonitoringSettings()
    warn_only = settings.warn_only(references)
    assert warn_only == {"home_cell_drop_rate_30d"}
    today = _panel(rng, 1, 5_000).rename(columns={"usage": "home_cell_drop_rate_30d"})
    today["home_cell_drop_rate_30d"] += 2.0
    moved = feature_drift(references, schema.transform(today), settings.limits(), warn_only)
    assert moved.set_index("feature").loc["home_cell_drop_rate_30d", "status"] == "warn"
    today["home_cell_drop_rate_30d"] = np.nan  # the network feed stopped
    stopped = feature_drift(references, schema.transform(today), settings.limits(), warn_only)
    assert stopped.set_index("feature").loc["home_cell_drop_rate_30d", "status"] == "alert"
    # the list is the settings': empty, the network alerts like any feature
    everything = MonitoringSettings(warn_only_features=[])
    assert everything.warn_only(references) == set()


def test_each_month_is_read_against_the_months_more_than_three_away() -> None:
    rng = np.random.default_rng(6)
    train = _panel(rng, 12, 2_000)
    train["usage"] += np.repeat(np.arange(12) * 0.1, 2_000)  # a steady trend
    train.loc[rng.random(len(train)) < 0.02, "usage"] = np.nan
    train.loc[rng.random(len(train)) < 0.01, "plan"] = None
    schema = FeatureSchema.infer(train, ["usage", "tickets", "plan"])
    references = feature_references(train, schema, bins=10, sketch_points=201)
    prepared = schema.transform(train)
    month = pd.factorize(train["event_timestamp"], sort=True)[0]
    for m in (0, 5, 11):
        mine, others = prepared[month == m], prepared[np.abs(month - m) > 3]
        for name in ("usage", "tickets", "plan"):
            reference = references[name]
            ours, theirs = shares_of(reference, mine[name]), shares_of(reference, others[name])
            assert reference["month_psi"][m] == pytest.approx(psi_present(theirs, ours))
            assert reference["month_missing"][m] == pytest.approx(abs(ours[-1] - theirs[-1]))
        usage = mine["usage"].dropna(), others["usage"].dropna()
        # KS read at the sketch's 201 points: the exact statistic to within a step
        exact = ks_2samp(*usage).statistic
        assert references["usage"]["month_ks"][m] == pytest.approx(exact, abs=0.01)
    # the first month against months 4 to 11 sees most of the trend; against the whole
    # (itself and its neighbours included) far less of it
    drift = references["usage"]["month_psi"]
    first = shares_of(references["usage"], prepared.loc[month == 0, "usage"])
    assert drift[0] > 1.5 * psi_present(references["usage"]["shares"], first)
    assert drift[0] > drift[5] < drift[11]
    assert "month_ks" not in references["plan"]


def test_a_customer_before_the_first_bill_moves_no_psi_and_a_stopped_feed_alerts() -> None:
    rng = np.random.default_rng(9)
    train = _panel(rng, 6, 3_000)
    schema = FeatureSchema.infer(train, ["usage", "tickets", "plan"])
    references = feature_references(train, schema, bins=10, sketch_points=201)
    limits = MonitoringSettings().limits()
    today = _panel(rng, 1, 5_000)
    newcomers = rng.random(len(today)) < 0.03  # no usage yet: their first month is running
    drift = feature_drift(
        references, schema.transform(today.assign(usage=today["usage"].mask(newcomers))), limits
    ).set_index("feature")
    assert drift.loc["usage", "psi"] < 0.01  # counted in the missing bin it would be 0.15
    assert drift.loc["usage", "missing"] == pytest.approx(0.03, abs=0.01)
    assert drift.loc["usage", "missing_reference"] == 0.0
    assert (drift["status"] == "ok").all()
    stopped = today.assign(usage=np.nan, plan=today["plan"].mask(rng.random(len(today)) < 0.4))
    drift = feature_drift(references, schema.transform(stopped), limits).set_index("feature")
    assert drift.loc["usage", "status"] == "alert" and drift.loc["usage", "missing"] == 1.0
    assert np.isnan(drift.loc["usage", "psi"]) and np.isnan(drift.loc["usage", "ks"])
    assert drift.loc["plan", "status"] == "alert"  # 40 % missing where none were
    assert drift.loc["tickets", "status"] == "ok"


def test_a_negative_sampled_training_set_gives_the_populations_reference() -> None:
    rng = np.random.default_rng(8)
    whole = _panel(rng, 6, 20_000)
    whole["churned"] = rng.random(len(whole)) < 0.03
    whole.loc[whole["churned"], "usage"] += 3.0  # churners use more, as the model learns
    sampled = sample_negatives(
        whole, "churned", NegativeSampling(rate=0.1, keep_latest_months=0, seed=1)
    )
    assert sampled["churned"].mean() > 0.2  # several times the churners of the population
    schema = FeatureSchema.infer(whole, ["usage", "tickets", "plan"])

    def drift_of_the_population(reference_rows: pd.DataFrame) -> float:
        """The whole population's PSI against a reference taken from `reference_rows`."""
        usage = feature_references(reference_rows, schema, bins=10, sketch_points=201)["usage"]
        return psi(usage["shares"], shares_of(usage, whole["usage"]))

    assert drift_of_the_population(sampled) > 0.05  # read as it is: a shifted picture
    restored = population_sample(sampled, seed=2)
    assert WEIGHT in restored and restored["churned"].mean() == pytest.approx(0.03, abs=0.005)
    assert drift_of_the_population(restored) < 0.005
    assert population_sample(whole) is whole  # unsampled rows: untouched


def _scored(labels: np.ndarray, probability: np.ndarray) -> pd.DataFrame:
    ids = [f"C{i:05d}" for i in range(len(labels))]
    return pd.DataFrame({"customer_id": ids, "churn_probability": probability})


def test_realised_performance_reads_the_untreated_customers_only() -> None:
    rng = np.random.default_rng(6)
    probability = rng.uniform(0, 0.5, 2_000)
    churned = rng.random(2_000) < probability
    scored = _scored(churned, probability)
    # treatment kept the riskiest treated customers and the safe ones left: an inverted
    # picture, which must not reach the model's realised performance
    treated = set(scored["customer_id"].iloc[:1_000])
    churned[:1_000] = probability[:1_000] < 0.1
    gone = set(scored["customer_id"][churned])
    found = realised(scored, gone, treated, minimum=200, floor=0.6)
    untreated = slice(1_000, None)
    assert found["untreated"] == 1_000
    assert found["roc_auc"] == pytest.approx(
        realised_performance(churned[untreated].astype(int), probability[untreated])["roc_auc"]
    )
    assert found["status"] == "ok"
    assert realised(scored, gone, set(scored["customer_id"]), 200, 0.6)["note"]


def test_treated_customers_are_those_a_campaign_reached_in_the_window(tmp_path: Path) -> None:
    at = pd.Timestamp("2026-10-01", tz="UTC")
    pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "treated": [True, False, True, True],
            "sent_at": [at, at, at - pd.Timedelta(days=3), at + pd.Timedelta(days=30)],
        }
    ).to_parquet(tmp_path / "campaigns.parquet")
    found = treated_between(
        tmp_path, None, ["A", "B", "C", "D"], at.to_pydatetime(), (at + pd.Timedelta(days=30))
    )
    assert found == {"A"}  # B was the no-contact control, C before, D after the window


def test_treated_customers_are_those_an_action_went_out_to(
    tmp_path: Path, action_db_url: str
) -> None:
    log = ActionLog(open_engine(action_db_url))
    at = datetime(2026, 10, 1, 9, tzinfo=UTC)

    def decided(customer: str, kind: str, status: ActionStatus, when: datetime) -> None:
        key = f"{customer}:{kind}"
        log.record([NewAction(customer, kind, key, status, "decide", channel="sms")], when)

    decided("A", "retention_offer", ActionStatus.QUEUED, at)
    decided("B", "retention_offer", ActionStatus.CONTROL, at)  # held back: untreated
    decided("C", "retention_offer", ActionStatus.SUPPRESSED, at)  # never went out
    decided("D", "outage_notice", ActionStatus.QUEUED, at)  # a service message
    decided("E", "callback", ActionStatus.QUEUED, at + timedelta(days=31))  # after the window
    ids = ["A", "B", "C", "D", "E"]
    found = treated_between(tmp_path, log, ids, at - timedelta(hours=1), at + timedelta(days=30))
    assert found == {"A"}


# --- the day's result, on the served project ----------------------------------------------

DAY = date(2026, 10, 31)  # outcomes of the customers scored 30 days earlier are known


@pytest.fixture(scope="module")
def monitored(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    daily = DailySettings(output_dir=tmp_path_factory.mktemp("lists") / "risk_lists")
    return run_monitor(
        DAY, MonitoringSettings(), served.settings, daily, served.features, served.tracking, None
    )


def test_the_days_result_is_published_beside_the_risk_lists(monitored: Monitored) -> None:
    assert monitored.path is not None
    assert monitored.path == result_path(monitored.path.parents[1], DAY)
    published = json.loads(monitored.path.read_text())
    assert published == json.loads(json.dumps(monitored.result))
    assert latest_result(monitored.path.parents[1]) == published
    assert published["customers"] > 500
    assert {row["feature"] for row in published["features"]} >= {"tickets_30d", "contract_type"}
    assert published["expected"]["reference_roc_auc"] > 0.5


def test_realised_performance_waits_for_the_label_horizon_and_skips_the_treated(
    monitored: Monitored,
) -> None:
    found = monitored.result["realised"]
    assert found["scored_on"] == "2026-10-01"
    assert 0 < found["untreated"] < found["customers"]  # the legacy campaigns' customers
    assert 0.5 < found["roc_auc"] <= 1.0


def test_the_days_figures_are_an_mlflow_run_with_a_metric_per_feature(
    served: Served, monitored: Monitored
) -> None:
    use_backend(served.tracking.resolved_tracking_uri())
    run = mlflow.get_run(str(monitored.run_id))
    assert run.data.params["date"] == DAY.isoformat()
    assert run.data.metrics["psi_tickets_30d"] == pytest.approx(
        next(r["psi"] for r in monitored.result["features"] if r["feature"] == "tickets_30d")
    )
    assert "expected_roc_auc" in run.data.metrics and "realised_roc_auc" in run.data.metrics
    assert run.data.metrics["missing_tickets_30d"] == 0.0  # a count: never missing


def test_the_command_prints_the_drift_table(
    monitored: Monitored, capsys: pytest.CaptureFixture[str]
) -> None:
    print_monitored(monitored)
    out = capsys.readouterr().out
    assert "feature" in out and "PSI" in out and "Wasserstein" in out and "tickets_30d" in out
    assert "expected ROC-AUC" in out and "realised ROC-AUC on untreated customers" in out
    assert str(monitored.path) in out


def test_metrics_expose_the_latest_result(monitored: Monitored) -> None:
    assert monitored.path is not None
    app = FastAPI()
    app.state.risk_lists = monitored.path.parents[1]
    ApiMetrics().install(app)
    with running(app) as url:
        text = requests.get(f"{url}/metrics", timeout=10).text
    assert 'retain_feature_psi{feature="tickets_30d"}' in text
    assert 'retain_feature_missing_share{feature="tickets_30d"}' in text
    assert 'retain_feature_wasserstein{feature="tickets_30d"}' in text
    assert "retain_score_psi " in text and "retain_expected_roc_auc " in text
    assert "retain_realised_roc_auc " in text
    assert f"retain_monitor_alerts {float(len(monitored.result['alerts']))}" in text


def test_metrics_have_no_monitoring_gauges_before_the_first_run(tmp_path: Path) -> None:
    app = FastAPI()
    app.state.risk_lists = tmp_path
    ApiMetrics().install(app)
    with running(app) as url:
        assert "retain_score_psi" not in requests.get(f"{url}/metrics", timeout=10).text


def test_the_daily_page_shows_the_latest_monitoring(served: Served, monitored: Monitored) -> None:
    assert monitored.path is not None
    daily = DailySettings(output_dir=monitored.path.parents[1], table_rows=20)
    _, folder, _ = run_daily(
        date(2026, 11, 2), served.settings, daily, served.features, served.tracking, None
    )
    page = (folder / "report.html").read_text()
    assert 'id="monitoring"' in page and f"Model monitoring, {DAY.isoformat()}" in page


def test_a_model_without_a_reference_is_refused_naming_the_file(served: Served) -> None:
    loaded = load_champion(served.settings, served.tracking)
    use_backend(served.tracking.resolved_tracking_uri())
    with mlflow.start_run() as run:  # a run logged before monitoring existed
        pass
    older = LoadedModel(loaded.model, loaded.name, "0", run.info.run_id, loaded.feature_service)
    with pytest.raises(ReferenceMissing, match=r"monitoring/reference\.json"):
        load_reference(older, served.tracking)
    with mlflow.start_run() as run:  # a reference of the previous format: limits not comparable
        mlflow.log_dict({"version": 1, "features": {}}, "monitoring/reference.json")
    older = LoadedModel(loaded.model, loaded.name, "0", run.info.run_id, loaded.feature_service)
    refused = r"version 1, expected 2 or 3: train the model again"
    with pytest.raises(ReferenceMissing, match=refused):
        load_reference(older, served.tracking)


def test_the_command_refuses_a_bad_day_and_a_missing_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli_app, ["monitor", "--day", "31/10/2026"])
    assert bad.exit_code == 2 and "--day '31/10/2026': expected YYYY-MM-DD" in bad.output

    def missing(*_: Any) -> None:
        raise ReferenceMissing("monitoring/reference.json is missing from the run r1")

    monkeypatch.setattr("serving.cli.publish_monitoring", missing)
    refused = runner.invoke(cli_app, ["monitor", "--day", "2026-10-31"])
    assert refused.exit_code == 2
    assert "error: monitoring/reference.json is missing" in refused.output


def test_alerts_are_logged_and_posted_to_the_webhook(caplog: pytest.LogCaptureFixture) -> None:
    received: list[dict[str, Any]] = []
    hook = FastAPI()

    @hook.post("/alerts")
    async def alerts(request: Request) -> dict[str, str]:
        received.append(await request.json())
        return {}

    result = {
        "date": "2026-11-08", "model": "churn v3", "run_id": "r1", "status": "alert",
        "alerts": [{"kind": "score_drift", "psi": 0.4}],
    }  # fmt: skip
    with running(hook) as url, caplog.at_level(logging.WARNING, "retain.monitor"):
        raise_alerts(result, MonitoringSettings(alert_webhook_url=f"{url}/alerts"))
    line = json.loads(caplog.records[0].getMessage())
    assert line == {"event": "monitoring_alert", "date": "2026-11-08", "model": "churn v3",
                    "kind": "score_drift", "psi": 0.4}  # fmt: skip
    assert received == [{k: result[k] for k in ("date", "model", "run_id", "status", "alerts")}]


def test_an_unreachable_webhook_leaves_the_alert_logged(caplog: pytest.LogCaptureFixture) -> None:
    result = {"date": "2026-11-08", "model": "churn v3", "run_id": "r1", "status": "alert",
              "alerts": [{"kind": "score_drift", "psi": 0.4}]}  # fmt: skip
    settings = MonitoringSettings(
        alert_webhook_url="http://127.0.0.1:9/alerts", alert_webhook_timeout_s=1
    )
    with caplog.at_level(logging.WARNING, "retain.monitor"):
        raise_alerts(result, settings)
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR"]


# --- a planted price war ------------------------------------------------------------------

WAR_STARTS = "2026-11-01"
A_WEEK_LATER = pd.Timestamp("2026-11-08", tz="UTC")  # the worlds' export instant


def _world(root: Path, shift: dict[str, Any] | None) -> FeatureSettings:
    """2,000 customers x 24 months ending a week into November, features built as of then."""
    (root / "features" / "repo").mkdir(parents=True)
    shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", root / "features" / "repo")
    lifecycle = root / "data" / "lifecycle"
    generate(
        DataSettings.model_validate(
            {
                "out_dir": lifecycle,
                "customers": 2_000,
                "months": 24,
                "seed": 7,
                "as_of": A_WEEK_LATER.to_pydatetime(),
                "shift": shift,
            }
        )
    )
    settings = FeatureSettings.model_validate(
        {"repo_path": root / "features" / "repo", "lifecycle_dir": lifecycle}
    )
    build_directory(lifecycle, settings.tables_dir, A_WEEK_LATER, EngineSettings())
    apply(open_store(settings))
    return settings


def _alerts(
    world: FeatureSettings, loaded: LoadedModel, reference: dict[str, Any]
) -> list[dict[str, Any]]:
    """The alerts of `retain monitor` on the world's last day (its features of that day)."""
    store = open_store(world)
    refs, _ = scoring_refs(store, loaded.feature_service)
    at = A_WEEK_LATER + pd.Timedelta(hours=8)  # the day's scoring instant (quiet hours end)
    batch = latest_features(store, world.tables_dir, refs, at)
    assert batch.snapshot == A_WEEK_LATER
    scored, _ = score_all(batch, loaded, ServingSettings())
    _, found = compare(reference, scored, loaded.model.schema.transform(batch.frame), MONITORING)
    return alerts_of({**found, "realised": {"status": "ok"}})


MONITORING = MonitoringSettings()


@pytest.mark.slow
def test_a_price_war_is_caught_in_its_first_week_and_a_quiet_world_raises_nothing(
    tmp_path: Path,
) -> None:
    stable = _world(tmp_path / "stable", None)
    war = _world(tmp_path / "war", {"start": WAR_STARTS})  # the simulator's default war
    frame = churn_training_set(open_store(stable), stable.lifecycle_dir, 30)
    trained = train_churn(
        frame,
        "churned_within_30d",
        TrainingSettings.model_validate(
            {"params": {"max_rounds": 300, "early_stopping_rounds": 30}}
        ),
    )
    reference = json.loads(json.dumps(churn_reference(trained)))  # as logged
    loaded = LoadedModel(trained.model, "churn", "1", "run", "churn_v1")

    assert _alerts(stable, loaded, reference) == []
    caught = _alerts(war, loaded, reference)
    features = {alert.get("feature") for alert in caught}
    # the customers' calls about the rival's prices: complaints, and their sentiment
    assert features & {"tickets_complaint_90d", "tickets_30d", "sentiment_min_90d"}


def test_limits_come_from_the_settings() -> None:
    settings = MonitoringSettings.model_validate({"thresholds": {"psi_alert": 0.3, "sigmas": 2}})
    assert settings.limits() == DriftLimits(0.1, 0.3, 0.1, 0.2, 2.0)


def test_a_warning_level_above_its_alert_level_is_refused() -> None:
    with pytest.raises(ValueError, match=r"thresholds\.psi_warn"):
        MonitoringSettings.model_validate({"thresholds": {"psi_warn": 0.3, "psi_alert": 0.2}})
