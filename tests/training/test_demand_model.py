"""The demand forecaster: no look-ahead, ordered quantiles, seasonal surges, the hooks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.lifecycle.profile import load_tables
from features.settings import FeatureSettings
from features.store import open_store
from features.training_set import demand_history
from tests.features.conftest import AS_OF
from tests.features.reference_build import region_weekly_demand
from training.demand.backtest import BacktestResult, backtest
from training.demand.calendar import seasonal_lag_weeks, week_features
from training.demand.campaigns import campaign_candidates, find_surges
from training.demand.capacity import callback_capacity
from training.demand.dataset import (
    SERIES,
    WEEK,
    WEEK_END,
    DemandDataError,
    LeakageError,
    check_no_lookahead,
    forecasting_rows,
    long_history,
)
from training.demand.model import DemandForecaster, DemandRecipe, fit_forecaster
from training.demand.propensity import customer_snapshots, train_propensity
from training.demand.settings import DemandCalendar, DemandSettings, Staffing, Surges

FAST = DemandSettings.model_validate(
    {
        "params": {"num_rounds": 120, "early_stopping_rounds": 15},
        "backtest": {"origins": 3, "step_weeks": 4},
    }
)
RECIPE = DemandRecipe.of(FAST)


@pytest.fixture(scope="module")
def history(demo_project: FeatureSettings) -> pd.DataFrame:
    """The demo data's region-week history, read through Feast's demand_v2 service."""
    return demand_history(open_store(demo_project), demo_project.lifecycle_dir)


def _up_to(history: pd.DataFrame, origin: str) -> pd.DataFrame:
    return history[history[WEEK_END] <= pd.Timestamp(origin, tz="UTC")]


# --- look-ahead -------------------------------------------------------------------------


def _peek_at_the_target(long: pd.DataFrame, horizon: int, calendar: DemandCalendar) -> pd.DataFrame:
    rows = forecasting_rows(long, horizon, calendar)
    return rows.assign(answer=rows["target"])


def _peek_one_week_ahead(
    long: pd.DataFrame, horizon: int, calendar: DemandCalendar
) -> pd.DataFrame:
    """A subtle leak: a smoothed level centred on the origin reads the week after it."""
    rows = forecasting_rows(long, horizon, calendar)
    centred = long.groupby(["region", "series"])["value"].transform(
        lambda v: v.rolling(3, center=True, min_periods=1).mean()
    )
    level = long.assign(centred=centred).set_index(["region", "series", WEEK_END])["centred"]
    keys = pd.MultiIndex.from_arrays([rows["region"], rows["series"], rows["origin"]])
    return rows.assign(centred_level=level.reindex(keys).to_numpy())


@pytest.mark.parametrize(
    ("build", "feature"),
    [(_peek_at_the_target, "answer"), (_peek_one_week_ahead, "centred_level")],
)
def test_the_backtest_catches_a_feature_that_reads_the_future(
    history: pd.DataFrame, build: object, feature: str
) -> None:
    with pytest.raises(LeakageError, match=f"feature '{feature}' changes when data after"):
        backtest(history, RECIPE, FAST.backtest, build=build)  # type: ignore[arg-type]


def test_the_backtest_catches_training_rows_from_after_the_origin(history: pd.DataFrame) -> None:
    everything = long_history(history)

    def ignores_the_cut(long: pd.DataFrame, horizon: int, calendar: DemandCalendar) -> pd.DataFrame:
        return forecasting_rows(everything, horizon, calendar)  # the whole history, always

    with pytest.raises(LeakageError, match="training rows have a target after the origin"):
        backtest(history, RECIPE, FAST.backtest, build=ignores_the_cut)


def test_the_real_features_use_nothing_after_any_origin(history: pd.DataFrame) -> None:
    long = long_history(history)
    for origin in ("2025-03-03", "2026-02-02", "2026-08-31"):  # before/at a festival, term start
        check_no_lookahead(long, pd.Timestamp(origin, tz="UTC"), 8, FAST.calendar)


# --- backtest and quantiles ------------------------------------------------------------------


@pytest.fixture(scope="module")
def result(history: pd.DataFrame) -> BacktestResult:
    return backtest(history, RECIPE, FAST.backtest)


def test_the_backtest_scores_model_and_both_baselines_on_the_same_weeks(
    history: pd.DataFrame, result: BacktestResult
) -> None:
    forecasts = result.forecasts
    assert len(result.origins) == 3 and forecasts["actual"].notna().all()
    assert (forecasts["target_week_end"] > forecasts["origin"]).all()
    assert set(result.metrics["method"]) == {"model", "seasonal_naive", "moving_average"}
    assert set(result.metrics["scope"]) == {"package", "service_load", *SERIES}
    # seasonal naive is the same week a year (52 weeks) earlier
    row = forecasts[(forecasts["series"] == "daily_pass") & (forecasts["horizon"] == 3)].iloc[0]
    long = long_history(history)
    same_week = long[
        (long["region"] == row["region"])
        & (long["series"] == "daily_pass")
        & (long[WEEK_END] == row["target_week_end"] - 52 * WEEK)
    ]["value"]
    assert row["seasonal_naive"] == same_week.iloc[0]
    for scope in ("package", "service_load"):
        assert (
            0
            < result.figure(scope, "model", "wape")
            < result.figure(scope, "seasonal_naive", "wape")
        )
        assert 0.5 < result.figure(scope, "model", "coverage_p10_p90") <= 1.0


def test_quantiles_are_ordered_and_never_negative(
    history: pd.DataFrame, result: BacktestResult
) -> None:
    forecasts = result.forecasts
    assert (forecasts["p10"] <= forecasts["p50"]).all()
    assert (forecasts["p50"] <= forecasts["p90"]).all()
    assert (forecasts["p10"] >= 0).all()
    rows = forecasting_rows(long_history(history), 8, FAST.calendar)
    model = fit_forecaster(rows, RECIPE)
    crossed = DemandForecaster(  # the P10 model answers for P90 and vice versa
        model.recipe,
        {"p10": model.boosters["p90"], "p50": model.boosters["p50"], "p90": model.boosters["p10"]},
        model.columns,
        model.categories,
    )
    with pytest.raises(DemandDataError, match="forecasts 1 to 8 weeks ahead, not 9"):
        crossed.forecast(history, weeks=9)
    forecast = crossed.forecast(history)
    assert (forecast["p10"] <= forecast["p50"]).all() and (forecast["p50"] <= forecast["p90"]).all()
    assert len(forecast) == history["region"].nunique() * len(SERIES) * 8
    assert forecast["week_start"].min() == history[WEEK_END].max()


# --- seasonal surges ---------------------------------------------------------------------


def _planted_history(weeks: int = 150, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Four regions with steady demand, except campus packs: 6x in ISO weeks 36-38."""
    rng = np.random.default_rng(seed)
    ends = pd.date_range("2023-01-09", periods=weeks, freq="7D", tz="UTC")
    frames = []
    for region, size in {"a": 1.0, "b": 2.0, "c": 0.5, "d": 1.5}.items():
        surge = (ends - WEEK).isocalendar().week.isin([36, 37, 38]).to_numpy()
        mean = np.where(surge, 6.0, 1.0) * 20 * size
        frame = pd.DataFrame({"region": region, WEEK_END: ends})
        for column in SERIES.values():
            frame[column] = rng.poisson(20 * size, weeks)
        frame["purchases_campus_data_pack"] = rng.poisson(mean)
        frame["network_fault_contacts"] = rng.poisson(2 * size, weeks)
        frame["active_customers"] = int(1000 * size)
        frame["active_students"] = int(100 * size)
        frame["outage_hours"] = 0.0
        frame["outage_customer_hours"] = 0.0
        frame["open_tickets"] = rng.poisson(5 * size, weeks)
        frame["week_of_year"] = (ends - WEEK).isocalendar().week.to_numpy()
        frames.append(frame.assign(true_mean=mean))
    planted = pd.concat(frames, ignore_index=True)
    return planted.drop(columns="true_mean"), planted["true_mean"]


