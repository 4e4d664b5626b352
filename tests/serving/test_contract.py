"""The API against its own OpenAPI document: schemathesis, every check, on a real server.

Each operation is exercised with examples generated from the schema (valid and invalid),
for a bounded number of examples, and every response must conform to what the document
declares (status codes, headers, content types, bodies), with no server error. The keys
authenticate as admin, so every role's routes are reached.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.api.main import create_app
from tests.serving.conftest import KEYS, Served, running, serving_state

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def contract_api(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API with its own action log, and no rate limit: the fuzzer sends thousands of
    requests with one key (the limit itself is tested elsewhere)."""
    folder = tmp_path_factory.mktemp("contract")
    settings = served.settings.model_copy(
        update={
            "action_db_url": f"sqlite:///{folder / 'actions.db'}",
            "limits": served.settings.limits.model_copy(update={"rate_limit": None}),
        }
    )
    app = create_app(settings, lambda: serving_state(served, settings), risk_lists_dir=folder)
    with running(app) as url:
        yield url


@pytest.mark.slow
def test_every_operation_conforms_to_the_openapi_document(
    contract_api: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{contract_api}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"X-API-Key: {KEYS['admin']}",
            "--max-examples",
            "100",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # its cache folder (.schemathesis/) goes there
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
