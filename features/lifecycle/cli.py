"""`retain data ...`: generate simulated lifecycle data and validate any lifecycle export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.lifecycle.contract import TABLES, contract_markdown
from features.lifecycle.profile import load_tables, profile
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import GenerationSummary, OutputFolderError, generate
from features.lifecycle.validate import ValidationReport, resolve_as_of, validate_directory
from retain.base.settings import load_settings

app = typer.Typer(
    help="Lifecycle data: simulate it, validate it against the contract.", no_args_is_help=True
)
console = Console(stderr=True)


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="An instant, ISO 8601 (2026-11-01, 2026-11-01T08:00:00Z); naive means UTC."
    ),
]


def parse_instant(text: str, option: str = "--as-of") -> pd.Timestamp:
    """An ISO 8601 instant as a UTC timestamp; a value without a zone is taken as UTC.
    A bad value is refused naming the `option` it was given to."""
    try:
        instant = pd.Timestamp(text)
    except ValueError as error:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date or time (2026-11-01, 2026-11-01T08:00:00Z)",
            param_hint=f"'{option}'",
        ) from error
    return instant.tz_localize("UTC") if instant.tzinfo is None else instant.tz_convert("UTC")


def run_generation(settings: DataSettings) -> GenerationSummary:
    """Generate with a progress bar over customers; returns the summary."""
    columns = (
        TextColumn("simulating customers"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("simulate", total=settings.customers)
        summary = generate(settings, on_block=lambda n: progress.advance(task, n))
    counts = summary.row_counts
    typer.echo(
        f"generated {settings.customers:,} customers x {settings.months} months "
        f"(seed {settings.seed}, as of {settings.as_of:%Y-%m-%d}) in {summary.seconds:.1f}s: "
        f"{counts['usage_monthly']:,} customer-months, {counts['service_tickets']:,} tickets, "
        f"{counts['churn_events']:,} churned ({summary.monthly_churn_rate:.2%} a month) "
        f"-> {summary.out_dir}"
    )
    return summary


def run_validation(directory: Path, as_of: pd.Timestamp | None = None) -> ValidationReport:
    """Validate with a progress bar over the tables."""
    steps = len(TABLES) + 1
    with Progress(
        TextColumn("validating {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=steps)

        def step(name: str) -> None:
            progress.update(task, description=name, completed=progress.tasks[0].completed + 1)

        report = validate_directory(directory, as_of, on_step=step)
    return report


def print_report(report: ValidationReport) -> None:
    """Every violation on its own line, then a one-line verdict."""
    if report.violations:
        table = Table(
            "table", "column", "rule", "bad rows", "examples", title="contract violations"
        )
        for v in report.violations:
            table.add_row(
                v.table,
                v.column or "-",
                v.rule,
                "all" if v.bad_rows is None else f"{v.bad_rows:,}",
                "; ".join(v.examples),
            )
        Console(width=200).print(table)
        for v in report.violations:
            typer.echo(f"violation: {v}", err=True)
        typer.echo(f"{report.directory}: INVALID, {len(report.violations)} violation(s)")
    else:
        rows = sum(report.row_counts.values())
        typer.echo(
            f"{report.directory}: valid, {len(report.row_counts)} tables, {rows:,} rows, "
            f"nothing after {report.as_of.isoformat()}"
        )


@app.command("generate")
def generate_command(
    customers: Annotated[int | None, typer.Option(help="Customers ever signed up.")] = None,
    months: Annotated[int | None, typer.Option(help="Months of history.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same data).")] = None,
    as_of: AsOfOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder: new, empty, or an earlier output (replaced when done)."),
    ] = None,
) -> None:
    """Simulate the lifecycle tables and a truth/ folder into OUT."""
    overrides = {
        "customers": customers,
        "months": months,
        "seed": seed,
        "out_dir": out,
        "as_of": parse_instant(as_of).to_pydatetime() if as_of else None,
    }
    try:
        run_generation(load_settings(DataSettings, overrides))
    except OutputFolderError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@app.command("validate")
def validate_command(
    directory: Annotated[Path, typer.Argument(help="Folder with the contract's parquet files.")],
    as_of: AsOfOption = None,
) -> None:
    """Check DIRECTORY against the data contract; exit 1 listing every violation.

    Nothing may happen after --as-of (default: the manifest's as_of, else now).
    """
    if not directory.is_dir():
        typer.echo(f"error: {directory} is not a directory", err=True)
        raise typer.Exit(2)
    report = run_validation(directory, parse_instant(as_of) if as_of else None)
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("profile")
def profile_command(
    directory: Annotated[Path, typer.Argument(help="Folder with valid lifecycle tables.")],
    as_of: AsOfOption = None,
) -> None:
    """Print the figures an analyst checks first: churn by driver, seasonality, marginals."""
    cutoff = resolve_as_of(directory, parse_instant(as_of) if as_of else None)
    figures = profile(load_tables(directory), cutoff)
    table = Table("figure", "value", title=f"lifecycle profile of {directory}")
    for name, value in figures.as_dict().items():
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console(width=160).print(table)


@app.command("contract")
def contract_command() -> None:
    """Print the data contract (tables, columns, types, rules) as Markdown."""
    typer.echo(contract_markdown())
