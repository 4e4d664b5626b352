"""Campaign results: uplift against the holdout, on outcome frames with planted churn rates."""

from __future__ import annotations

import math
import re
import shutil
from itertools import count
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.results import (
    METRIC_COLUMNS,
    CampaignResults,
    campaign_results,
    difference_interval,
    render_results,
    results_table_text,
)

MONTHS = ("2026-03", "2026-04")
# offer: (control churn rate, treated churn rate, segment); loyalty_discount pushes away
PLANTED = {
    "data_boost": (0.20, 0.12, "consumer"),
    "loyalty_discount": (0.20, 0.25, "enterprise"),
}
ESTIMATED = {"data_boost": 0.07, "loyalty_discount": 0.02}  # the model misjudges loyalty
HOSTILE = "<script>alert(1)</script>"
_ids = count()


def arm_rows(
    arm: str,
    offer: str | None,
    n: int,
    churn_rate: float,
    rng: np.random.Generator,
    *,
    exact: bool = True,
    segment: str = "consumer",
    truth_effect: float | None = None,
) -> pd.DataFrame:
    """n outcome rows of one arm; with `exact`, exactly round(churn_rate x n) churners."""
    if exact:
        churned = np.arange(n) < round(churn_rate * n)
        rng.shuffle(churned)
    else:
        churned = rng.random(n) < churn_rate
    months = np.resize(np.array(MONTHS), n)
    sent = arm != "control"
    rows = pd.DataFrame(
        {
            "action_id": [f"a{next(_ids)}" for _ in range(n)],
            "customer_id": [f"c{i}" for i in range(n)],
            "decided_at": pd.to_datetime([f"{m}-05" for m in months], utc=True),
            "month": months,
            "arm": arm,
            "action_type": "retention_offer" if offer else "callback",
            "offer_id": offer,
            "segment": segment,
            "region": "north",
            "contract_type": "monthly",
            "assignment_probability": 0.9 if arm == "policy" else 0.1,
            "estimated_effect": ESTIMATED.get(offer or "", 0.03),
            "customer_value": 300.0,
            "cost": 20.0,
            "churned_30d": churned & (rng.random(n) < 0.5),
            "churned_60d": churned,
            "accepted": rng.random(n) < 0.4 if sent else None,
        }
    )
    if truth_effect is not None:
        rows["true_effect"] = truth_effect + rng.normal(0, 0.03, n)
        rows["true_pushed_away"] = rows["true_effect"] < 0
        rows["true_kept"] = rows["true_effect"]
    return rows


def planted(
    n: int = 5_000, seed: int = 0, *, exact: bool = True, truth: bool = False
) -> pd.DataFrame:
    """n control and n policy rows per planted offer."""
    rng = np.random.default_rng(seed)
    parts = []
    for offer, (control, treated, segment) in PLANTED.items():
        effect = control - treated if truth else None
        for arm, rate in (("control", control), ("policy", treated)):
            parts.append(
                arm_rows(
                    arm, offer, n, rate, rng, exact=exact, segment=segment, truth_effect=effect
                )
            )
    return pd.concat(parts, ignore_index=True)


def row(table: pd.DataFrame, treatment: str = "policy", **group: str) -> pd.Series:
    """The one row of a results table for a treatment and group."""
    match = table["treatment"] == treatment
    for column, value in group.items():
        match &= table[column] == value
    assert match.sum() == 1, (treatment, group)
    return table[match].iloc[0]


