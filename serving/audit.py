"""The audit trail: who (key name and roles, never the key) read or acted on which customer
through the API, on which route, with what status, under which request id.

Routes hand their rows to `AuditTrail.add`, which only appends to memory: the request path
never waits on the database. A background thread writes them in batches every
`interval_s` seconds (and at shutdown). When the database is down the rows wait, up to
`max_pending`; past that the oldest are dropped and counted in the log, so an outage
costs audit rows, never memory or requests. A worker killed outright loses at most its
last interval's rows.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, insert

from serving.action_log.database import audit, to_db
from serving.background import BackgroundLoop

log = logging.getLogger("retain.serving")


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    caller: str
    roles: str
    method: str
    route: str
    customer_id: str | None
    status: int
    request_id: str | None


class AuditTrail(BackgroundLoop):
    name = "audit-writer"

    def __init__(self, engine: Engine, interval_s: float = 1.0, max_pending: int = 200_000):
        super().__init__()
        self.engine = engine
        self.interval_s = interval_s
        self._pending: deque[AuditRow] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._dropped = 0

    def add(self, rows: Iterable[AuditRow]) -> None:
        with self._lock:
            self.add_locked(list(rows))

    def step(self) -> float:
        self.flush()
        return self.interval_s

    def stop(self) -> None:
        super().stop()
        self.flush()

    def flush(self) -> int:
        """Write what is pending; on failure it goes back, oldest first, for the next try."""
        with self._lock:
            batch, dropped = list(self._pending), self._dropped
            self._pending.clear()
            self._dropped = 0
        if dropped:
            log.warning("audit rows dropped while the database was down", extra={"rows": dropped})
        if not batch:
            return 0
        values = [{**asdict(row), "at": to_db(row.at)} for row in batch]
        try:
            with self.engine.begin() as connection:
                for start in range(0, len(values), 1000):
                    connection.execute(insert(audit), values[start : start + 1000])
        except Exception as error:  # any database failure: the rows wait for the next try
            log.warning(
                "audit rows not written yet",
                extra={"rows": len(batch), "error": type(error).__name__},
            )
            with self._lock:
                newer = list(self._pending)
                self._pending.clear()
                self.add_locked([*batch, *newer])
            return 0
        return len(batch)

    def add_locked(self, rows: list[AuditRow]) -> None:
        """Append, the caller holding the lock; past `max_pending` the oldest go (counted)."""
        for row in rows:
            if len(self._pending) == self._pending.maxlen:
                self._dropped += 1
            self._pending.append(row)