def test_the_forecast_reproduces_a_planted_seasonal_surge() -> None:
    planted, true_mean = _planted_history()
    origin = pd.Timestamp("2025-08-25", tz="UTC")  # two weeks before the third year's surge
    known = planted[WEEK_END] <= origin
    rows = forecasting_rows(long_history(planted[known]), 8, FAST.calendar)
    forecast = fit_forecaster(rows, RECIPE).forecast(planted[known])
    campus = forecast[forecast["series"] == "campus_data_pack"].merge(
        planted.assign(true_mean=true_mean)[["region", WEEK_END, "true_mean"]],
        left_on=["region", "week_end"],
        right_on=["region", WEEK_END],
    )
    surge = campus["true_mean"] > campus["true_mean"].groupby(campus["region"]).transform("min")
    assert surge.sum() == 3 * 4  # three surge weeks in each of four regions
    ratio = campus["p50"] / campus["true_mean"]
    assert ratio[surge].between(0.7, 1.3).all(), campus[surge]
    assert ratio[~surge].between(0.6, 1.5).all(), campus[~surge]
    assert (campus.loc[surge, "p90"] >= campus.loc[surge, "true_mean"] * 0.9).all()


def test_the_surge_detector_finds_the_term_start_surge_for_campus_packs(
    history: pd.DataFrame,
) -> None:
    before_term = _up_to(history, "2026-08-24")
    rows = forecasting_rows(long_history(before_term), 8, FAST.calendar)
    forecast = fit_forecaster(rows, RECIPE).forecast(before_term)
    surges = find_surges(forecast, before_term, Surges())
    campus = surges[surges["package"] == "campus_data_pack"]
    september = campus["week_start"].dt.month.eq(9) | (
        campus["week_end"].dt.month.eq(9) & campus["week_end"].dt.day.gt(3)
    )
    assert campus["region"].nunique() >= 6, surges
    assert september.all(), campus
    # the last September week sells nothing in this world (packs sell in the term's first
    # 20 days), and October is quiet: neither may be called a surge
    assert not (campus["week_start"] >= pd.Timestamp("2026-09-21", tz="UTC")).any()
    assert (campus["p50"] >= 1.5 * campus["baseline"]).all()


