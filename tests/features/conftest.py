"""A small Feast project in a temporary folder, laid out like the repository:
<root>/features/repo/feature_store.yaml (the repository's own), <root>/data/{lifecycle,features}."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from features.build import build_directory
from features.engine import EngineSettings
from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate
from features.settings import FeatureSettings
from tests.conftest import shared_folder

REPO = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2026-11-01", tz="UTC")


def project_settings(root: Path) -> FeatureSettings:
    return FeatureSettings.model_validate(
        {
            "repo_path": root / "features" / "repo",
            "lifecycle_dir": root / "data" / "lifecycle",
            "training_dir": root / "data" / "training",
        }
    )


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lifecycle data (1,500 customers x 12 months) and its feature tables, built once."""

    def build(root: Path) -> None:
        lifecycle = {"customers": 1_500, "months": 12, "seed": 4}
        generate(DataSettings.model_validate({"out_dir": root / "data" / "lifecycle", **lifecycle}))
        (root / "features" / "repo").mkdir(parents=True)
        shutil.copy(REPO / "features" / "repo" / "feature_store.yaml", root / "features" / "repo")
        settings = project_settings(root)
        build_directory(settings.lifecycle_dir, settings.tables_dir, AS_OF, EngineSettings())

    return shared_folder(tmp_path_factory, "project", build)


@pytest.fixture
def project(built_project: Path, tmp_path: Path) -> FeatureSettings:
    """A private copy of the built project: a test may apply, materialize and tear down."""
    root = Path(shutil.copytree(built_project, tmp_path / "project"))
    return project_settings(root)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on loopback, started for the test and stopped after it."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (make test installs Debian's redis-server as root)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("redis-server did not start within 10 s")
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def redis_project(project: FeatureSettings, address: str) -> FeatureSettings:
    """The project on the repository's Redis environment, pointed at `address`."""
    yaml = project.repo_path / "redis_feature_store.yaml"
    yaml.write_text(
        (REPO / "features" / "repo" / "envs" / "redis" / "feature_store.yaml")
        .read_text()
        .replace("127.0.0.1:6379", address)
    )
    return project.model_copy(update={"store_yaml": yaml})
