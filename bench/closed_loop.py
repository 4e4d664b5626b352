"""Benchmark: the closed loop, month after month, four ways of choosing who gets what.

From one simulated world (seed S, N customers, 24 months of history) and one trained
churn model and treatment-effect model, the loop runs M months for each of:

(a) rule    today's engine without a treatment-effect model: risk x constant save rate - cost;
(b) policy  the engine with its treatment-effect model, its 5 % control group and 5 %
            exploration, retrained each month on what it learnt (attribution included);
(c) random  random eligible customers and actions;
(d) oracle  the best action by the true expected effect given what the operator observes
            (read from the simulator's truth for the month: what no real policy can know),

every one under the same budget per action type and month, the same contact rules (consent,
one offer per 30 days). (a) and (b) are the product's own commands run in-process: feature
build, `retain daily --act`, delivery, `retain data advance`, `retain attribute`, `retain
train/promote effects`. Value is read from the simulator's truth: each delivered action's
true change of the customer's 60-day churn probability (customers kept, or pushed away when
positive) x customer value, less the action's cost. Two quiet months follow so that the
outcomes of the last decisions mature; then (b)'s control-group estimate of the uplift of
its actions on 30-day churn (treated against the control customers the policy would have
treated, 95 % interval) is set beside the truth (the simulator's one-month effect of each
action delivered). 30 days, not 60: the next month's decisions may act on the same
customers, so a 60-day window measures the policy's repeated actions, not one.

    .venv/bin/python bench/closed_loop.py                     # 20,000 customers, 6 months
    .venv/bin/python bench/closed_loop.py --seed 11 --customers 40000 --months 6
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features import cli as features_cli  # noqa: E402
from features.lifecycle.settings import ChurnDrivers, DataSettings  # noqa: E402
from features.lifecycle.simulator import generate  # noqa: E402
from features.lifecycle.simulator.advance import (  # noqa: E402
    ACTION_COLUMNS,
    World,
    advance_month,
)
from features.lifecycle.simulator.responses import ACTION_COSTS, ACTIONS  # noqa: E402
from features.settings import FeatureSettings  # noqa: E402
from retain.base.settings import load_settings  # noqa: E402
from retain.cli import quiet_libraries  # noqa: E402
from serving import cli as serving_cli  # noqa: E402
from serving import loop as loop_cli  # noqa: E402
from serving.action_log.database import open_engine  # noqa: E402
from serving.action_log.log import ActionLog  # noqa: E402
from serving.action_log.outbox import Outbox  # noqa: E402
from serving.attribution import outcomes_frame  # noqa: E402
from serving.delivery import drain_due  # noqa: E402
from serving.feedback import world_actions  # noqa: E402
from serving.results import campaign_results  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402
from training import cli as training_cli  # noqa: E402

POLICIES = ("rule", "policy", "random", "oracle")
# who may get a callback, on the yardstick value (`kept_value`): 1,500, i.e. a monthly fee
# of about 83, as in every recorded run (the engine's threshold is on its model's value)
CALLBACK_YARDSTICK_VALUE = 1500.0
QUIET_MONTHS = 2  # after the last decisions: their 60-day outcomes mature


class NullSink:
    """The channel: accepts every message (the bench measures decisions, not delivery)."""

    def send(self, message: dict[str, Any]) -> None:
        return None


@contextlib.contextmanager
def inside(root: Path, env: dict[str, str]) -> Iterator[None]:
    """Run with `root` as the working folder and `env` set; both restored after."""
    saved = {k: os.environ.get(k) for k in env}
    cwd = Path.cwd()
    os.environ.update(env)
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def environment(root: Path, policy: str, budget: dict[str, float]) -> dict[str, str]:
    experiment = "0.05" if policy == "policy" else "0"
    return {
        "RETAIN_CONFIG_DIR": str(ROOT / "configs"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'data' / 'mlflow' / 'mlflow.db'}",
        "RETAIN_SERVING_ACTIONS__EFFECT_MODEL": "churn_effects" if policy == "policy" else "-",
        "RETAIN_SERVING_ACTIONS__EXPERIMENT__CONTROL_SHARE": experiment,
        "RETAIN_SERVING_ACTIONS__EXPERIMENT__EXPLORATION_SHARE": experiment,
        # one control group for the whole study (calendar blocks of 24 months from 2026)
        "RETAIN_SERVING_ACTIONS__EXPERIMENT__PERIOD_MONTHS": "24",
        "RETAIN_SERVING_ACTIONS__BUDGET__PERIOD_DAYS": "27",  # this month's decisions only
        "RETAIN_SERVING_ACTIONS__BUDGET__RETENTION_OFFER": str(budget["retention_offer"]),
        "RETAIN_SERVING_ACTIONS__BUDGET__CALLBACK": str(budget["callback"]),
        "RETAIN_DAILY_LIST_BANDS": '["high", "medium", "low"]',
        "RETAIN_DAILY_TABLE_ROWS": "50",
    }


def setup(base: Path, args: argparse.Namespace, budget: dict[str, float]) -> None:
    """The shared start: the world, its feature tables, the churn and effect champions."""
    (base / "features" / "repo").mkdir(parents=True)
    shutil.copy(ROOT / "features" / "repo" / "feature_store.yaml", base / "features" / "repo")
    data = DataSettings.model_validate(
        {"out_dir": base / "data" / "lifecycle", "customers": args.customers, "seed": args.seed}
    )
    generate(data)
    with inside(base, environment(base, "policy", budget)):
        features = load_settings(FeatureSettings)
        features_cli.run_build(features)
        features_cli.run_apply(features)
        training_cli.train_churn_command(dataset=None, training_set_path=None)
        training_cli.promote_churn_command()
        training_cli.train_effects_command()
        training_cli.promote_effects_command()


def kept_value(monthly_fee: np.ndarray) -> np.ndarray:
    """The yardstick every policy is judged by: a kept customer is worth 18 monthly fees
    (36 months at half margin), the same for all four policies and for every recorded
    run, whatever value the engine's own model puts on the customer."""
    return 18.0 * np.asarray(monthly_fee, dtype="float64")


