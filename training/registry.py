"""The model registry, read only: which version an alias names, its run's tags, the model.

The API, the model watcher, the daily list, campaigns and promotion read the registry
here. Nothing is created: no experiment, no run, and no embedded database (a SQLite
registry that does not exist yet is an error saying what to run, not a new empty file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from training.settings import TrackedSettings

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


class RegistryError(LookupError):
    """The registry, the model, the alias or the version cannot be read."""


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    run_tags: dict[str, str]


def use_backend(uri: str) -> None:
    """Point this process's MLflow at `uri` (so `models:/` URIs and runs resolve there).

    MLflow also copies the URI into MLFLOW_TRACKING_URI, where the settings would later
    read it as the user's choice and let it override another stage's configured backend;
    the variable is put back as the user left it.
    """
    chosen = os.environ.get(TRACKING_URI_ENV)
    mlflow.set_tracking_uri(uri)
    if chosen is None:
        os.environ.pop(TRACKING_URI_ENV, None)
    else:
        os.environ[TRACKING_URI_ENV] = chosen


def registry(settings: TrackedSettings) -> MlflowClient:
    """A client of the configured registry (the registry URI follows the tracking URI)."""
    uri = settings.resolved_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise RegistryError(f"no model registry at {uri}: train a model first (retain run)")
    use_backend(uri)
    return MlflowClient(tracking_uri=uri)


def aliased(settings: TrackedSettings, name: str, alias: str) -> RegisteredVersion:
    """The version of `name` the alias points at, with its training run's tags."""
    client = registry(settings)
    try:
        version = client.get_model_version_by_alias(name, alias)
        run = client.get_run(str(version.run_id))
    except mlflow.exceptions.MlflowException as error:
        raise RegistryError(f"model {name}@{alias}: {error.message}") from error
    return RegisteredVersion(name, str(version.version), str(version.run_id), dict(run.data.tags))


def model_aliases(client: MlflowClient, name: str, train_command: str) -> dict[str, str]:
    """The aliases of the registered model `name` ({alias: version}); a model never
    registered is a RegistryError that says which command registers it."""
    try:
        return dict(client.get_registered_model(name).aliases)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(
                f"no model {name!r} is registered: run `{train_command}` first"
            ) from None
        raise RegistryError(f"model {name!r}: {error.message}") from error


def alias_version(settings: TrackedSettings, name: str, alias: str) -> str:
    """The version the alias points at now (cheap: what the model watcher polls)."""
    try:
        return str(registry(settings).get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException as error:
        raise RegistryError(f"model {name}@{alias}: {error.message}") from error


def load_python_model(settings: TrackedSettings, name: str, version: str) -> Any:
    """The Python object a registered pyfunc version wraps (e.g. a `ChurnPyfunc`)."""
    registry(settings)
    try:
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
    except mlflow.exceptions.MlflowException as error:
        raise RegistryError(f"model {name} v{version}: {error.message}") from error
