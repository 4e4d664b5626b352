"""A loop in a daemon thread, stopped cleanly at shutdown (delivery, model watching)."""

from __future__ import annotations

import logging
import threading
from typing import Self

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


def failure_line(error: BaseException) -> str:
    """An error as one short line: its type and its message's first line (SQLAlchemy adds
    the statement and a link after it; parameters are hidden by the engines)."""
    first = (str(error).strip().splitlines() or [""])[0][:300]
    return f"{type(error).__name__}: {first}"


def report_failure(log: logging.Logger, what: str, error: Exception) -> None:
    """A database that is down or restarting: one line per attempt, no traceback (a loop
    retrying every second must not fill the log); anything else with its traceback."""
    if isinstance(error, UNAVAILABLE):
        log.warning(what, extra={"error": failure_line(error)})
    else:
        log.error(what, exc_info=error)


class BackgroundLoop:
    """Calls `step()` until stopped; `step` returns how long to wait before the next call."""

    name = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def step(self) -> float:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.step())