def active_customers(world: Path, at: pd.Timestamp) -> pd.DataFrame:
    """Customers signed up before `at` and not gone, with what eligibility needs."""
    customers = pd.read_parquet(world / "customers.parquet")
    churn = pd.read_parquet(world / "churn_events.parquet")
    gone = set(churn.loc[pd.to_datetime(churn["churned_at"], utc=True) <= at, "customer_id"])
    active = customers[
        (pd.to_datetime(customers["signup_at"], utc=True) < at)
        & ~customers["customer_id"].isin(gone)
    ].reset_index(drop=True)
    active["value"] = kept_value(active["monthly_fee"].to_numpy())
    return active


def eligible(active: pd.DataFrame) -> pd.DataFrame:
    """[customer, action] the catalogue and consent allow (as the engine's rules do)."""
    message = active[["consent_sms", "consent_app_push", "consent_email"]].any(axis=1)
    valuable = (
        (active["segment"] == "enterprise")
        | active["account_manager_id"].notna()
        | (active["value"] >= CALLBACK_YARDSTICK_VALUE)
    )
    return pd.DataFrame(
        {
            "data_boost": message,
            "loyalty_discount": message
            & active["contract_type"].isin(["month_to_month", "one_year"]),
            "contract_upgrade_bonus": message,
            "callback": valuable & active["consent_phone"],
        }
    )


def true_reductions(world: Path, work: Path, at: pd.Timestamp) -> pd.DataFrame:
    """The oracle's knowledge: each customer's expected reduction of the 60-day churn
    probability per action this month, from a dry run of the month (the situation at the
    month's start does not depend on the month's actions)."""
    dry = work / "dry-run"
    shutil.rmtree(dry, ignore_errors=True)
    shutil.copytree(world, dry)
    opened = World.open(dry)
    advance_month(opened, pd.DataFrame(columns=list(ACTION_COLUMNS)), ChurnDrivers.model_validate(
        opened.manifest.get("drivers") or {}))  # fmt: skip
    hazard = pd.read_parquet(dry / "truth" / "churn_hazard.parquet")
    month = hazard[pd.to_datetime(hazard["month"], utc=True) == at]
    shutil.rmtree(dry)
    h = month["hazard"].to_numpy(dtype="float64")
    logit = np.log(h / (1 - h)) - month["logit_campaign"].to_numpy(dtype="float64")
    # What the operator cannot observe (frailty, a rival's promotion, a move) is replaced
    # by its distribution over this month's customers: the oracle knows the expected
    # effect given the observables, not each customer's hidden state.
    hidden = month[[f"logit_{d}" for d in HIDDEN_DRIVERS]].sum(axis=1).to_numpy(dtype="float64")
    draws = np.random.default_rng(0).choice(hidden, size=min(256, len(hidden)), replace=False)
    seen = (logit - hidden)[:, None] + draws[None, :]

    def two_month(value: np.ndarray) -> np.ndarray:
        return 1 - (1 - 1 / (1 + np.exp(-value))) ** 2

    base = two_month(seen).mean(axis=1)
    return pd.DataFrame(
        {
            a: base
            - two_month(seen + month[f"expected_effect_{a}"].to_numpy()[:, None]).mean(axis=1)
            for a in ACTIONS
        },
        index=month["customer_id"].to_numpy(),
    )