def test_uplift_and_its_interval_recover_the_planted_rates() -> None:
    results = campaign_results(planted())
    assert results.decisions == results.matured == 20_000 and results.pending == 0
    for offer, (control, treated, segment) in PLANTED.items():
        line = row(results.by_action, action=offer)
        assert (line["n_treated"], line["n_control"]) == (5_000, 5_000)
        assert line["churn_rate_treated"] == pytest.approx(treated)
        assert line["churn_rate_control"] == pytest.approx(control)
        assert line["uplift"] == pytest.approx(control - treated)
        assert line["uplift_low"] < control - treated < line["uplift_high"]
        # at n = 5,000 a score interval is the normal one: 1.96 standard errors each side
        se = math.sqrt(control * (1 - control) / 5_000 + treated * (1 - treated) / 5_000)
        assert (line["uplift_high"] - line["uplift_low"]) / 2 == pytest.approx(1.96 * se, rel=0.02)
        assert line["kept"] == pytest.approx((control - treated) * 5_000)
        assert line["kept_low"] == pytest.approx(line["uplift_low"] * 5_000)
        assert line["cost"] == pytest.approx(20.0 * 5_000)
        value_kept = (control - treated) * 5_000 * 300.0
        assert line["value_kept"] == pytest.approx(value_kept)
        assert line["return_on_spend"] == pytest.approx((value_kept - 100_000) / 100_000)
        assert 0.37 < line["acceptance_rate"] < 0.43
        assert line["estimated_effect"] == pytest.approx(ESTIMATED[offer])
        assert line["note"] == ""
        by_segment = row(results.by_segment, segment=segment)
        assert by_segment["uplift"] == pytest.approx(control - treated)
    # data_boost's model estimate (7 pp) lies in its interval; loyalty's (+2 pp) does not
    assert bool(row(results.by_action, action="data_boost")["estimate_in_interval"])
    assert not bool(row(results.by_action, action="loyalty_discount")["estimate_in_interval"])
    overall = results.headline()
    assert overall["n_treated"] == 10_000
    assert overall["uplift"] == pytest.approx(0.20 - (0.12 + 0.25) / 2)
    assert overall["kept"] == pytest.approx(150)
    months = results.by_month[results.by_month["treatment"] == "policy"]
    assert list(months["month"]) == list(MONTHS)
    assert months["n_treated"].sum() == 10_000
    # no exploration rows: no exploration lines per group, but "all sent" equals policy
    assert set(results.by_action["treatment"]) == {"policy", "all sent"}
    assert row(results.overall, "all sent")["uplift"] == pytest.approx(overall["uplift"])
    assert list(results.by_action.columns) == ["treatment", "action", *METRIC_COLUMNS]


def test_the_interval_is_newcombes_published_one() -> None:
    """Newcombe (1998), Statistics in Medicine 17, table II, method 10."""
    for (a, n_a, b, n_b), expected in [
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ]:
        low, high = difference_interval(a, n_a, b, n_b)
        assert (float(low), float(high)) == pytest.approx(expected, abs=5e-5)


def test_the_interval_covers_the_planted_uplift_95_times_in_100() -> None:
    """200 replications of a small table (two offers, 300 customers per arm), each drawn
    from its own seed. Each replication is its own month and its offers are actions of their
    own, so one call measures them all: a group's interval uses that group's rows only."""
    template = planted(n=300)
    planted_rate = np.where(
        template["arm"] == "control",
        template["offer_id"].map({offer: c for offer, (c, _, _) in PLANTED.items()}),
        template["offer_id"].map({offer: t for offer, (_, t, _) in PLANTED.items()}),
    )
    replications = []
    for seed in range(200):
        draws = np.random.default_rng(seed).random(len(template))
        replications.append(
            template.assign(
                action_id=template["action_id"] + f"-{seed}",
                month=f"rep{seed:03d}",
                offer_id=template["offer_id"] + f"@{seed}",
                churned_60d=draws < planted_rate,
            )
        )
    results = campaign_results(pd.concat(replications, ignore_index=True))
    actions = results.by_action[results.by_action["treatment"] == "policy"]
    offer = actions["action"].str.split("@").str[0]
    effect = offer.map({offer: c - t for offer, (c, t, _) in PLANTED.items()})
    hit = (actions["uplift_low"] <= effect) & (effect <= actions["uplift_high"])
    coverage = hit.groupby(offer).agg(["mean", "size"])
    months = results.by_month[results.by_month["treatment"] == "policy"]
    pooled = 0.20 - (0.12 + 0.25) / 2  # equal arms: the planted pooled uplift
    overall = ((months["uplift_low"] <= pooled) & (pooled <= months["uplift_high"])).mean()
    assert list(coverage["size"]) == [200, 200] and len(months) == 200
    rates = {**coverage["mean"].to_dict(), "overall": overall}
    assert all(0.9 <= rate <= 0.99 for rate in rates.values()), rates


