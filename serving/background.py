"""A loop in a daemon thread, stopped cleanly at shutdown (delivery, model watching)."""

from __future__ import annotations

import threading
from typing import Self


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