HIDDEN_DRIVERS = ("frailty", "competitor", "relocation")


def allocate(
    score: pd.DataFrame, allowed: pd.DataFrame, active: pd.DataFrame, budget: dict[str, float]
) -> list[tuple[str, str]]:
    """Best value per cost first within each action type's budget: (customer, action)."""
    costs = np.array([ACTION_COSTS[a] for a in ACTIONS])
    net = np.where(allowed.to_numpy(), score.to_numpy() - costs, -np.inf)
    best = net.argmax(axis=1)
    gain = net[np.arange(len(net)), best]
    order = np.argsort(-(gain / costs[best]), kind="stable")
    spent = dict.fromkeys(budget, 0.0)
    chosen = []
    for i in order:
        if gain[i] <= 0:
            break
        action = ACTIONS[best[i]]
        kind = "callback" if action == "callback" else "retention_offer"
        if spent[kind] + costs[best[i]] <= budget[kind]:
            spent[kind] += costs[best[i]]
            chosen.append((str(active["customer_id"].iat[i]), action))
    return chosen


def outside_choice(
    policy: str,
    world: Path,
    work: Path,
    at: pd.Timestamp,
    budget: dict[str, float],
    last_offer: dict[str, pd.Timestamp],
    rng: np.random.Generator,
) -> pd.DataFrame:
    """(c) and (d): the month's actions, chosen outside the engine."""
    active = active_customers(world, at)
    allowed = eligible(active)
    recent = active["customer_id"].map(
        lambda c: c in last_offer and at - last_offer[c] < pd.Timedelta(days=30)
    )
    allowed.loc[recent.to_numpy(), :] = False  # the engine's offer cooldown, for all
    if policy == "oracle":
        truth = true_reductions(world, work, at).reindex(active["customer_id"]).fillna(0.0)
        score = pd.DataFrame(
            truth.to_numpy() * active["value"].to_numpy()[:, None], columns=ACTIONS
        )
    else:  # random: a random order and a random eligible action, each worth "1"
        score = pd.DataFrame(
            np.where(allowed.to_numpy(), rng.random(allowed.shape) + 100.0, -np.inf),
            columns=ACTIONS,
        )
    chosen = allocate(score, allowed, active, budget)
    sent = at + pd.Timedelta(hours=9)
    for customer, _ in chosen:
        last_offer[customer] = at
    return pd.DataFrame(
        {
            "customer_id": [c for c, _ in chosen],
            "action": [a for _, a in chosen],
            "sent_at": sent,
            "assignment_probability": 1.0,
        },
        columns=list(ACTION_COLUMNS),
    )


def engine_choice(root: Path, day: pd.Timestamp) -> pd.DataFrame:
    """(a) and (b): `retain daily --act`, then the outbox delivered; what went out."""
    serving = load_settings(ServingSettings)
    serving_cli.publish_daily_list(day.date(), serving, act=True)
    log = ActionLog(open_engine(serving.action_db_url))
    now = (day + pd.Timedelta(hours=9)).to_pydatetime()
    drain_due(Outbox(log.engine), NullSink(), serving.delivery, now)
    end = day + pd.offsets.MonthBegin(1)
    return world_actions(log, day.to_pydatetime(), end.to_pydatetime())


def account(world: Path, month: str) -> dict[str, float]:
    """The truth of the month's delivered actions: kept, pushed away, cost, net value."""
    truth = pd.read_parquet(world / "truth" / "treatment_effects.parquet")
    mine = truth[truth["campaign_id"].astype(str).str.startswith(f"ENG-{month}-")]
    mine = mine[mine["action"] != "none"]
    customers = pd.read_parquet(world / "customers.parquet").set_index("customer_id")
    value = kept_value(customers.loc[mine["customer_id"], "monthly_fee"].to_numpy())
    change = mine["true_effect"].to_numpy()
    cost = mine["action"].map(ACTION_COSTS).to_numpy(dtype="float64")
    return {
        "actions": float(len(mine)),
        "kept": float(-change.sum()),
        "pushed_away": float(np.maximum(change, 0).sum()),
        "cost": float(cost.sum()),
        "net_value": float((-change * value).sum() - cost.sum()),
        "uplift_true": float(-change.mean()) if len(mine) else float("nan"),
    }


