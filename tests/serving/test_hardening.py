"""The API under hostile input: bounded bodies, rates, dates and fields; the error contract.

Every case runs against a real uvicorn server. Bodies over the limit are sent over a raw
socket: the point is that the server answers before it has read them.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from sqlalchemy import create_engine, select

from serving.action_log.database import audit
from serving.api.main import create_app
from serving.health import Probe, action_log_probe, files_probe, model_registry_probe
from serving.settings import ServingSettings
from tests.serving.conftest import KEYS, Served, active_ids, running, serving_state

CRM = {"X-API-Key": KEYS["crm"]}
OPS = {"X-API-Key": KEYS["ops"]}


def _raw(url: str, head: str, body: bytes = b"", wait_s: float = 5.0) -> tuple[int, dict, float]:
    """Send a request's head (and `body`) over a socket; (status, JSON body, seconds until
    the status line came back)."""
    where = urlparse(url)
    with socket.create_connection((where.hostname, where.port), timeout=wait_s) as conn:
        started = time.perf_counter()
        conn.sendall(head.encode() + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        elapsed = time.perf_counter() - started
        header, _, rest = received.partition(b"\r\n\r\n")
        lines = header.decode().split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(fields.get("content-length", "0"))
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
    status = int(lines[0].split()[1])
    return status, json.loads(rest) if rest else {}, elapsed


def _head(path: str, length: int | None, extra: str = "") -> str:
    size = f"Content-Length: {length}\r\n" if length is not None else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nX-API-Key: {KEYS['crm']}\r\n"
        f"Content-Type: application/json\r\n{size}{extra}\r\n"
    )


@pytest.fixture(scope="module")
def bounded(served: Served) -> Iterator[str]:
    """The API with a short body timeout and a small rate limit for the ops key only
    (the limit is per key: CRM traffic in these tests never comes near it)."""
    settings = served.settings.model_copy(
        update={
            "limits": served.settings.limits.model_copy(
                update={"body_timeout_s": 0.5, "rate_limit": "5/minute"}
            )
        }
    )
    with running(create_app(settings, lambda: serving_state(served, settings))) as url:
        yield url


# --- bounded requests ---------------------------------------------------------------------


def test_a_million_ids_is_refused_413_before_the_body_is_read(api: str) -> None:
    body = json.dumps({"customer_ids": [0] * 1_000_000}).encode()  # 3 MB
    timings = []
    for _ in range(3):  # the best of three: a collector pause is not the server's answer
        status, answer, elapsed = _raw(api, _head("/v1/score", len(body)))  # the head only
        assert status == 413
        assert answer["error"]["code"] == "body_too_large"
        assert "at most 262,144 bytes" in answer["error"]["message"]
        timings.append(elapsed)
    assert min(timings) < 0.05, timings


def test_a_chunked_body_is_cut_off_at_the_limit(api: str) -> None:
    where = urlparse(api)
    chunk = b"[" + b"0," * 32_000 + b"0]"
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        conn.sendall(_head("/v1/score", None, "Transfer-Encoding: chunked\r\n").encode())
        answer = b""
        for _ in range(100):  # 6.4 MB if it were all read
            try:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            conn.settimeout(0.01)
            try:
                answer += conn.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        conn.settimeout(5)
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in answer.lower()


def test_a_body_that_does_not_arrive_in_time_is_refused_408(bounded: str) -> None:
    status, answer, elapsed = _raw(bounded, _head("/v1/score", 100), b'{"customer_ids": [')
    assert status == 408 and answer["error"]["code"] == "body_timeout"
    assert 0.4 < elapsed < 3


def test_more_ids_than_the_limit_are_refused_before_they_are_validated(api: str) -> None:
    ids = [0] * 5000  # not even strings: the length alone refuses them
    started = time.perf_counter()
    response = requests.post(f"{api}/v1/score", json={"customer_ids": ids}, headers=CRM, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "too_many_customers",
        "message": "5,000 customer ids; at most 1,000 per request",
    }
    assert time.perf_counter() - started < 1


def test_a_key_over_its_rate_is_told_when_to_retry_and_others_are_served(
    bounded: str, served: Served
) -> None:
    for _ in range(5):
        assert requests.get(f"{bounded}/v1/model", headers=OPS, timeout=30).status_code in (
            200,
            403,
        )
    limited = requests.get(f"{bounded}/v1/model", headers=OPS, timeout=30)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert requests.get(f"{bounded}/v1/model", headers=CRM, timeout=30).status_code == 200


# --- dates, ranges and unknown fields ------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "1990-01-01T00:00:00Z"]
)
def test_a_scoring_time_outside_the_window_is_422_naming_the_field(
    api: str, served: Served, timestamp: str
) -> None:
    body = {"customer_ids": active_ids(served)[:1], "context": {"timestamp": timestamp}}
    response = requests.post(f"{api}/v1/score", json=body, headers=CRM, timeout=30)
    assert response.status_code == 422
    (field,) = response.json()["error"]["fields"]
    assert field["field"] == "body.context.timestamp"
    assert "is outside" in field["message"]


@pytest.mark.parametrize("timestamp", [0, 1_767_225_600, 1.5, True])
def test_a_number_is_not_a_date(api: str, served: Served, timestamp: object) -> None:
    body = {"customer_ids": active_ids(served)[:1], "context": {"timestamp": timestamp}}
    response = requests.post(f"{api}/v1/score", json=body, headers=CRM, timeout=30)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "body.context.timestamp"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": "9999-01-01T00:00:00Z"}, "body.start"),
        ({"start": "2020-01-01T00:00:00Z"}, "body.start"),
        ({"expected_end": "2099-01-01T00:00:00Z"}, "body.expected_end"),
        ({"sites": ["S1"], "surprise": 1}, "body.surprise"),
    ],
)
def test_an_outage_out_of_range_or_with_unknown_fields_notifies_nobody(
    api: str, change: dict, field: str
) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {"event_id": f"E-{time.time_ns()}", "sites": ["S1"], "start": now,
             "severity": "critical", **change}  # fmt: skip
    response = requests.post(f"{api}/v1/events/outage", json=event, headers=OPS, timeout=30)
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["error"]["fields"]]
    again = requests.post(
        f"{api}/v1/events/outage", json={**event, **_valid_times()}, headers=OPS, timeout=30
    )
    if "surprise" not in change:  # the same event, now valid, is new: nothing was stored
        assert again.status_code == 200 and again.json()["duplicate"] is False


def _valid_times() -> dict[str, str]:
    now = time.time()
    return {
        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "expected_end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
    }


def test_unknown_fields_are_refused_on_every_body(api: str, served: Served) -> None:
    ids = active_ids(served)[:1]
    for path, body in [
        ("/v1/score", {"customer_ids": ids, "contxt": {}}),
        ("/v1/decide", {"customer_ids": ids, "context": {"channel": "app", "when": "now"}}),
        ("/v1/actions/x/outcome", {"outcome": "accepted", "note": "hi"}),
    ]:
        response = requests.post(f"{api}{path}", json=body, headers=CRM, timeout=30)
        assert response.status_code == 422, path
        assert "Extra inputs are not permitted" in response.text


# --- the error contract --------------------------------------------------------------------


def test_405_says_which_methods_are_allowed(api: str) -> None:
    response = requests.get(f"{api}/v1/score", headers=CRM, timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_every_answer_carries_a_request_id_and_echoes_a_sane_one(api: str) -> None:
    given = requests.get(f"{api}/healthz", headers={"X-Request-ID": "crm-123.a_b"}, timeout=30)
    assert given.headers["X-Request-ID"] == "crm-123.a_b"
    odd = requests.get(f"{api}/healthz", headers={"X-Request-ID": "a b\tc"}, timeout=30)
    assert len(odd.headers["X-Request-ID"]) == 32 and " " not in odd.headers["X-Request-ID"]


def test_settings_refuse_a_rate_limit_that_does_not_parse() -> None:
    with pytest.raises(ValueError, match="rate_limit 'often'"):
        ServingSettings.model_validate({"limits": {"rate_limit": "often"}})
    assert (
        ServingSettings.model_validate({"limits": {"rate_limit": "off"}}).limits.rate_limit is None
    )


# --- the audit trail -----------------------------------------------------------------------


def test_who_read_or_acted_on_which_customer_is_audited_without_the_key(
    api: str, served: Served
) -> None:
    customer = active_ids(served)[5]
    scored = requests.post(
        f"{api}/v1/score",
        json={"customer_ids": [customer, customer]},
        headers={**CRM, "X-Request-ID": "audit-score-1"},
        timeout=30,
    )
    listed = requests.get(
        f"{api}/v1/customers/{customer}/actions",
        headers={**CRM, "X-Request-ID": "audit-list-1"},
        timeout=30,
    )
    refused = requests.get(f"{api}/v1/customers/{customer}/actions", timeout=30)  # no key
    assert (scored.status_code, listed.status_code, refused.status_code) == (200, 200, 401)
    engine = create_engine(served.settings.action_db_url)
    deadline = time.monotonic() + 10
    rows: list = []
    while time.monotonic() < deadline:  # written in batches, every second
        with engine.connect() as connection:
            rows = connection.execute(
                select(audit).where(audit.c.request_id.in_(["audit-score-1", "audit-list-1"]))
            ).all()
        if len(rows) == 2:
            break
        time.sleep(0.2)
    assert sorted((r.route, r.method, r.customer_id, r.status, r.roles) for r in rows) == [
        ("/v1/customers/{customer_id}/actions", "GET", customer, 200, "crm"),
        ("/v1/score", "POST", customer, 200, "crm"),  # once, though asked for twice
    ]
    assert all(r.caller.startswith("key-") and KEYS["crm"] not in r.caller for r in rows)
    with engine.connect() as connection:
        everything = connection.execute(select(audit)).all()
    assert not any(KEYS["crm"] in str(tuple(row)) for row in everything)
    engine.dispose()


def test_readiness_reports_every_dependency_and_fails_only_on_a_required_one(
    served: Served, tmp_path: Path
) -> None:
    """The registry down (an MLflow server that does not answer) shows, but the worker
    still serves its loaded model; a required dependency down makes it not ready."""

    def registry() -> None:
        raise ConnectionError("tracking server at http://mlflow:5000 refused the connection")

    def broken_store(_: object) -> None:
        raise RuntimeError("online store down")

    settings = served.settings.model_copy(
        update={"action_db_url": f"sqlite:///{tmp_path / 'actions.db'}"}
    )
    probes = [
        action_log_probe(),
        model_registry_probe(registry),
        files_probe("forecasts", [tmp_path / "capacity.parquet"]),
    ]
    app = create_app(settings, lambda: serving_state(served, settings), probes=probes)
    with running(app) as url:
        ready = requests.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 200
        found = ready.json()["dependencies"]
        assert found["action_log"]["status"] == "up" and found["action_log"]["required"]
        assert found["model_registry"]["status"] == "down"
        assert "refused the connection" in found["model_registry"]["error"]
        assert found["forecasts"] == {**found["forecasts"], "status": "down", "required": False}
    required = [*probes, Probe("online_store", True, broken_store)]
    app = create_app(settings, lambda: serving_state(served, settings), probes=required)
    with running(app) as url:
        not_ready = requests.get(f"{url}/readyz", timeout=30)
        assert not_ready.status_code == 503 and not_ready.headers["Retry-After"] == "5"
        assert "online_store" in not_ready.json()["error"]["message"]
        assert not_ready.json()["dependencies"]["online_store"]["error"].endswith(
            "online store down"
        )
