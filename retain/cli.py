"""The `retain` command: one sub-command group per stage, plus `run` for the main job.

A stage's module is imported only when one of its commands runs (or shows its own help):
the stages stand on Feast, MLflow and LightGBM, whose imports take tens of seconds, and
`retain --help` or `retain data generate` should not wait for all of them."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import typer
from pydantic import ValidationError

# typer vendors its own click: the commands it makes, and their contexts, are of that click
from typer import _click
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Stage:
    """A sub-command of `retain`: where it is defined and the line the listing shows."""

    name: str
    target: str  # "module:attribute", a Typer group or a function typer makes a command of
    summary: str
    added: tuple[Stage, ...] = ()  # commands of another module added to this group


STAGES = (
    Stage("run", "retain.jobs:run", "The main job end to end on the configured defaults."),
    Stage(
        "data",
        "features.lifecycle.cli:app",
        "Lifecycle data: simulate, validate, advance.",
        # advancing a world runs the decision loop's day, a layer above the simulator
        added=(
            Stage(
                "advance",
                "serving.loop:advance_command",
                "Simulate the next months of a world, with the decision loop's actions.",
            ),
        ),
    ),
    Stage(
        "features", "features.cli:app", "Feature store: build, apply, materialize, training sets."
    ),
    Stage(
        "train", "training.cli:train_app", "Train the churn, treatment-effect and demand models."
    ),
    Stage(
        "promote", "training.cli:promote_app", "Promote a challenger to champion when it is better."
    ),
    Stage(
        "forecast",
        "training.cli:forecast_command",
        "Forecast demand with the champion: surges, package candidates, callback capacity.",
    ),
    Stage(
        "staffing",
        "training.cli:staffing_command",
        "Plan agents per region, day and hour from the service-load forecast.",
    ),
    Stage(
        "daily", "serving.cli:daily_command", "Publish the day's risk list, explained and matched."
    ),
    Stage(
        "monitor",
        "serving.cli:monitor_command",
        "Drift and performance against the champion's training reference, with alerts.",
    ),
    Stage("serve", "serving.cli:serve_command", "Start the scoring API (OpenAPI docs at /docs)."),
    Stage(
        "campaign",
        "serving.cli:campaign_command",
        "Notify the candidates of the seasonal-package campaigns due now.",
    ),
    Stage(
        "deliver",
        "serving.loop:deliver_command",
        "Drain the outbox once to the configured channel.",
    ),
    Stage(
        "attribute",
        "serving.loop:attribute_command",
        "Record the 30- and 60-day outcomes of every marketing decision.",
    ),
    Stage("results", "serving.loop:results_command", "Campaign results: treated against control."),
    Stage("kpis", "serving.cli:kpis_command", "Service KPIs by region and week, and their alerts."),
    Stage("outages", "serving.service_cli:outages_app", "The outage lifecycle: detect, list."),
    Stage(
        "followups",
        "serving.service_cli:followups_command",
        "Open complaint follow-ups and escalate those past their deadline.",
    ),
    Stage(
        "action-log",
        "serving.cli:action_log_app",
        "The action log's schema: its revision, and migrating it.",
    ),
    Stage(
        "housekeeping",
        "serving.cli:housekeeping_command",
        "Delete what is past its retention period; pseudonymize old decisions.",
    ),
)

# Errors whose message already names the file, table, setting or address and what was
# wrong: `main` prints them as one line (exit code 2) rather than a traceback that would
# bury it; RETAIN_TRACEBACK=1 shows the traceback. A module never imported cannot have
# raised its error, so they are looked up, not imported.
CLEAR_ERRORS = (
    ("features.table_checks", "FeatureTableError"),
    ("features.online_rows", "OnlineStoreUnavailable"),
    ("features.engine", "EngineUnavailable"),
    ("features.lifecycle.validate", "ManifestError"),
    ("retain.base.settings", "SettingsFileError"),
    # a file a command reads is missing, unreadable or not what it should be
    ("builtins", "OSError"),
    ("pyarrow.lib", "ArrowException"),
    ("sqlalchemy.exc", "ArgumentError"),  # a database URL that is not one
)
TRACEBACK_ENV = "RETAIN_TRACEBACK"


class Deferred(TyperCommand):
    """A stage as the listing shows it; its module is imported when the stage is invoked,
    and the command made from it parses the arguments and runs."""

    def __init__(self, stage: Stage) -> None:
        super().__init__(stage.name, help=stage.summary, short_help=stage.summary)
        self.stage = stage

    @cached_property
    def loaded(self) -> _click.Command:
        return load_stage(self.stage)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: _click.Context | None = None,
        **extra: Any,
    ) -> _click.Context:
        return self.loaded.make_context(info_name, args, parent=parent, **extra)


def load_stage(stage: Stage) -> _click.Command:
    """Import the stage's module and make its click command, with the stages it adds."""
    module, _, attribute = stage.target.partition(":")
    target = getattr(importlib.import_module(module), attribute)
    quiet_loaded_libraries()  # the import may have reset the libraries' output
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        for added in stage.added:
            group.add_command(Deferred(added))
        return group
    if stage.added:
        raise TypeError(f"{stage.target} is a command, not a group: nothing can be added to it")
    single = typer.Typer()
    single.command(stage.name)(target)
    return typer.main.get_group(single).commands[stage.name]