def test_a_group_without_control_or_treated_rows_has_no_uplift_and_says_why() -> None:
    rng = np.random.default_rng(1)
    outcomes = pd.concat(
        [
            planted(n=400),
            arm_rows("policy", "contract_upgrade_bonus", 200, 0.1, rng),  # never held out
            arm_rows("control", None, 150, 0.3, rng, segment="enterprise"),  # callback, unsent
        ],
        ignore_index=True,
    )
    results = campaign_results(outcomes)
    upgrade = row(results.by_action, action="contract_upgrade_bonus")
    assert upgrade["n_treated"] == 200 and upgrade["n_control"] == 0
    figures = ["uplift", "uplift_low", "uplift_high", "kept", "value_kept"]
    assert upgrade[figures].astype(float).isna().all()
    assert upgrade["note"] == "no matured control rows: no comparison"
    assert pd.isna(upgrade["estimate_in_interval"])
    callback = row(results.by_action, action="callback")
    assert callback["n_treated"] == 0 and callback["n_control"] == 150
    assert np.isnan(callback["uplift"]) and callback["cost"] == 0
    assert np.isnan(callback["return_on_spend"])
    assert callback["note"] == "no matured treated rows: no comparison"
    assert "callback (policy): no matured treated rows" in results_table_text(results)
    # the offers that have both arms keep their figures
    assert row(results.by_action, action="data_boost")["uplift"] == pytest.approx(0.08)


def test_an_empty_frame_gives_empty_tables_and_nan_overall_lines() -> None:
    results = campaign_results(planted(n=10).iloc[:0])
    assert results.decisions == results.matured == results.pending == 0
    assert results.by_action.empty and results.by_month.empty
    assert list(results.overall["treatment"]) == ["policy", "exploration", "all sent"]
    assert results.overall["uplift"].isna().all()
    assert set(results.overall["note"]) == {"no rows"}
    assert "No control rows" in " ".join(results.notes)
    assert "decisions" in results_table_text(results)
    assert 'id="headline"' in render_results(results, "Nothing yet")


def test_pending_rows_are_left_out_and_counted() -> None:
    outcomes = planted(n=1_000)
    # the first 300 policy and 100 control rows of data_boost have not matured; all churned
    # by 30 days, so counting them would move the rates
    boost = outcomes["offer_id"] == "data_boost"
    pending = pd.Series(False, index=outcomes.index)
    for arm, n in (("policy", 300), ("control", 100)):
        pending[outcomes.index[boost & (outcomes["arm"] == arm)][:n]] = True
    mature = outcomes[~pending]
    expected = {
        arm: mature.loc[boost & (mature["arm"] == arm), "churned_60d"].mean()
        for arm in ("policy", "control")
    }
    outcomes["churned_60d"] = outcomes["churned_60d"].astype(object).where(~pending, None)
    outcomes.loc[pending, "churned_30d"] = True
    results = campaign_results(outcomes)
    assert (results.decisions, results.matured, results.pending) == (4_000, 3_600, 400)
    line = row(results.by_action, action="data_boost")
    assert (line["n_treated"], line["n_control"]) == (700, 900)
    assert (line["pending_treated"], line["pending_control"]) == (300, 100)
    assert line["churn_rate_treated"] == pytest.approx(expected["policy"])
    assert line["churn_rate_control"] == pytest.approx(expected["control"])
    assert line["cost"] == pytest.approx(700 * 20.0)  # what the counted customers cost
    arms = results.arms.set_index("arm")
    assert arms.loc["policy", "pending"] == 300 and arms.loc["control", "pending"] == 100
    assert arms.loc["exploration", "decisions"] == 0
    assert any("400 decisions have no 60d outcome yet" in note for note in results.notes)
    # at 30 days every row has its outcome; the estimates and truths are flagged as 60-day
    early = campaign_results(outcomes, horizon="30d")
    assert early.pending == 0 and row(early.by_action, action="data_boost")["n_treated"] == 1_000
    assert any("for churn within 60 days" in note for note in early.notes)


