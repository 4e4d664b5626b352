"""One full month of the closed loop on a small world, with the commands a user runs:
decide, deliver, the world answers, attribute, learn again, read the results (and serve
them to marketing)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import requests
from typer.testing import CliRunner

from retain.cli import app
from serving.api.main import create_app
from serving.auth import parse_keys
from serving.settings import ServingSettings
from tests.serving.conftest import KEYS, not_ready_state, running

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def retain(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "features" / "repo").mkdir(parents=True)
    shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", tmp_path / "features" / "repo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(REPO / "configs"))
    monkeypatch.setenv("RETAIN_DATA_CUSTOMERS", "4000")
    monkeypatch.setenv("RETAIN_DATA_MONTHS", "14")
    monkeypatch.setenv("RETAIN_DATA_SEED", "12")
    monkeypatch.setenv("RETAIN_DAILY_LIST_BANDS", '["high", "medium", "low"]')
    monkeypatch.setenv("RETAIN_SERVING_ACTIONS__BUDGET__RETENTION_OFFER", "2500")
    monkeypatch.setenv("RETAIN_SERVING_ACTIONS__EXPERIMENT__CONTROL_SHARE", "0.1")
    return tmp_path


def actions_table(root: Path) -> pd.DataFrame:
    with sqlite3.connect(root / "data" / "actions" / "actions.db") as connection:
        frame = pd.read_sql("select * from actions", connection)
    frame["details"] = frame["details"].map(json.loads)
    frame["suppressions"] = frame["suppressions"].map(json.loads)
    return frame


@pytest.mark.slow
def test_one_month_of_the_loop_by_hand(project: Path) -> None:
    retain("data", "generate")
    retain("features", "build")
    retain("features", "apply")
    retain("train", "churn")
    retain("promote", "churn")
    trained = retain("train", "effects")
    assert "trained treatment-effect model version 1" in trained
    assert "promoted to champion" in retain("promote", "effects")

    # decide: every customer scored, decisions recorded with arm, probability and models
    retain("daily", "--date", "2026-11-01", "--act")
    decided = actions_table(project)
    marketing = decided[decided["action_type"].isin(["retention_offer", "callback"])]
    assert len(marketing) > 100
    details = pd.DataFrame(list(marketing["details"]))
    assert set(details["arm"]) == {"policy", "exploration", "control"}
    assert details["assignment_probability"].between(0, 1, inclusive="right").all()
    assert details["effect_model"].eq("churn_effects v1").all()
    assert details["churn_model"].eq("churn v1").all()
    assert "estimated to" in details["reason"].iloc[0]
    control = marketing[details["arm"].eq("control").to_numpy()]
    codes = {s[0]["code"] for s in control["suppressions"]}
    assert codes <= {"control_group", "budget", "no_consent", "no_channel", "offer_cooldown"}
    spent = marketing.loc[marketing["status"] == "queued", "details"].map(lambda d: d["cost"])
    assert spent[marketing["action_type"] == "retention_offer"].sum() <= 2500

    # deliver, and the world lives November answering exactly what went out
    delivered = retain("deliver", "--now", "2026-11-01T09:00:00Z")
    sent = int(delivered.split()[1].replace(",", ""))
    assert sent == (decided["status"] == "queued").sum()
    answered = retain("data", "advance", "--month", "2026-11")
    assert "simulated 2026-11" in answered
    campaigns = pd.read_parquet(project / "data" / "lifecycle" / "campaigns.parquet")
    engine = campaigns[campaigns["campaign_id"].str.startswith("ENG-2026-11")]
    queued_retention = marketing[marketing["status"] == "queued"]
    assert len(engine[engine["treated"]]) == len(queued_retention)
    assert (~engine["treated"]).sum() == control["suppressions"].map(
        lambda s: s[0]["code"] == "control_group"
    ).sum()
    again = runner.invoke(app, ["data", "advance", "--month", "2026-11"])
    assert again.exit_code == 2 and "already holds 2026-11" in again.output

    # two quiet months: the 60-day outcomes mature; attribution and the results
    retain("data", "advance", "--months", "2")
    attributed = retain("attribute")
    assert "with their 60-day outcome" in attributed
    exported = pd.read_parquet(project / "data" / "outcomes" / "decision_outcomes.parquet")
    assert len(exported) > 100 and set(exported["action"]) >= {"none", "data_boost"}
    # take-up: known (0/1) for delivered offers the world answered, unknown for control
    assert exported.loc[exported["action"] == "none", "accepted"].isna().all()
    treated_taken = exported.loc[exported["action"] != "none", "accepted"].dropna()
    assert len(treated_taken) > 50 and set(treated_taken) == {0.0, 1.0}
    results = retain("results")
    assert "policy" in results and "control" in results.lower()
    page = project / "risk_lists" / "campaign_results.html"
    assert page.exists() and "Campaign results" in page.read_text()

    # learning again uses the engine's own outcomes
    retain("features", "build")
    relearnt = retain("train", "effects")
    assert "trained treatment-effect model version 2" in relearnt

    # marketing reads the page from the API
    keys = parse_keys([(key, [role]) for role, key in KEYS.items()], dev_mode=False)
    served = create_app(
        ServingSettings(),
        lambda: not_ready_state(keys, "no model needed here"),
        risk_lists_dir=project / "risk_lists",
    )
    with running(served) as url:
        headers = {"X-API-Key": KEYS["marketing"]}
        got = requests.get(f"{url}/campaign-results", headers=headers, timeout=30)
        assert got.status_code == 200 and got.text == page.read_text()
        crm = requests.get(
            f"{url}/campaign-results", headers={"X-API-Key": KEYS["crm"]}, timeout=30
        )
        assert crm.status_code == 403
