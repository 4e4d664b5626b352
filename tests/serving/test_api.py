"""The scoring API over real HTTP: scores, reasons, errors, auth, readiness."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
import pandas as pd
import pytest
import requests
from fastapi import FastAPI
from typer.testing import CliRunner

from features.online_rows import OnlineStoreUnavailable
from features.request_time import REQUEST_TIME_FIELD
from features.store import open_store
from retain.cli import app as cli
from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.api.errors import install_error_handlers
from serving.api.main import create_app
from serving.auth import KeyConfigError, load_keys, parse_keys, write_keys_file
from serving.scoring import ModelLoadError, Scorer, load_champion
from tests.serving.conftest import (
    KEYS,
    Served,
    active_ids,
    not_ready_state,
    open_scorer,
    running,
    serving_state,
)

CRM = {"X-API-Key": KEYS["crm"]}


def _known_ids(served: Served, count: int) -> list[str]:
    return active_ids(served)[:count]


def test_health_readiness_and_model(api: str, served: Served) -> None:
    assert requests.get(f"{api}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{api}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["model"] == "churn v1"
    model = requests.get(f"{api}/v1/model", headers=CRM, timeout=10).json()
    assert model["name"] == "churn" and model["version"] == "1"
    assert model["feature_service"] == "churn_v1" and len(model["run_id"]) == 32
    assert requests.get(f"{api}/openapi.json", timeout=10).json()["info"]["version"] == "1"


def test_score_returns_calibrated_risk_band_and_reasons(api: str, served: Served) -> None:
    ids = _known_ids(served, 20)
    at = "2026-11-02T09:00:00+00:00"
    response = requests.post(
        f"{api}/v1/score",
        json={"customer_ids": ids, "context": {"channel": "call_centre", "timestamp": at}},
        headers=CRM,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["customer_id"] for r in body["results"]] == ids
    # the same features read through Feast (not the server's direct path) and the champion
    scorer = open_scorer(served)
    frame = served_store_frame(served, scorer, ids, pd.Timestamp(at))
    expected = scorer.loaded.model.predict_proba(frame)
    got = np.array([r["churn_probability"] for r in body["results"]])
    assert np.allclose(got, expected, atol=1e-6)
    bands = served.settings.risk_bands
    for result, row in zip(body["results"], frame.itertuples(index=False), strict=True):
        assert result["risk_band"] == bands.band(result["churn_probability"])
        reasons = result["reasons"]
        assert 1 <= len(reasons) <= served.settings.top_reasons
        contributions = [r["contribution"] for r in reasons]
        assert contributions == sorted(contributions, reverse=True) and min(contributions) > 0
        for reason in reasons:
            assert (
                reason["text"] and reason["value"] == pytest.approx(getattr(row, reason["feature"]))
            ) or reason["value"] == getattr(row, reason["feature"])


def served_store_frame(
    served: Served, scorer: Scorer, ids: list[str], at: pd.Timestamp
) -> pd.DataFrame:
    rows = [{"customer_id": c, REQUEST_TIME_FIELD: int(at.timestamp())} for c in ids]
    store = open_store(served.features)
    return store.get_online_features(features=scorer.refs, entity_rows=rows).to_df()


def test_an_unknown_customer_is_an_item_error_not_a_failed_request(
    api: str, served: Served
) -> None:
    known = _known_ids(served, 1)[0]
    response = requests.post(
        f"{api}/v1/score", json={"customer_ids": [known, "C99999999"]}, headers=CRM, timeout=30
    )
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["customer_id"] == known and 0 <= first["churn_probability"] <= 1
    assert second == {
        "customer_id": "C99999999",
        "error": {
            "code": "unknown_customer",
            "message": "no features for this customer in the online store",
        },
    }


def test_more_than_1000_ids_is_413(api: str) -> None:
    ids = [f"C{i:08d}" for i in range(1001)]
    response = requests.post(f"{api}/v1/score", json={"customer_ids": ids}, headers=CRM, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_customers"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body.customer_ids"),
        ({"customer_ids": []}, "body.customer_ids"),
        ({"customer_ids": ["ok", "no spaces"]}, "body.customer_ids.1"),
        ({"customer_ids": ["C1"], "context": {"channel": "fax"}}, "body.context.channel"),
        ({"customer_ids": ["C1"], "context": {"timestamp": "yesterday"}}, "body.context.timestamp"),
    ],
)
def test_a_malformed_payload_is_422_naming_the_field(
    api: str, payload: dict[str, object], field: str
) -> None:
    response = requests.post(f"{api}/v1/score", json=payload, headers=CRM, timeout=10)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in [f["field"] for f in error["fields"]] and field in error["message"]


def test_a_naive_timestamp_is_refused(api: str) -> None:
    response = requests.post(
        f"{api}/v1/score",
        json={"customer_ids": ["C1"], "context": {"timestamp": "2026-11-02T09:00:00"}},
        headers=CRM,
        timeout=10,
    )
    assert response.status_code == 422 and "timezone" in response.json()["error"]["message"]


def test_keys_and_roles(api: str) -> None:
    payload = {"customer_ids": ["C00000001"]}
    missing = requests.post(f"{api}/v1/score", json=payload, timeout=10)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthenticated"
    wrong = requests.post(
        f"{api}/v1/score", json=payload, headers={"X-API-Key": "x" * 20}, timeout=10
    )
    assert wrong.status_code == 401
    ops = requests.post(
        f"{api}/v1/score", json=payload, headers={"X-API-Key": KEYS["ops"]}, timeout=10
    )
    assert ops.status_code == 403 and ops.json()["error"]["code"] == "forbidden"
    admin = requests.post(
        f"{api}/v1/score",
        json=payload,
        headers={"Authorization": f"Bearer {KEYS['admin']}"},
        timeout=10,
    )
    assert admin.status_code == 200


def test_placeholder_or_short_keys_stop_the_server_outside_dev_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(KeyConfigError, match="placeholder or shorter than 16"):
        parse_keys([("changeme", ["crm"])], dev_mode=False)
    with pytest.raises(KeyConfigError, match="roles"):
        parse_keys([("a-long-enough-key-123", ["sales"])], dev_mode=False)
    assert parse_keys([("changeme", ["crm"])], dev_mode=True).roles("changeme") == {"crm"}
    monkeypatch.setenv("RETAIN_API_KEYS", "changeme:crm")
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code == 2 and "refusing to start" in result.output


def test_without_a_loadable_model_the_api_is_up_but_not_ready(served: Served) -> None:
    app = create_app(
        served.settings, lambda: not_ready_state(served.keys, "model churn@champion: not found")
    )
    with running(app) as url:
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and "not found" in ready.json()["error"]["message"]
        score = requests.post(
            f"{url}/v1/score", json={"customer_ids": ["C1"]}, headers=CRM, timeout=10
        )
        assert score.status_code == 503 and score.json()["error"]["code"] == "model_unavailable"


def test_a_model_whose_features_are_not_served_is_refused_at_load(served: Served) -> None:
    loaded = load_champion(served.settings, served.tracking)
    schema = dataclasses.replace(
        loaded.model.schema, numeric=[*loaded.model.schema.numeric, "shoe_size"]
    )
    odd = dataclasses.replace(loaded, model=dataclasses.replace(loaded.model, schema=schema))
    with pytest.raises(ModelLoadError, match="shoe_size"):
        Scorer(odd, open_store(served.features), served.settings)


def test_score_proposes_actions_with_the_contact_verdict_and_sends_nothing(
    api: str, served: Served
) -> None:
    ids = _known_ids(served, 300)
    log = ActionLog(open_engine(served.settings.action_db_url))
    before = sum(len(log.customer_actions(c)) for c in ids)
    response = requests.post(
        f"{api}/v1/score",
        json={"customer_ids": ids, "context": {"timestamp": "2026-11-02T12:00:00+00:00"}},
        headers=CRM,
        timeout=60,
    )
    results = response.json()["results"]
    policy = served.settings.actions
    for result in results:
        value = result["customer_value"]["expected_margin"]
        best = max(  # the best any offer could do for this customer, eligibility aside
            result["churn_probability"] * value * offer.rate("consumer") - offer.cost
            for offer in policy.offers
        )
        # the exploration share gets a random eligible action, worth it or not
        chosen = [a for a in result["actions"] if a["details"].get("arm") != "exploration"]
        offers = [a for a in chosen if a["action_type"] == "retention_offer"]
        assert len(offers) <= 1
        if best <= 0:
            assert not offers  # nothing pays for itself: nothing is offered
        elif offers:
            assert 0 < offers[0]["expected_value"] <= best + 0.01
    assert any(a["action_type"] == "retention_offer" for r in results for a in r["actions"])
    assert sum(len(log.customer_actions(c)) for c in ids) == before  # scoring records nothing
    for result in results:
        values = [a["expected_value"] for a in result["actions"]]
        explored = [a["details"].get("arm") == "exploration" for a in result["actions"]]
        assert values == sorted(values, reverse=True)
        assert all(v > 0 for v, e in zip(values, explored, strict=True) if not e)
        for action in result["actions"]:
            verdict = action["verdict"]
            assert verdict["allowed"] == (verdict["channel"] is not None)
            for suppression in verdict["suppressions"]:
                assert suppression["code"] in {
                    "no_consent", "frequency_cap", "no_channel", "offer_cooldown",
                    "duplicate_today", "control_group", "budget",
                }  # fmt: skip
    low = [r for r in results if r["risk_band"] == "low"]  # exploration is for medium and high
    assert all(not r["actions"] or r["actions"][0]["expected_value"] > 0 for r in low)


def test_prometheus_metrics_count_requests_by_route_without_customer_ids(
    api: str, served: Served
) -> None:
    customer = _known_ids(served, 1)[0]
    requests.post(f"{api}/v1/score", json={"customer_ids": [customer]}, headers=CRM, timeout=30)
    requests.get(f"{api}/v1/customers/{customer}/actions", headers=CRM, timeout=10)
    requests.get(f"{api}/v1/model", headers=CRM, timeout=10)
    text = requests.get(f"{api}/metrics", timeout=10).text
    assert 'retain_http_requests_total{method="POST",route="/v1/score",status="200"}' in text
    assert 'route="/v1/customers/{customer_id}/actions"' in text
    assert 'retain_model_info{name="churn",version="1"} 1.0' in text
    assert "retain_http_request_seconds_bucket" in text
    assert customer not in text


def test_local_keys_are_made_once_private_and_usable(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "api_keys.yaml"
    keys = write_keys_file(path)
    assert set(keys) == {"crm", "marketing", "ops", "admin"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    loaded = load_keys(path, dev_mode=False)  # long random keys: no dev mode needed
    assert loaded.roles(keys["marketing"]) == frozenset({"marketing"})
    with pytest.raises(FileExistsError):
        write_keys_file(path)  # never overwritten
    assert load_keys(path, dev_mode=False).roles(keys["crm"]) == frozenset({"crm"})


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\x7fELF\x02\x01\x01\x00\xd0\xcf", "not a readable YAML keys file"),
        (b"keys: [a: b\n", "not a readable YAML keys file"),
        (b"- key: abc\n", "expected a mapping with a 'keys' list, not list"),
        (b"keys: abc\n", "'keys' must be a list"),
        (b"keys:\n  - roles: [crm]\n", "keys entry 1 has no 'key'"),
        (b"keys:\n  - just-a-key\n", "keys entry 1 has no 'key'"),
    ],
    ids=["binary", "broken yaml", "a list", "keys not a list", "no key", "a bare string"],
)
def test_a_keys_file_that_is_not_one_is_refused_naming_it(
    tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "api_keys.yaml"
    path.write_bytes(content)
    with pytest.raises(KeyConfigError, match=said) as refused:
        load_keys(path, dev_mode=False)
    assert str(path) in str(refused.value)


def test_scoring_a_customer_from_local_stores_never_leaves_the_event_loop(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread-pool hop costs more than a cached score: the dependencies of /v1/score and
    a preview read from local stores run on the event loop (a plain `def` dependency would
    be sent to the thread pool by FastAPI on every request)."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(function, "__qualname__", repr(function)))
        return await run_sync(function, *args, **kwargs)

    with running(create_app(served.settings, lambda: serving_state(served))) as url:
        monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
        one, many = (
            requests.post(
                f"{url}/v1/score",
                json={"customer_ids": _known_ids(served, count)},
                headers=CRM,
                timeout=30,
            )
            for count in (1, 50)
        )
    assert one.status_code == 200, one.text
    assert one.status_code == 200, one.text
    assert many.status_code == 200, many.text
    # one customer: no hop at all; fifty: the preview alone goes to a thread
    assert [h for h in hops if "preview" in h] == hops[-1:] and len(hops) == 1, hops


def test_an_unreachable_online_store_is_a_503_with_a_retry_hint() -> None:
    """The caller learns to retry, not that we have a bug; where the store is stays in the
    server's log."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/read")
    def read() -> None:
        raise OnlineStoreUnavailable("Redis at '10.0.0.9:6379' cannot be read: refused")

    with running(app) as url:
        response = requests.get(f"{url}/read", timeout=10)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "feature_store_unavailable"
    assert "10.0.0.9" not in response.text