def test_no_surge_without_enough_extra_purchases() -> None:
    forecast = pd.DataFrame(
        {
            "region": ["r", "r"],
            "series": ["family_upgrade", "roaming_pack"],
            "group": ["package", "package"],
            "week_start": pd.Timestamp("2026-01-05", tz="UTC"),
            "week_end": pd.Timestamp("2026-01-12", tz="UTC"),
            "horizon": 1,
            "p10": [1.0, 30.0],
            "p50": [3.0, 40.0],
            "p90": [5.0, 50.0],
        }
    )
    history = pd.DataFrame(
        {
            "region": "r",
            WEEK_END: pd.date_range("2025-11-10", periods=8, freq="7D", tz="UTC"),
            **{column: 1 for column in SERIES.values()},
        }
    ).assign(purchases_roaming_pack=20)
    surges = find_surges(forecast, history, Surges(min_ratio=1.5, min_extra=5))
    assert surges["package"].tolist() == ["roaming_pack"]  # family: 3x but only +2 purchases
    assert surges.loc[0, "extra"] == 20.0 and surges.loc[0, "baseline"] == 20.0


def test_campaign_candidates_for_campus_packs_are_students(demo_project: FeatureSettings) -> None:
    settings = DemandSettings()
    tables = load_tables(demo_project.lifecycle_dir, ("package_purchases",))
    propensity = train_propensity(
        customer_snapshots(demo_project.tables_dir),
        tables["package_purchases"],
        AS_OF,
        settings.propensity,
        settings.calendar,
        seed=1,
    )
    assert propensity.holdout_auc["campus_data_pack"] > 0.9
    assert min(propensity.holdout_auc.values()) > 0.65
    customers = customer_snapshots(demo_project.tables_dir, AS_OF)
    surges = pd.DataFrame(
        {
            "region": ["metro_central", "metro_central", "harbour"],
            "package": ["campus_data_pack", "campus_data_pack", "roaming_pack"],
            "week_start": pd.to_datetime(["2027-02-08", "2027-02-01", "2027-01-25"], utc=True),
        }
    )
    candidates = campaign_candidates(surges, customers, propensity, per_surge=50)
    assert len(candidates) == 100  # one list per region and package, from the first week
    campus = candidates[candidates["package"] == "campus_data_pack"]
    assert (campus["week_start"] == pd.Timestamp("2027-02-01", tz="UTC")).all()
    assert campus["rank"].tolist() == list(range(1, 51))
    assert campus["propensity"].is_monotonic_decreasing
    students = customers.set_index("customer_id").loc[campus["customer_id"], "is_student"]
    assert students.mean() >= 0.95
    roaming = candidates[candidates["package"] == "roaming_pack"]
    region = customers.set_index("customer_id").loc[roaming["customer_id"], "region"]
    assert (region == "harbour").all()
    travel = customers["roaming_days_90d"]
    picked = customers["customer_id"].isin(roaming["customer_id"])
    assert travel[picked].mean() > 2 * travel[customers["region"] == "harbour"].mean()


# --- callback capacity -----------------------------------------------------------------------


def _load(contacts: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region": list(contacts),
            "series": "service_load",
            "week_start": pd.Timestamp("2026-11-02", tz="UTC"),  # a Monday
            "p50": [c * 0.8 for c in contacts.values()],
            "p90": list(contacts.values()),
        }
    )


