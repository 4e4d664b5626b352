"""The closed loop's commands: deliver, let the world answer, attribute, read the results.

One month of the loop by hand (README): `retain features build && retain features
materialize`, `retain daily --date D --act` (score and decide, recorded), `retain deliver
--now D` (the outbox to the channel), `retain data advance` (the simulated world lives the
month, answering what was delivered), `retain attribute` (30/60-day outcomes of every
decision), `retain train effects && retain promote effects` (learn from them), and
`retain results` (treated against control, for marketing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import typer

from features.lifecycle.cli import parse_instant
from features.lifecycle.settings import ChurnDrivers, DataSettings
from features.lifecycle.simulator.advance import (
    ACTION_COLUMNS,
    AdvanceError,
    World,
    advance_month,
)
from features.lifecycle.validate import MANIFEST_FILE, resolve_as_of
from features.settings import FeatureSettings
from retain.base.publish import publish_file
from retain.base.settings import load_settings
from serving.action_log.database import log_exists, open_engine
from serving.action_log.log import ActionLog
from serving.action_log.outbox import Outbox
from serving.attribution import (
    AttributionError,
    attribute,
    check_horizon,
    export_training_rows,
    outcomes_frame,
)
from serving.delivery import drain_due, open_sink
from serving.feedback import world_actions
from serving.results import RESULTS_FILE, campaign_results, render_results, results_table_text
from serving.settings import DailySettings, ServingSettings
from training.effects.settings import EffectSettings

TRUTH_EFFECTS = Path("truth") / "treatment_effects.parquet"
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _log(serving: ServingSettings, create: bool = True) -> ActionLog | None:
    url = serving.action_db_url
    return ActionLog(open_engine(url)) if create or log_exists(url) else None


def _instant(text: str | None) -> datetime:
    return parse_instant(text, "--now").to_pydatetime() if text else datetime.now(UTC)


def deliver_command(
    now: Annotated[
        str | None, typer.Option(help="Deliver what is due at this instant (default: now).")
    ] = None,
) -> None:
    """Drain the outbox once to the configured channel (what `retain serve` does in the
    background), retrying per the delivery settings; for batch runs and the loop."""
    serving = load_settings(ServingSettings)
    log = _log(serving)
    assert log is not None
    at = _instant(now)
    total = drain_due(Outbox(log.engine), open_sink(serving.delivery), serving.delivery, at)
    typer.echo(
        f"delivered {total.delivered:,} message(s) due at {at.isoformat()} "
        f"({total.retried:,} to retry, {total.failed:,} given up)"
    )


def advance_command(
    months: Annotated[int, typer.Option(min=1, max=24, help="Months to simulate.")] = 1,
    month: Annotated[
        str | None,
        typer.Option(help="The month expected next, YYYY-MM: refused if the world is elsewhere."),
    ] = None,
    actions: Annotated[
        Path | None,
        typer.Option(
            help="Actions to apply, a parquet or CSV file (customer_id, action, sent_at, "
            "assignment_probability); default: those the action log delivered."
        ),
    ] = None,
    world: Annotated[Path | None, typer.Option(help="The world's folder.")] = None,
) -> None:
    """Simulate the next month(s) of the world, answering the engine's delivered actions."""
    data = load_settings(DataSettings)
    serving = load_settings(ServingSettings)
    directory = world or data.out_dir
    try:
        given = None if actions is None else read_actions(actions, directory, data.seed, months)
        log = None if given is not None else _log(serving, create=False)
        for step in range(months):
            opened = World.open(directory, seed=data.seed)
            start = pd.Timestamp(opened.grid.as_of, unit="s", tz="UTC")
            end = start + pd.offsets.MonthBegin(1)
            if given is not None:
                sent = pd.to_datetime(given["sent_at"], utc=True)  # checked by read_actions
                chosen = given[(sent >= start) & (sent < end)]
            elif log is not None:
                chosen = world_actions(log, start.to_pydatetime(), end.to_pydatetime())
            else:  # nothing was ever decided: the month passes without the engine
                chosen = pd.DataFrame(columns=list(ACTION_COLUMNS))
            drivers = ChurnDrivers.model_validate(opened.manifest.get("drivers") or {})
            summary = advance_month(opened, chosen, drivers, month if step == 0 else None)
            applied = ", ".join(f"{n} {a}" for a, n in sorted(summary.applied.items())) or "none"
            typer.echo(
                f"{directory}: simulated {summary.month} ({applied}); "
                f"{summary.churned:,} customers left"
            )
    except AdvanceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


