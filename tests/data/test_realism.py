"""The simulated demo data shows the patterns a retention analyst expects, at plausible sizes.

IBM Telco reference (../shared/data): tenure 0-72 months, mean 32.4; monthly charges
18.25-118.75, mean 64.8; contracts 55 % month-to-month, 21 % one-year, 24 % two-year
among all customers (43/25/32 among those who stayed).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.lifecycle.profile import Profile, load_tables, profile

AS_OF = pd.Timestamp("2026-11-01", tz="UTC")


@pytest.fixture(scope="module")
def figures(demo_data: Path) -> Profile:
    return profile(load_tables(demo_data), AS_OF)


def test_monthly_churn_is_in_the_industry_band(figures: Profile) -> None:
    assert 0.015 <= figures.monthly_churn_rate <= 0.025


def test_month_to_month_contracts_churn_most(figures: Profile) -> None:
    by_contract = figures.churn_rate_by_contract
    assert by_contract["month_to_month"] > 2.5 * by_contract["one_year"]
    assert by_contract["one_year"] > 1.5 * by_contract["two_year"]


def test_churn_peaks_near_contract_end(figures: Profile) -> None:
    assert figures.churn_rate_contract_ends_within_60d > 2 * figures.churn_rate_contract_end_later


def test_bill_shock_raises_churn(figures: Profile) -> None:
    assert figures.churn_rate_after_bill_shock > 2 * figures.churn_rate_without_bill_shock


def test_outages_raise_churn_and_trigger_complaint_spikes(figures: Profile) -> None:
    assert figures.churn_rate_after_outage > 1.5 * figures.churn_rate_without_outage
    assert figures.network_faults_week_after_outage > 5 * figures.network_faults_week_before_outage


def test_outages_cluster_in_time_and_space(demo_data: Path, figures: Profile) -> None:
    assert figures.typhoon_share_in_season == 1.0
    events = pd.read_parquet(demo_data / "network_events.parquet")
    sites = pd.read_parquet(demo_data / "cell_sites.parquet").set_index("cell_site_id")
    typhoons = events[events["cause"] == "typhoon"].groupby("event_id")
    assert typhoons.size().min() >= 3  # a landfall takes down many sites ...
    assert (typhoons["started_at"].agg(lambda s: s.max() - s.min()) <= pd.Timedelta(hours=8)).all()
    # ... and a fibre cut takes down neighbours: sites of one cut are much closer than random pairs
    cuts = events[events["cause"] == "fibre_cut"].join(sites, on="cell_site_id")
    spread = cuts.groupby("event_id")[["x_km", "y_km"]].std().dropna().mean().mean()
    assert figures.sites_per_fibre_cut > 1.5
    assert spread < 0.5 * sites[["x_km", "y_km"]].std().mean()


def test_seasonal_package_surges(figures: Profile) -> None:
    assert figures.campus_pack_term_start_ratio > 3
    assert figures.roaming_pack_holiday_ratio > 1.8


def test_retention_offers_work_on_average_against_the_random_control(figures: Profile) -> None:
    assert figures.churn_60d_after_offer_treated < figures.churn_60d_after_offer_control


def test_true_effects_are_heterogeneous(demo_data: Path) -> None:
    """Persuadables, sleeping dogs and customers an action leaves unchanged all exist, for
    every action, and which is which depends on the customer, not only on the action."""
    effects = pd.read_parquet(demo_data / "truth" / "treatment_effects.parquet")
    treated = effects[effects["action"] != "none"]
    for _, rows in treated.groupby("action"):
        change = rows["true_effect"]
        assert (change < -0.02).mean() > 0.05  # persuadables: kept by the action
        assert (change > 0.002).mean() > 0.03  # sleeping dogs: pushed away by the contact
        assert change.abs().lt(0.005).mean() > 0.1  # sure things and lost causes
    by_action = treated.groupby("action")["true_effect"].mean()
    assert (by_action < 0).all()  # on average every action keeps customers ...
    assert by_action.max() - by_action.min() > 0.01  # ... some much more than others


def test_marginals_resemble_the_ibm_telco_sample(figures: Profile) -> None:
    assert 25 <= figures.active_tenure_months_mean <= 40
    assert 0.35 <= figures.active_contract_mix["month_to_month"] <= 0.55
    assert 55 <= figures.active_monthly_fee_mean <= 75
    low, high = figures.active_monthly_fee_range
    assert low >= 15 and high <= 125


def test_the_ibm_reference_figures_hold(shared_ibm: pd.DataFrame) -> None:
    """Guards the reference numbers quoted above against a changed file."""
    assert shared_ibm["tenure"].between(0, 72).all()
    assert abs(shared_ibm["tenure"].mean() - 32.4) < 0.1
    assert abs(shared_ibm["MonthlyCharges"].mean() - 64.8) < 0.1
    mix = shared_ibm["Contract"].value_counts(normalize=True)
    assert abs(mix["Month-to-month"] - 0.55) < 0.01


@pytest.fixture(scope="module")
def shared_ibm() -> pd.DataFrame:
    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / "ibm_telco" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data is beside the checkout in CI)")
    return pd.read_csv(path)