def test_nullable_boolean_outcomes_are_read_like_plain_ones() -> None:
    outcomes = planted(n=200)
    plain = campaign_results(outcomes).by_action
    outcomes["churned_60d"] = outcomes["churned_60d"].astype("boolean")
    outcomes.loc[outcomes.index[:10], "churned_60d"] = pd.NA
    nullable = campaign_results(outcomes)
    assert nullable.pending == 10
    assert plain["uplift"].notna().all() and nullable.by_action["uplift"].notna().all()


def test_truth_columns_give_the_truth_beside_the_estimate() -> None:
    outcomes = planted(truth=True, seed=3)
    results = campaign_results(outcomes)
    assert results.has_truth
    treated = outcomes[outcomes["arm"] == "policy"]
    for offer, (control, rate, _) in PLANTED.items():
        line = row(results.by_action, action=offer)
        mine = treated[treated["offer_id"] == offer]
        assert line["truth"] == pytest.approx(mine["true_effect"].mean())
        assert line["truth"] == pytest.approx(control - rate, abs=0.003)
        assert bool(line["truth_in_interval"])
        assert line["true_kept"] == pytest.approx(mine["true_kept"].sum())
        assert line["true_pushed_away"] == mine["true_pushed_away"].sum()
    total = row(results.overall, "all sent")
    assert total["true_kept"] == pytest.approx(treated["true_kept"].sum())
    assert total["true_pushed_away"] == treated["true_pushed_away"].sum() > 4_000
    # a truth far from the measurement is reported outside the interval
    outcomes.loc[outcomes["offer_id"] == "data_boost", "true_effect"] += 0.05
    shifted = campaign_results(outcomes)
    assert not bool(row(shifted.by_action, action="data_boost")["truth_in_interval"])
    # without truth columns: no truth, and the columns are there, missing
    plain = campaign_results(planted(n=100))
    assert not plain.has_truth and plain.by_action["truth"].isna().all()
    assert plain.by_action["truth_in_interval"].isna().all()


def test_exploration_is_reported_alone_and_pooled_with_the_policy() -> None:
    rng = np.random.default_rng(5)
    outcomes = pd.concat(
        [planted(n=2_000), arm_rows("exploration", "data_boost", 500, 0.16, rng)],
        ignore_index=True,
    )
    results = campaign_results(outcomes)
    alone = row(results.by_action, "exploration", action="data_boost")
    assert alone["n_treated"] == 500 and alone["uplift"] == pytest.approx(0.04)
    pooled = row(results.by_action, "all sent", action="data_boost")
    assert pooled["n_treated"] == 2_500
    assert pooled["churn_rate_treated"] == pytest.approx((0.12 * 2_000 + 0.16 * 500) / 2_500)
    assert row(results.by_action, "policy", action="data_boost")["n_treated"] == 2_000
    loyalty = row(results.by_action, "exploration", action="loyalty_discount")
    assert loyalty["note"] == "no matured treated rows: no comparison"
    assert any("indicative only" in note for note in results.notes)


