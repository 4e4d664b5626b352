"""The `retain` command as a user runs it."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.exc import ArgumentError
from typer.testing import CliRunner

from features.store import definitions
from retain.cli import (
    CLEAR_ERRORS,
    STAGES,
    TRACEBACK_ENV,
    Stage,
    app,
    clear_errors,
    load_stage,
    main,
)
from retain.jobs import monitor_the_day
from serving.monitoring import ReferenceMissing
from serving.settings import ServingSettings

runner = CliRunner()


def test_help_lists_the_stages() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "run"):
        assert command in result.output
    data_help = runner.invoke(app, ["data", "--help"]).output
    for command in ("generate", "validate", "profile", "contract"):
        assert command in data_help


def _stages() -> list[tuple[list[str], Stage]]:
    """Every deferred command with the words that invoke it."""
    return [
        (path, stage)
        for top in STAGES
        for path, stage in [([top.name], top), *(([top.name, a.name], a) for a in top.added)]
    ]


def test_the_listing_imports_no_stage() -> None:
    """`retain --help` and a mistyped command answer from the table: no stage is imported
    (in a fresh interpreter, since this one has imported them all)."""
    probe = (
        "import sys; from typer.testing import CliRunner; from retain.cli import app; "
        "r = CliRunner(); listing = r.invoke(app, ['--help']); typo = r.invoke(app, ['forcast']); "
        "print(listing.exit_code, typo.exit_code); print(listing.output); print(typo.output); "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    said = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert said.startswith("0 2"), said
    loaded = said.strip().splitlines()[-1]
    for heavy in ("features", "training", "serving", "mlflow", "feast", "lightgbm", "pandas"):
        assert f"'{heavy}'" not in loaded, loaded
    for stage in STAGES:
        assert f" {stage.name} " in said, stage.name
    assert "Did you mean 'forecast'?" in said


@pytest.mark.parametrize(("path", "stage"), _stages(), ids=[" ".join(p) for p, _ in _stages()])
def test_every_stage_loads_and_shows_its_own_help(path: list[str], stage: Stage) -> None:
    own = (load_stage(stage).help or "").strip().split("\n")[0]
    assert own, f"{stage.target} has no help"
    shown = runner.invoke(app, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    assert " ".join(own.split())[:40] in " ".join(shown.output.split())


def test_the_errors_main_explains_are_where_it_looks() -> None:
    for module, name in CLEAR_ERRORS:
        error = getattr(importlib.import_module(module), name)
        assert issubclass(error, Exception)
    assert set(clear_errors()) == {
        getattr(importlib.import_module(module), name) for module, name in CLEAR_ERRORS
    }


def _main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """`retain ARGS` through the entry point, in this process: its exit code and what it
    wrote to stderr (the libraries are left as the tests keep them)."""
    monkeypatch.setattr("retain.cli.quiet_libraries", lambda: None)
    monkeypatch.setattr(sys, "argv", ["retain", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0), capsys.readouterr().err


def test_bad_files_and_settings_are_one_clear_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "customers.parquet").write_text("not parquet")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "kpis.yaml").write_text(": : :\n")
    cases = {
        ("data", "profile", str(tmp_path / "nowhere")): (
            f"error: no such file or folder: {tmp_path / 'nowhere' / 'customers.parquet'}"
        ),
        ("data", "profile", str(corrupt)): (
            f"error: Could not open Parquet input source '{corrupt / 'customers.parquet'}'"
        ),
        ("train", "churn", "--training-set", str(corrupt / "customers.parquet")): (
            f"error: --training-set {corrupt / 'customers.parquet'}: not readable as parquet"
        ),
        ("outages", "list", "--state", "bogus"): "error: --state 'bogus': expected one of open",
    }
    for args, said in cases.items():
        code, err = _main(list(args), monkeypatch, capsys)
        assert code == 2 and err.startswith(said), (args, err)
        assert "Traceback" not in err
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(configs))
    code, err = _main(["kpis"], monkeypatch, capsys)
    assert code == 2 and f"{configs / 'kpis.yaml'}: not a readable YAML settings file" in err
    monkeypatch.delenv("RETAIN_CONFIG_DIR")
    monkeypatch.setenv("RETAIN_SERVING_ACTION_DB_URL", "secret-in-a-garbled-url")
    code, err = _main(["action-log", "current"], monkeypatch, capsys)
    assert code == 2 and "is not a database URL" in err and "secret" not in err
    monkeypatch.setenv(TRACEBACK_ENV, "1")  # and for whoever must see where it came from
    with pytest.raises(ArgumentError):
        _main(["action-log", "current"], monkeypatch, capsys)


@pytest.mark.parametrize(
    "args",
    [
        ["data", "generate", "--as-of", "2026-13-01", "--out", "w"],
        ["data", "validate", ".", "--as-of", "yesterday"],
        ["deliver", "--now", "notadate"],
        ["housekeeping", "--now", "2026-02-30"],
    ],
    ids=["generate", "validate", "deliver", "housekeeping"],
)
def test_a_bad_instant_is_refused_naming_its_option(args: list[str]) -> None:
    refused = runner.invoke(app, args)
    option = args[args.index("--as-of" if "--as-of" in args else "--now")]
    assert refused.exit_code == 2
    assert f"Invalid value for '{option}'" in " ".join(refused.output.split())


def test_generate_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generated = runner.invoke(
        app,
        [
            "data",
            "generate",
            "--customers",
            "500",
            "--months",
            "8",
            "--seed",
            "2",
            "--out",
            str(out),
        ],
    )
    assert generated.exit_code == 0, generated.output
    assert "generated 500 customers x 8 months" in generated.output
    validated = runner.invoke(app, ["data", "validate", str(out)])
    assert validated.exit_code == 0, validated.output
    assert "valid, 9 tables" in validated.output


def test_validate_fails_naming_table_and_column(small_copy: Path) -> None:
    customers = pd.read_parquet(small_copy / "customers.parquet")
    customers.drop(columns=["plan_id"]).to_parquet(small_copy / "customers.parquet")
    result = runner.invoke(app, ["data", "validate", str(small_copy)])
    assert result.exit_code == 1
    assert "customers.plan_id: missing column" in result.output
    assert "INVALID" in result.output


def test_validate_rejects_a_missing_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_bad_flag_value_names_the_field(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "--months", "1", "--out", str(tmp_path / "d")])
    assert result.exit_code != 0
    assert "months" in str(result.exception) + result.output


@pytest.mark.slow
def test_run_goes_from_data_to_a_champion_model(tmp_path: Path) -> None:
    """`retain run` as `make run` calls it, in a real process, in a project laid out like
    the repository (features/repo/feature_store.yaml, data/ beside features/), on the smallest
    world the simulator makes."""
    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "features" / "repo").mkdir(parents=True)
    shutil.copy(repo / "features" / "repo" / "feature_store.yaml", tmp_path / "features" / "repo")
    env = {
        "PATH": "/usr/bin:/bin",
        "RETAIN_DATA_CUSTOMERS": "800",
        # the shortest world the simulator makes: shorter than the configured held-out
        # months and backtest history, and than a year (no seasonal reference)
        "RETAIN_DATA_MONTHS": "6",
        "RETAIN_DATA_OUT_DIR": str(tmp_path / "data" / "lifecycle"),
        "RETAIN_CONFIG_DIR": str(repo / "configs"),
        "RETAIN_DEMAND_BACKTEST__ORIGINS": "2",
        "RETAIN_DEMAND_PARAMS__NUM_ROUNDS": "60",
    }
    result = subprocess.run(
        [sys.executable, "-m", "retain.cli", "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "valid, 9 tables" in result.stdout
    # what the short history changed is said, not hidden
    assert "1 validation and 2 test months held out instead of the configured 2 and 3" in (
        result.stderr
    )
    assert "weeks before the first backtest origin, fewer than" in result.stderr
    # ... and the libraries' own warnings and MLflow's registry lines are not, although
    # the stages (and the libraries) are imported after the entry point silenced them
    assert "site-packages" not in result.stderr and "Warning" not in result.stderr
    assert "Successfully registered" not in result.stderr + result.stdout
    applied = f"applied {len(definitions())} Feast objects"
    assert "built feature tables" in result.stdout and applied in result.stdout
    assert "materialized 5 feature views" in result.stdout
    assert "trained churn model version 1 (alias challenger" in result.stdout
    assert "churn model version 1: promoted to champion" in result.stdout
    assert "trained demand model version 1 (alias challenger" in result.stdout
    assert "package: P50 WAPE" in result.stdout and "P10-P90 coverage" in result.stdout
    assert "demand model version 1: promoted to champion" in result.stdout
    assert "(8 weeks, " in result.stdout and "with demand model v1" in result.stdout
    assert (tmp_path / "data" / "forecasts" / "forecast.parquet").exists()
    # the service side of the same run: agents, suspected outages, follow-ups, KPIs
    assert (tmp_path / "data" / "forecasts" / "staffing.parquet").exists()
    assert "site(s) suspected" in result.stdout and "new follow-up(s)" in result.stdout
    assert list((tmp_path / "risk_lists" / "kpis").glob("????-??-??.json"))
    pages = list((tmp_path / "risk_lists").glob("????-??-??/report.html"))
    assert pages and 'id="staffing"' in pages[0].read_text()
    assert (tmp_path / "data" / "mlflow" / "mlflow.db").exists()
    assert f"done: lifecycle data in {tmp_path / 'data' / 'lifecycle'}" in result.stdout
    assert (tmp_path / "data" / "feast" / "online.db").exists()


def test_run_goes_on_when_the_champion_cannot_be_monitored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_: object) -> None:
        raise ReferenceMissing("monitoring/reference.json of run r1: version 1, expected 2")

    monkeypatch.setattr("serving.cli.publish_monitoring", refuse)
    monitor_the_day(date(2026, 11, 8), ServingSettings())
    said = capsys.readouterr().out
    assert "(monitoring skipped: monitoring/reference.json of run r1: version 1" in said