def read_actions(path: Path, directory: Path, seed: int, months: int) -> pd.DataFrame:
    """An actions file for the months to come: every row must fall in one of them (a row
    outside would otherwise be silently skipped, and its month cannot be run again)."""
    try:
        given = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise AdvanceError(f"{path}: not a readable parquet or CSV file ({error})") from None
    missing = [c for c in ACTION_COLUMNS if c not in given.columns]
    if missing:
        raise AdvanceError(f"{path}: missing column(s) {', '.join(missing)}")
    start = pd.Timestamp(World.open(directory, seed=seed).grid.as_of, unit="s", tz="UTC")
    end = start + pd.offsets.MonthBegin(months)
    sent = pd.to_datetime(given["sent_at"], utc=True, errors="coerce")
    outside = given[sent.isna() | (sent < start) | (sent >= end)]
    if len(outside):
        raise AdvanceError(
            f"{path}: {len(outside)} row(s) not sent within the {months} month(s) from "
            f"{start:%Y-%m-%d} to {end:%Y-%m-%d} (e.g. {outside['customer_id'].iloc[0]} at "
            f"{outside['sent_at'].iloc[0]})"
        )
    return given


def attribute_command(
    as_of: Annotated[
        str | None, typer.Option(help="Outcomes known at this instant (default: the data's).")
    ] = None,
) -> None:
    """Record the 30- and 60-day outcomes of every marketing decision (treated, explored
    and control), and export the matured ones for the treatment-effect model."""
    serving = load_settings(ServingSettings)
    features = load_settings(FeatureSettings)
    effects = load_settings(EffectSettings)
    lifecycle = features.lifecycle_dir
    has_manifest = (lifecycle / MANIFEST_FILE).exists()
    try:
        check_horizon(effects.horizon_days)
        if not has_manifest and as_of is None:
            raise AttributionError(
                f"{lifecycle} has no {MANIFEST_FILE} saying when its churn events end: give "
                "--as-of (outcomes after it would count as stays)"
            )
        asked = resolve_as_of(lifecycle, parse_instant(as_of) if as_of else None)
        # a window past the data's end is not over, whatever the clock says
        cutoff = min(asked, resolve_as_of(lifecycle, None)) if has_manifest else asked
        log = _log(serving)
        assert log is not None
        outcomes = attribute(
            log, lifecycle, cutoff, EARLIEST, datetime.now(UTC), serving.actions.experiment
        )
    except AttributionError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    exported = export_training_rows(outcomes, effects.outcomes_file, effects.horizon_days)
    matured = int(outcomes["churned_60d"].notna().sum())
    typer.echo(
        f"{len(outcomes):,} decisions attributed as of {cutoff.isoformat()} ({matured:,} with "
        f"their 60-day outcome; {exported:,} exported to {effects.outcomes_file})"
    )


def with_truth(
    outcomes: pd.DataFrame, lifecycle_dir: Path, horizon: Literal["30d", "60d"] = "60d"
) -> pd.DataFrame:
    """On a simulated world, each treated decision's true effect (reduction of the churn
    probability over the horizon) and whether it pushed the customer away. The simulator's
    truth is over two months at a constant monthly hazard; one month's follows from it."""
    path = lifecycle_dir / TRUTH_EFFECTS
    if not path.exists() or outcomes.empty:
        return outcomes
    truth = pd.read_parquet(path)
    truth = truth[truth["campaign_id"].astype(str).str.startswith("ENG-")]
    reduction = -truth["true_effect"].to_numpy()
    if horizon == "30d":  # P(leave in a month) = 1 - sqrt(1 - P(leave in two))
        base = truth["base_churn_60d"].to_numpy()
        reduction = np.sqrt(1 - base - truth["true_effect"].to_numpy()) - np.sqrt(1 - base)
    keyed = pd.DataFrame(
        {
            "customer_id": truth["customer_id"].to_numpy(),
            "key": truth["campaign_id"].str.removeprefix("ENG-").to_numpy(),
            "true_effect": reduction,
            "true_pushed_away": reduction < 0,
            "true_kept": reduction,
        }
    ).drop_duplicates(["customer_id", "key"])
    action = outcomes["offer_id"].fillna(outcomes["action_type"])
    merged = outcomes.assign(key=outcomes["month"] + "-" + action.astype(str)).merge(
        keyed, on=["customer_id", "key"], how="left"
    )
    return merged.drop(columns="key")


def _write_text(path: Path, text: str) -> None:
    path.write_text(text)


def results_command(
    horizon: Annotated[str, typer.Option(help="30d or 60d.")] = "60d",
) -> None:
    """Campaign results: treated against control by action, segment and month, with
    confidence intervals; printed, and published beside the risk lists as a page."""
    if horizon not in ("30d", "60d"):
        typer.echo(f"error: --horizon {horizon!r}: expected 30d or 60d", err=True)
        raise typer.Exit(2)
    window: Literal["30d", "60d"] = "30d" if horizon == "30d" else "60d"
    serving = load_settings(ServingSettings)
    features = load_settings(FeatureSettings)
    daily = load_settings(DailySettings)
    log = _log(serving, create=False)
    if log is None:
        typer.echo("error: no action log yet: nothing was decided", err=True)
        raise typer.Exit(1)
    outcomes = with_truth(outcomes_frame(log), features.lifecycle_dir, window)
    results = campaign_results(outcomes, window)
    typer.echo(results_table_text(results))
    page = daily.output_dir / RESULTS_FILE
    html = render_results(results, f"Campaign results ({window} churn)")
    publish_file(page, lambda target: _write_text(target, html))
    typer.echo(f"page: {page}")
