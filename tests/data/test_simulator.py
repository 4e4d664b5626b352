"""The simulator: contract-shaped output, determinism, blocks, the as-of cut-off, safe replace."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.lifecycle import simulator
from features.lifecycle.calendar import contract_end_after
from features.lifecycle.contract import TABLES
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import TRUTH_DIR, OutputFolderError, generate
from features.lifecycle.validate import check_columns, validate_directory


def _tables(directory: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted(directory.glob("*.parquet"))}


def test_every_contract_column_has_the_contract_type(small_data: Path) -> None:
    for name, spec in TABLES.items():
        assert check_columns(pq.read_schema(small_data / spec.file_name), spec) == [], name


def test_same_seed_gives_identical_data(make_data: Callable[..., Path]) -> None:
    first = make_data("a", customers=600, months=8, seed=11)
    second = make_data("b", customers=600, months=8, seed=11)
    files = sorted(p.relative_to(first) for p in first.rglob("*.parquet"))
    assert len(files) == len(TABLES) + 3  # the contract tables and three truth tables
    for relative in files:
        assert pq.read_table(first / relative).equals(pq.read_table(second / relative)), relative
    assert json.loads((first / "manifest.json").read_text()) == json.loads(
        (second / "manifest.json").read_text()
    )


def test_another_seed_gives_other_data(make_data: Callable[..., Path]) -> None:
    first = make_data("a", customers=600, months=8, seed=11)
    other = make_data("b", customers=600, months=8, seed=12)
    assert not pq.read_table(first / "customers.parquet").equals(
        pq.read_table(other / "customers.parquet")
    )


def test_blocks_join_into_one_consistent_dataset(
    make_data: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulator, "BLOCK_SIZE", 400)
    out = make_data(customers=1_000, months=8, seed=5)  # three blocks, the last one short
    report = validate_directory(out)
    assert report.ok, [str(v) for v in report.violations]
    customers = pd.read_parquet(out / "customers.parquet")
    assert customers["customer_id"].is_unique and len(customers) == 1_000
    assert pd.read_parquet(out / "service_tickets.parquet")["ticket_id"].is_unique


def test_nothing_happens_after_a_mid_month_as_of(make_data: Callable[..., Path]) -> None:
    as_of = pd.Timestamp("2026-06-15T12:00:00Z")
    out = make_data(customers=800, months=10, as_of=as_of.to_pydatetime())
    assert validate_directory(out).ok
    t = _tables(out)
    # June is not billed yet: usage rows stop at May
    assert t["usage_monthly"]["month"].max() == pd.Timestamp("2026-05-01", tz="UTC")
    assert t["usage_monthly"]["month"].nunique() == 9
    assert t["service_tickets"]["opened_at"].max() < as_of
    assert (t["service_tickets"]["closed_at"].dropna() < as_of).all()
    assert t["churn_events"]["churned_at"].max() < as_of
    # the 15th is not over at noon: its quality is not reported yet
    assert t["cell_quality_daily"]["day"].max() == pd.Timestamp("2026-06-14", tz="UTC")


def test_a_short_winter_history_works(make_data: Callable[..., Path]) -> None:
    """December to May has no typhoon month: a season with no events must not break anything."""
    out = make_data(
        customers=300, months=6, as_of=pd.Timestamp("2026-06-01T00:00:00Z").to_pydatetime()
    )
    assert validate_directory(out).ok
    assert not (pd.read_parquet(out / "network_events.parquet")["cause"] == "typhoon").any()


def test_contract_end_is_the_end_of_the_term_running_at_export_or_churn(small_data: Path) -> None:
    customers = pd.read_parquet(small_data / "customers.parquet")
    churn = pd.read_parquet(small_data / "churn_events.parquet").set_index("customer_id")[
        "churned_at"
    ]
    observed_until = (
        customers["customer_id"].map(churn).fillna(pd.Timestamp("2026-11-01", tz="UTC"))
    )
    expected = contract_end_after(
        customers["signup_at"], customers["contract_type"], observed_until
    )
    pd.testing.assert_series_equal(customers["contract_end_at"], expected, check_names=False)


def test_purchases_fall_inside_the_customer_life(demo_data: Path) -> None:
    """Campus packs at term start and roaming packs before the festival, never before signup."""
    customers = pd.read_parquet(demo_data / "customers.parquet").set_index("customer_id")
    purchases = pd.read_parquet(demo_data / "package_purchases.parquet")
    assert (purchases["purchased_at"] >= purchases["customer_id"].map(customers["signup_at"])).all()
    roaming = purchases[purchases["package_id"] == "roaming_pack"]["purchased_at"]
    assert roaming.value_counts().max() <= 3  # no pile-up on a single instant


def test_refuses_to_replace_a_folder_that_is_not_simulator_output(tmp_path: Path) -> None:
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.txt").write_text("irreplaceable")
    with pytest.raises(OutputFolderError, match="refusing to replace"):
        generate(DataSettings.model_validate({"out_dir": precious, "customers": 200, "months": 6}))
    assert (precious / "chapter1.txt").read_text() == "irreplaceable"


def test_month_zero_hazard_uses_no_network_information(small_data: Path) -> None:
    """Nothing about the network is known before the history starts: no month-0 leak."""
    hazard = pd.read_parquet(small_data / "truth" / "churn_hazard.parquet")
    first = hazard[hazard["month"] == hazard["month"].min()]
    assert (first["logit_network"] == 0).all()
    assert (hazard["logit_network"] > 0).any()


def test_service_history_window_covers_three_completed_months() -> None:
    """Complaints from the three months before a month start count; the running month does not."""
    from features.lifecycle.simulator import lifecycle as lc

    ring = np.zeros((lc._WINDOW_MONTHS + 1, 2))
    ring[:, 0] = [1, 1, 1, 5]  # three completed months, then the running one
    assert lc._BlockSimulation._completed(ring)[0] == 3


def test_truth_is_kept_apart_from_the_contract_tables(small_data: Path) -> None:
    truth = small_data / TRUTH_DIR
    hazard = pd.read_parquet(truth / "churn_hazard.parquet")
    effects = pd.read_parquet(truth / "treatment_effects.parquet")
    assert {"customer_id", "month", "hazard"} <= set(hazard.columns)
    assert hazard["hazard"].between(0, 1).all()
    assert {"customer_id", "campaign_id", "action", "true_effect", "expected_effect"} <= set(
        effects.columns
    )
    campaigns = pd.read_parquet(small_data / "campaigns.parquet")
    assert len(effects) == len(campaigns)
    contract_columns = {c for p in small_data.glob("*.parquet") for c in pq.read_schema(p).names}
    hidden = {"hazard", "true_effect", "expected_effect", "contact_averse", "receptiveness"}
    assert not hidden & contract_columns
    assert (truth / "competitor_promotions.json").exists()
    assert "promoted_region" not in (small_data / "manifest.json").read_text()


def test_manifest_records_what_was_generated(small_data: Path) -> None:
    manifest = json.loads((small_data / "manifest.json").read_text())
    assert manifest["customers"] == 1_000 and manifest["months"] == 12 and manifest["seed"] == 3
    assert manifest["row_counts"]["customers"] == 1_000
    assert pd.Timestamp(manifest["as_of"]) == pd.Timestamp("2026-11-01T00:00:00Z")


def test_a_failed_run_keeps_the_previous_data(
    make_data: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = make_data(customers=300, months=6, seed=1)
    before = pq.read_table(out / "customers.parquet")

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(simulator, "simulate_block", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(
            DataSettings.model_validate({"out_dir": out, "customers": 300, "months": 6, "seed": 2})
        )
    assert pq.read_table(out / "customers.parquet").equals(before)
    assert validate_directory(out).ok


def test_a_successful_run_replaces_the_previous_data(make_data: Callable[..., Path]) -> None:
    out = make_data(customers=300, months=6, seed=1)
    (out / "stale.parquet").write_text("left over")
    generate(
        DataSettings.model_validate({"out_dir": out, "customers": 400, "months": 6, "seed": 1})
    )
    assert not (out / "stale.parquet").exists()
    assert len(pd.read_parquet(out / "customers.parquet")) == 400