def test_missing_columns_unknown_arms_and_repeated_decisions_are_refused() -> None:
    outcomes = planted(n=20)
    with pytest.raises(ValueError, match=r"lack required columns: cost, churned_60d"):
        campaign_results(outcomes.drop(columns=["cost", "churned_60d"]))
    campaign_results(outcomes.drop(columns=["churned_30d", "region"]))  # not read at 60d
    with pytest.raises(ValueError, match=r"lack required columns: churned_30d"):
        campaign_results(outcomes.drop(columns=["churned_30d"]), horizon="30d")
    strange = outcomes.copy()
    strange.loc[[0, 1], "arm"] = ["treatment_b", None]
    with pytest.raises(ValueError, match=r"unknown arm values: None, treatment_b"):
        campaign_results(strange)
    twice = pd.concat([outcomes, outcomes.iloc[:2]], ignore_index=True)
    with pytest.raises(ValueError, match=r"action_id repeated: a\d+, a\d+"):
        campaign_results(twice)
    with pytest.raises(ValueError, match="horizon must be"):
        campaign_results(outcomes, horizon="90d")  # type: ignore[arg-type]
    broken = outcomes.assign(churned_60d=["yes"] * len(outcomes))
    with pytest.raises(ValueError, match="column churned_60d holds non-numeric values"):
        campaign_results(broken)


def test_the_text_table_has_a_line_per_action_and_overall() -> None:
    text = results_table_text(campaign_results(planted(truth=True)))
    lines = text.splitlines()
    assert lines[0] == "Campaign results at 60d: 20,000 decisions, 20,000 matured, 0 pending"
    boost = next(line for line in lines if line.startswith("data_boost") and "policy" in line)
    assert "+8.0" in boost and "+400" in boost and "100,000" in boost
    loyalty = next(line for line in lines if line.startswith("loyalty_discount"))
    assert "-5.0" in loyalty and "-250" in loyalty
    assert any(line.startswith("all actions") and "+1.5" in line for line in lines)
    assert "truth pp" in lines[1] and "Newcombe" in text


def _hostile_results() -> CampaignResults:
    outcomes = planted(n=1_000, truth=True)
    outcomes.loc[outcomes["offer_id"] == "loyalty_discount", "offer_id"] = HOSTILE
    outcomes.loc[outcomes.index[:5], "segment"] = "$\\frac{bad"  # not mathtext either
    return campaign_results(outcomes)


def test_the_page_has_its_sections_and_figures_and_escapes_everything() -> None:
    results = _hostile_results()
    page = render_results(results, f"Results {HOSTILE}")
    assert page.count("<svg") == 2
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for section in ("By action", "By segment", "By month", "Estimate vs truth", "Notes"):
        assert f"<h2>{section}" in page
    headline = results.headline()
    assert f"{results.decisions:,}</span>decisions" in page
    assert f"{100 * headline['uplift']:+.1f} pp" in page
    assert f"{headline['kept']:+,.0f}</span>customers kept" in page
    # opens offline: nothing is fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page
    plain = render_results(campaign_results(planted(n=200)), "Results")
    assert "Estimate vs truth" not in plain


def test_the_page_opens_from_disk_in_headless_chromium(tmp_path: Path) -> None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium or chromedriver missing (make test installs Debian's as root)")
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    results = _hostile_results()
    page = tmp_path / "results.html"
    page.write_text(render_results(results, "Campaign results"), encoding="utf-8")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--window-size=1400,1000",
                 "--disable-gpu", "--disable-dev-shm-usage"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(page.resolve().as_uri())  # from disk, no server
        assert browser.find_element(By.ID, "headline").is_displayed()
        headline = results.headline()
        text = {
            card: browser.find_element(By.ID, card).text
            for card in ("decisions", "matured", "pending", "uplift", "kept", "cost", "roi")
        }
        assert f"{results.decisions:,}" in text["decisions"]
        assert f"{results.matured:,}" in text["matured"]
        assert f"{100 * headline['uplift']:+.1f} pp" in text["uplift"]
        assert f"{headline['kept']:+,.0f}" in text["kept"]
        assert f"{headline['cost']:,.0f}" in text["cost"]
        assert f"{headline['return_on_spend']:+.2f}" in text["roi"]
        figures = browser.find_elements(By.CSS_SELECTOR, "figure svg")
        assert len(figures) == 2
        assert all(f.size["width"] > 200 and f.size["height"] > 100 for f in figures)
        # the hostile offer id is shown as text and never ran
        cells = browser.find_elements(By.CSS_SELECTOR, "#by-action tbody td:first-child")
        assert HOSTILE in {cell.text for cell in cells}
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        browser.quit()
