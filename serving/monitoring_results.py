"""Where `retain monitor` publishes each day's result, and reading the latest one.

`<daily output_dir>/monitoring/D.json`, beside the risk lists: aggregates only (drift
statistics, expected and realised performance, alerts), so it outlives the lists'
retention period. Each file is written to a temporary name and renamed into place, so a
reader (the API's /metrics, the daily page) sees the old result or the new one.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Any

from retain.base.publish import publish_file

log = logging.getLogger("retain.monitor")

MONITORING_DIR = "monitoring"


def result_path(output_dir: Path, day: date) -> Path:
    return output_dir / MONITORING_DIR / f"{day.isoformat()}.json"


def publish_result(result: dict[str, Any], output_dir: Path) -> Path:
    """Write `<output_dir>/monitoring/D.json` atomically (renamed into place)."""
    path = result_path(output_dir, date.fromisoformat(result["date"]))
    text = json.dumps(result, indent=2, default=str, allow_nan=False)

    def write(target: Path) -> None:
        target.write_text(text)

    return publish_file(path, write)


def latest_result(output_dir: Path, day: date | None = None) -> dict[str, Any] | None:
    """The latest published result (on or before `day` when given); None if there is none."""
    folder = output_dir / MONITORING_DIR
    days = sorted(
        p for p in folder.glob("????-??-??.json") if day is None or p.stem <= day.isoformat()
    )
    for path in reversed(days):
        try:
            found: dict[str, Any] = json.loads(path.read_text())
            return found
        except (OSError, ValueError):
            log.warning("skipping unreadable monitoring result %s", path)
    return None
