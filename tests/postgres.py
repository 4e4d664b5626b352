"""A real PostgreSQL server for tests: a throwaway cluster on loopback, one per session.

`make test` installs Debian's `postgresql` package when it is missing and it runs as
root; without it the PostgreSQL cases are skipped with the reason printed. PostgreSQL
refuses to run as root, so as root the cluster belongs to the `postgres` user.

With `TEST_POSTGRES_URL` set (a superuser's URL), the tests use that server instead of
starting their own: `make mutation` starts one for its thousands of short test runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER_ENV = "TEST_POSTGRES_URL"


def installed() -> bool:
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A throwaway cluster this session started: its URL, and stop/start for fault tests."""

    def __init__(self, pg_ctl: str, data: Path, options: str, log: Path, as_user: list[str]):
        self.pg_ctl, self.data, self.options, self.log, self.as_user = (
            pg_ctl, data, options, log, as_user
        )  # fmt: skip
        self.url = ""

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self.as_user, *command], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            check=True,
        )  # fmt: skip

    def start(self) -> None:
        self._run(
            self.pg_ctl, "-D", str(self.data), "-o", self.options, "-l", str(self.log),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects the clients and shuts down cleanly; `immediate` is a crash."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")


@contextmanager
def owned_cluster() -> Iterator[Cluster]:
    """A new cluster in a new temporary folder (skipped where PostgreSQL is not installed),
    removed afterwards. (Not under pytest's tmp_path: that is private to root, and the
    server runs as `postgres` when the tests run as root.)"""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        reason = "PostgreSQL is not installed (make test installs Debian's postgresql as root)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="retain-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres will not run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "retain", "-A", "trust", "--no-sync"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    cluster = Cluster(pg_ctl, data, options, folder / "log", as_user)
    cluster.url = f"postgresql+psycopg://retain@127.0.0.1:{port}/postgres"
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A superuser's SQLAlchemy URL: `TEST_POSTGRES_URL`'s server, or a cluster started
    for the session (`owned_cluster`)."""
    given = os.environ.get(SERVER_ENV)
    if given:
        yield given
        return
    with owned_cluster() as cluster:
        yield cluster.url


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