def test_callback_capacity_shrinks_with_service_load_and_never_goes_negative() -> None:
    staffing = Staffing(
        account_managers=2,
        per_region={"big": 4},
        hours_per_day=7.5,
        minutes_per_callback=20,
        minutes_per_escalation=25,
        escalation_share=0.5,
    )
    capacity = callback_capacity(
        _load({"calm": 50, "busy": 200, "storm": 5000, "big": 200}), staffing
    )
    per_region = capacity.groupby("region")["callbacks_available"].first()
    # 2 managers x 450 minutes; 10 contacts a day, half escalated at 25 minutes: 125 minutes
    assert per_region["calm"] == (900 - 125) // 20
    assert per_region["calm"] > per_region["busy"] > per_region["storm"] == 0
    assert per_region["big"] > per_region["busy"]  # four managers
    assert capacity["date"].dt.weekday.isin(range(5)).all()
    assert capacity.groupby("region").size().eq(5).all()
    p50 = callback_capacity(_load({"busy": 200}), staffing.model_copy(update={"plan_for": "p50"}))
    assert p50["callbacks_available"].iloc[0] > per_region["busy"]


# --- input checks and calendar ----------------------------------------------------------------


def test_a_missing_week_or_negative_count_names_region_and_week(history: pd.DataFrame) -> None:
    gap = history.drop(history.index[(history["region"] == "harbour")][10])
    with pytest.raises(DemandDataError, match="region harbour: missing week ending 2025-01-20"):
        long_history(gap)
    negative = history.copy()
    negative.loc[negative.index[5], "service_contacts"] = -1
    with pytest.raises(DemandDataError, match="service_contacts must be a non-negative number"):
        long_history(negative)
    with pytest.raises(DemandDataError, match="lacks column"):
        long_history(history.drop(columns="outage_hours"))
    twice = pd.concat([history, history.iloc[[3]]])
    with pytest.raises(DemandDataError, match="the week ending 2024-12-02 appears twice"):
        long_history(twice)
    shifted = history.copy()
    harbour = shifted["region"] == "harbour"
    shifted.loc[harbour, WEEK_END] -= pd.Timedelta(days=1)  # Sunday week ends in one region
    with pytest.raises(DemandDataError, match=r"region harbour: weeks end .* not on the same"):
        long_history(shifted)
    stale = history.copy()  # what Feast returns for a missing week: the week before's row
    row = stale.index[(stale["region"] == "highlands")][30]
    stale.loc[row, "week_of_year"] = stale.loc[row - 1, "week_of_year"]
    with pytest.raises(DemandDataError, match="region highlands: no row for the week ending"):
        long_history(stale)


def test_a_history_too_short_to_backtest_says_how_much_is_needed(history: pd.DataFrame) -> None:
    with pytest.raises(DemandDataError, match=r"15 weeks of history are too few to backtest.*16"):
        backtest(history.groupby("region").head(15), RECIPE, FAST.backtest)


def test_a_history_shorter_than_the_minimum_backtests_on_what_it_has_and_says_so(
    history: pd.DataFrame, result: BacktestResult
) -> None:
    """Half a year (a young operator, a small world) still gets a backtest: its first origin
    has the 16 weeks that leave one horizon after them, and the result says so."""
    short = history.groupby("region").head(24)
    young = backtest(short, RECIPE, FAST.backtest)
    first = pd.Timestamp(short[WEEK_END].min())
    assert (young.origins[0] - first) // pd.Timedelta(weeks=1) + 1 >= 16
    assert young.origins[-1] == pd.Timestamp(short[WEEK_END].max()) - pd.Timedelta(weeks=8)
    assert young.notes and "leaves 16 weeks before the first backtest origin" in young.notes[0]
    assert not young.forecasts["p50"].isna().any()
    assert result.notes == ()  # the whole history: as configured


def test_last_year_follows_the_spring_festival_for_festival_driven_series() -> None:
    calendar = DemandCalendar()
    weeks = pd.Series(pd.to_datetime(["2026-02-09", "2026-07-06", "2026-01-05"], utc=True))
    # 2025-01-29 -> 2026-02-17 is 55 weeks; July is far from both festivals
    assert seasonal_lag_weeks(weeks, calendar).tolist() == [55, 52, 55]
    features = week_features(weeks, calendar)
    assert features["weeks_to_spring_festival"].iloc[0] == pytest.approx(8 / 7)
    with pytest.raises(ValueError, match="add the missing years"):
        week_features(pd.Series(pd.to_datetime(["2040-01-02"], utc=True)), calendar)


def test_the_region_week_history_through_feast_matches_the_feature_pipeline(
    history: pd.DataFrame, demo_project: FeatureSettings
) -> None:
    tables = load_tables(demo_project.lifecycle_dir)
    built = region_weekly_demand(tables, AS_OF)
    merged = built.merge(history, on=["region", WEEK_END], suffixes=("", "_feast"))
    assert len(merged) == len(built) == len(history)
    for column in SERIES.values():
        assert (merged[column] == merged[f"{column}_feast"]).all()
