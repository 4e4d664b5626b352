"""A real PostgreSQL server for tests: a throwaway cluster on loopback, one per session.

`make test` installs Debian's `postgresql` package when it is missing and it runs as
root; without it the PostgreSQL cases are skipped with the reason printed. PostgreSQL
refuses to run as root, so as root the cluster belongs to the `postgres` user.

With `TEST_POSTGRES_URL` set (a superuser's URL), the tests use that server instead of
starting their own: `make mutation` starts one for its thousands of short test runs.
"""

from __future__ import annotations

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


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster in a new temporary folder; yields the SQLAlchemy URL of a superuser's
    server, and removes the cluster afterwards. (Not under pytest's tmp_path: that is
    private to root, and the server runs as `postgres` when the tests run as root.)"""
    given = os.environ.get(SERVER_ENV)
    if given:
        yield given
        return
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

    def quiet(*command: str) -> None:
        subprocess.run(
            [*as_user, *command], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True
        )

    quiet(initdb, "-D", str(data), "-U", "retain", "-A", "trust", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    quiet(
        pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start"
    )
    try:
        yield f"postgresql+psycopg://retain@127.0.0.1:{port}/postgres"
    finally:
        quiet(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
