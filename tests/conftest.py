"""Shared fixtures: simulated datasets generated once per test session."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from features.lifecycle.settings import DataSettings
from features.lifecycle.simulator import generate

# Property-based tests draw the same examples on every run (CI and `make mutation` must not
# depend on luck), keep no example database, and have no per-example deadline (a shared
# 2-core CI machine is slow at times).
settings.register_profile("retain", derandomize=True, database=None, deadline=None)
settings.load_profile("retain")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a test marked slow run first, in their own order otherwise.

    `make test` hands whole files to two workers in this order; with the long files first
    the short ones fill in at the end, instead of one worker finishing a long file alone
    while the other waits (longest first is the classic rule for balancing such queues).
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order kept within


@pytest.fixture(autouse=True)
def _no_retain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from RETAIN_* variables of the caller's shell."""
    for name in [n for n in os.environ if n.startswith("RETAIN_") or n == "MLFLOW_TRACKING_URI"]:
        monkeypatch.delenv(name)


def _generate(out: Path, **overrides: object) -> Path:
    settings = DataSettings.model_validate({"out_dir": out, **overrides})
    generate(settings)
    return out


def shared_folder(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """A folder built once per test run, whichever worker asks first: under `make test`'s
    two workers each session fixture would otherwise build it twice. The others wait on a
    lock and read it; tests must not change it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build cut short before
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo size (20,000 customers x 24 months, seed 7): realism needs this many."""
    demo = shared_folder(
        tmp_path_factory,
        "demo",
        lambda folder: _generate(folder / "lifecycle", customers=20_000, months=24, seed=7),
    )
    return demo / "lifecycle"


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small valid dataset (1,000 customers x 12 months), never modified by tests."""
    return _generate(
        tmp_path_factory.mktemp("small") / "lifecycle", customers=1_000, months=12, seed=3
    )


@pytest.fixture
def small_copy(small_data: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset that a test may break."""
    return Path(shutil.copytree(small_data, tmp_path / "lifecycle"))


@pytest.fixture
def make_data(tmp_path: Path) -> Callable[..., Path]:
    """Generate a dataset with the given settings into a fresh folder."""

    def make(name: str = "lifecycle", **overrides: object) -> Path:
        return _generate(tmp_path / name, **overrides)

    return make