def run_policy(
    policy: str, base: Path, work: Path, args: argparse.Namespace, budget: dict[str, float]
) -> dict[str, Any]:
    root = work / policy
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(base, root, symlinks=True)
    world_dir = root / "data" / "lifecycle"
    rng = np.random.default_rng([args.seed, POLICIES.index(policy)])
    last_offer: dict[str, pd.Timestamp] = {}
    months: list[dict[str, float]] = []
    started = time.perf_counter()
    with inside(root, environment(root, policy, budget)):
        features = load_settings(FeatureSettings)
        for step in range(args.months + QUIET_MONTHS):
            world = World.open(world_dir)
            at = pd.Timestamp(world.grid.as_of, unit="s", tz="UTC")
            deciding = step < args.months
            if step > 0 and deciding:
                features_cli.run_build(features)
            if not deciding:
                actions = pd.DataFrame(columns=list(ACTION_COLUMNS))
            elif policy in ("rule", "policy"):
                actions = engine_choice(root, at)
            else:
                actions = outside_choice(policy, world_dir, root, at, budget, last_offer, rng)
            drivers = ChurnDrivers.model_validate(world.manifest.get("drivers") or {})
            advance_month(world, actions, drivers)
            if deciding:
                months.append(account(world_dir, world.next_month))
                print(f"  {policy} {world.next_month}: {months[-1]['actions']:.0f} actions, "
                      f"true net value {months[-1]['net_value']:,.0f}", flush=True)  # fmt: skip
            if policy == "policy" and deciding and step < args.months - 1:
                loop_cli.attribute_command(as_of=None)
                training_cli.train_effects_command()
                training_cli.promote_effects_command()
        control = None
        if policy == "policy":
            loop_cli.attribute_command(as_of=None)
            log = ActionLog(open_engine(load_settings(ServingSettings).action_db_url))
            outcomes = loop_cli.with_truth(outcomes_frame(log), world_dir, "30d")
            control = campaign_results(outcomes, "30d").overall
    total = pd.DataFrame(months).sum()
    return {
        "policy": policy,
        "actions": total["actions"],
        "kept": total["kept"],
        "pushed_away": total["pushed_away"],
        "cost": total["cost"],
        "net_value": total["net_value"],
        "seconds": time.perf_counter() - started,
        "control": control,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--offer-budget", type=float, default=0.75,
                        help="Retention-offer budget per customer and month.")  # fmt: skip
    parser.add_argument("--callback-budget", type=float, default=0.1,
                        help="Callback budget per customer and month.")  # fmt: skip
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "bench" / "closed_loop")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    args = parser.parse_args()
    quiet_libraries()
    budget = {
        "retention_offer": round(args.offer_budget * args.customers, 2),
        "callback": round(args.callback_budget * args.customers, 2),
    }
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    base = work / "start"
    print(f"closed loop: seed {args.seed}, {args.customers:,} customers, {args.months} months, "
          f"budget per month {budget}", flush=True)  # fmt: skip
    started = time.perf_counter()
    setup(base, args, budget)
    print(f"start: world, features and models in {time.perf_counter() - started:.0f}s", flush=True)
    results = {p: run_policy(p, base, work, args, budget) for p in args.policies}

    print(f"\n{'policy':8} {'actions':>8} {'cost':>10} {'kept':>8} {'pushed':>8} "
          f"{'net value':>11} {'seconds':>8}")  # fmt: skip
    for r in results.values():
        print(f"{r['policy']:8} {r['actions']:8.0f} {r['cost']:10,.0f} {r['kept']:8.1f} "
              f"{r['pushed_away']:8.1f} {r['net_value']:11,.0f} {r['seconds']:8.0f}")  # fmt: skip
    verdict = "n/a"
    if "policy" in results and results["policy"]["control"] is not None:
        overall = results["policy"]["control"].set_index("treatment").loc["policy"]
        low, high, truth = overall["uplift_low"], overall["uplift_high"], overall["truth"]
        inside_ci = bool(low <= truth <= high) if pd.notna(truth) and pd.notna(low) else False
        verdict = "yes" if inside_ci else "no"
        print(
            f"\ncontrol group: uplift of the policy's actions on 30-day churn "
            f"{overall['uplift']:+.2%} (95% CI {low:+.2%} .. {high:+.2%}; "
            f"{overall['n_treated']:.0f} treated, {overall['n_control']:.0f} control); "
            f"true uplift {truth:+.2%}"
        )
    value = {p: r["net_value"] for p, r in results.items()}

    def ratio(a: str, b: str) -> str:
        return f"{value[a] / value[b]:.2f}" if a in value and b in value and value[b] else "n/a"

    print(f"\nclosed loop: policy/rule {ratio('policy', 'rule')}, policy/oracle "
          f"{ratio('policy', 'oracle')}, control estimate within 95% CI: {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