class StageGroup(TyperGroup):
    """`retain`'s group: every stage of `STAGES`, imported only when it is invoked."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for stage in STAGES:
            self.add_command(Deferred(stage))


app = typer.Typer(
    cls=StageGroup,
    help="Churn prediction and proactive service engine for telecom operators.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def stages() -> None:
    """No options of its own: typer makes a group of a Typer only when it has commands or a
    callback, and the stages are added to the group when it is made (`StageGroup`)."""


@dataclass
class LibraryOutput:
    """Whether the libraries' own output is silenced: `main` does, for people reading the
    command's output; the tests, which invoke `app` directly, keep it."""

    quiet: bool = False


LIBRARY_OUTPUT = LibraryOutput()


def quiet_libraries() -> None:
    """People read this command's output: one summary line per stage. The libraries'
    warnings, INFO lines and progress bars are silenced here, at the entry point (the
    tests keep them), and again after each stage is imported (`quiet_loaded_libraries`);
    warnings raised by our own packages still show."""
    LIBRARY_OUTPUT.quiet = True
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # MLflow reads it on import
    quiet_loaded_libraries()


def quiet_loaded_libraries() -> None:
    """What importing a stage undoes or adds, silenced again once it is imported: libraries
    put their own warning filters first (Feast, SciPy), MLflow sets its loggers' levels, and
    its own stream ("Successfully registered model ...") can be closed only once imported.
    Nothing is changed unless the entry point asked for quiet (`quiet_libraries`)."""
    if not LIBRARY_OUTPUT.quiet:
        return
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=r"(retain|features|training|serving)(\.|$)")
    for library in ("mlflow", "alembic", "feast", "urllib3"):
        logging.getLogger(library).setLevel(logging.ERROR)
    if "mlflow" in sys.modules:
        importlib.import_module("mlflow.utils.logging_utils").disable_logging()


def clear_errors() -> tuple[type[BaseException], ...]:
    """The `CLEAR_ERRORS` classes of the modules imported so far."""
    return tuple(
        getattr(sys.modules[module], name) for module, name in CLEAR_ERRORS if module in sys.modules
    )


def main() -> None:
    """Entry point: errors in settings, feature tables or the online store's address become
    one clear line and exit code 2, not a traceback."""
    quiet_libraries()
    try:
        app()
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']} (got {e.get('input')!r})"
            for e in error.errors()
        )
        typer.echo(f"error: invalid {error.title}: {details}", err=True)
        raise SystemExit(2) from None
    except Exception as error:
        if not isinstance(error, clear_errors()) or os.environ.get(TRACEBACK_ENV):
            raise
        typer.echo(f"error: {one_line(error)}", err=True)
        raise SystemExit(2) from None


# what an OS error raised with only a path (as pyarrow does) means
OS_ERROR_MEANINGS: dict[type[OSError], str] = {
    FileNotFoundError: "no such file or folder",
    IsADirectoryError: "a folder, where a file was expected",
    NotADirectoryError: "not a folder",
    PermissionError: "permission denied",
}


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OS error as "what: which file"."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and len(error.args) == 1:
        meaning = OS_ERROR_MEANINGS.get(type(error))
        return f"{meaning}: {message}" if meaning else message
    return message


if __name__ == "__main__":
    main()
