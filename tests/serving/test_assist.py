"""Help for the agent on a live contact: routing rules, the ticket and cell index, open
outages from the action log, and `/v1/score`'s answer on an agent's channel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from serving.action_log.database import open_engine
from serving.action_log.log import ActionLog
from serving.api.main import create_app
from serving.assist import (
    AssistIndex,
    CustomerTickets,
    SiteDay,
    care_reason,
    cell_status,
    open_outages,
    outage_events_since,
    outage_window,
    read_cell_days,
    read_tickets,
    route,
    unresolved_complaints,
)
from serving.settings import AgentAssist, Care, ServingSettings, TimeWindow
from tests.serving.builders import NOON, score
from tests.serving.conftest import KEYS, Served, active_ids, running, serving_state

RULES = AgentAssist()
CRM = {"X-API-Key": KEYS["crm"]}
AT = "2026-11-02T09:00:00+00:00"


def _assist(sentiment: float | None = None, complaints: int = 0, **contact: Any) -> str:
    """The routing of customer C1 (`contact` changes its profile) with `complaints`
    unresolved complaints in the days before the contact."""
    held = CustomerTickets((), tuple(NOON - timedelta(days=d + 1) for d in range(complaints)))
    count = unresolved_complaints(held, NOON, RULES.complaint_days)
    routing = route(sentiment, count, care_reason(score(0.05, **contact), Care()), RULES)
    return f"{routing.route} {routing.script_id} | {routing.reason}"


def test_negative_live_sentiment_routes_to_a_senior_agent_with_the_deescalation_script() -> None:
    answer = _assist(sentiment=-0.8)
    assert answer.startswith("senior_agent deescalate-live-anger |")
    assert "live sentiment -0.80 is below -0.40" in answer
    assert _assist(sentiment=-0.4).startswith("standard")  # at the threshold: not below it


def test_two_unresolved_complaints_route_to_a_senior_agent() -> None:
    answer = _assist(complaints=2)
    assert answer.startswith("senior_agent deescalate-repeat-complaint |")
    assert "2 complaints not resolved at first contact in the last 30 days" in answer
    assert _assist(complaints=1).startswith("standard")


def test_live_anger_takes_the_sentiment_script_over_the_complaints_one() -> None:
    assert _assist(sentiment=-0.9, complaints=3).startswith("senior_agent deescalate-live-anger")


def test_older_or_large_print_customers_get_a_dedicated_agent() -> None:
    older = _assist(age_band="60+")
    assert older == "dedicated_agent None | an older customer (age band 60+)"
    assert _assist(age_band="25-34", large_print=True).startswith("dedicated_agent None")
    # an angry older caller still goes to a senior agent, who is told about the care need
    angry = _assist(sentiment=-0.9, age_band="60+")
    assert angry.startswith("senior_agent") and "age band 60+" in angry


def test_anyone_else_gets_a_standard_agent() -> None:
    answer = _assist(sentiment=0.3, complaints=1, age_band="35-44")
    assert answer == "standard None | no anger, repeated complaints or care needs"
    assert _assist().startswith("standard")


def test_complaints_count_only_within_the_window_and_before_the_contact() -> None:
    days = (1, 5, 29.9, 31, -1)  # -1: a day after the contact
    held = CustomerTickets((), tuple(NOON - timedelta(days=d) for d in days))
    assert unresolved_complaints(held, NOON, 30) == 3
    assert route(None, 3, None, RULES).route == "senior_agent"


def _tickets(path: Path) -> Path:
    rows = [  # C1: six tickets; C2: complaints resolved at first contact, then other tickets
        ("T1", "C1", "2026-10-01", "2026-10-02", "complaint", False),
        ("T2", "C1", "2026-10-05", "2026-10-05", "package_question", True),
        ("T3", "C1", "2026-10-09", None, "network_fault", False),
        ("T4", "C1", "2026-10-03", "2026-10-04", "billing_dispute", True),
        ("T5", "C1", "2026-09-01", "2026-09-01", "complaint", True),
        ("T6", "C1", "2026-10-20", "2026-11-05", "relocation", False),
        ("T7", "C2", "2026-10-10", "2026-10-10", "complaint", True),
    ]
    table = pd.DataFrame(
        rows,
        columns=["ticket_id", "customer_id", "opened_at", "closed_at", "ticket_type", "fcr"],
    ).rename(columns={"fcr": "first_contact_resolved"})
    for column in ("opened_at", "closed_at"):
        table[column] = pd.to_datetime(table[column], utc=True)
    table["channel"] = "hotline"
    table["is_repeat"] = False
    table["sentiment"] = -0.2
    table.to_parquet(path / "service_tickets.parquet")
    return path / "service_tickets.parquet"


def test_the_ticket_index_keeps_the_last_k_newest_first_and_the_unresolved_complaints(
    tmp_path: Path,
) -> None:
    index = read_tickets(_tickets(tmp_path), 3, RULES.complaint_types, 2)
    c1 = index["C1"]
    assert [t.ticket_id for t in c1.recent] == ["T6", "T3", "T2"]
    # complaint-like and not resolved at first contact: T3 (network fault), T1 (complaint)
    assert [t.isoformat()[:10] for t in c1.unresolved_complaints] == ["2026-10-09", "2026-10-01"]
    assert index["C2"].unresolved_complaints == ()
    assert c1.recent[1].closed_at is None
    # at a contact on 2026-10-25 T6 (closed 2026-11-05) was still open
    assert c1.recent[0].as_of(datetime(2026, 10, 25, tzinfo=UTC)).closed_at is None
    assert c1.recent[0].as_of(datetime(2026, 11, 6, tzinfo=UTC)).closed_at is not None


def test_the_index_reads_again_when_the_file_changes(tmp_path: Path) -> None:
    path = _tickets(tmp_path)
    rules = RULES.model_copy(update={"tickets_file": path, "refresh_s": 1e-9})
    index = AssistIndex(rules).load()
    assert set(index.tickets.get()) == {"C1", "C2"}
    table = pd.read_parquet(path)
    table.loc[table["customer_id"] == "C2", "customer_id"] = "C3"
    table.to_parquet(path)
    assert set(index.tickets.get()) == {"C1", "C3"}


def test_cell_quality_keeps_the_last_days_per_site(tmp_path: Path) -> None:
    days = pd.date_range("2026-10-01", "2026-10-31", tz="UTC")
    table = pd.DataFrame({"cell_site_id": "S1", "day": days, "drop_rate": 0.01, "load": 0.5})
    table.to_parquet(tmp_path / "quality.parquet")
    kept = read_cell_days(tmp_path / "quality.parquet", 7)["S1"]
    assert [d.day.day for d in kept] == [25, 26, 27, 28, 29, 30, 31]


def _site_days(latest_drop: float) -> list[SiteDay]:
    start = datetime(2026, 10, 20, tzinfo=UTC)
    rates = [0.010, 0.012, 0.011, 0.009, 0.010, 0.011, latest_drop]
    return [SiteDay(start + timedelta(days=i), r, 0.6) for i, r in enumerate(rates)]


def test_cell_status_compares_the_latest_day_with_the_recent_normal() -> None:
    normal = cell_status("S1", _site_days(0.012), None, NOON, 28, 2.0)
    assert (normal.state, normal.drop_rate) == ("normal", 0.012)
    assert normal.normal_drop_rate == pytest.approx(0.0105)  # the median of the days before
    assert cell_status("S1", _site_days(0.03), None, NOON, 28, 2.0).state == "degraded"
    # days older than the window are no status at all
    assert cell_status("S1", _site_days(0.03), None, NOON + timedelta(days=60), 28, 2.0).state == (
        "unknown"
    )


def test_cell_status_with_an_open_outage_from_the_action_log(tmp_path: Path) -> None:
    log = ActionLog(open_engine(f"sqlite:///{tmp_path / 'actions.db'}"))
    planted = {
        "open": ("S1", NOON - timedelta(hours=2), NOON + timedelta(hours=3), "major"),
        "ended": ("S2", NOON - timedelta(hours=5), NOON - timedelta(hours=1), "critical"),
        "planned": ("S1", NOON + timedelta(days=2), NOON + timedelta(days=3), "critical"),
        "no_end": ("S3", NOON - timedelta(days=1), None, "minor"),
    }
    for event_id, (site, start, end, severity) in planted.items():
        payload = {
            "event_id": event_id,
            "sites": [site],
            "start": start.isoformat(),
            "expected_end": end.isoformat() if end else None,
            "severity": severity,
        }
        log.record_outage(event_id, payload, {}, NOON - timedelta(days=1))
    events = outage_events_since(log, outage_window(NOON, TimeWindow()))
    found = open_outages(events, ["S1", "S2", "S3", "S9"], NOON, 30)
    assert {site: o.event_id for site, o in found.items()} == {"S1": "open", "S3": "no_end"}
    # an outage without an expected end is not open for ever
    assert open_outages(events, ["S3"], NOON + timedelta(days=40), 30) == {}
    # nor is one the log received after the contact
    assert open_outages(events, ["S1"], NOON - timedelta(days=1, hours=1), 30) == {}
    # nor one operations restored, whatever its expected end said
    log.outages.move("no_end", "restored", NOON - timedelta(hours=1), {"ended_at": NOON})
    restored = outage_events_since(log, outage_window(NOON, TimeWindow()))
    assert "S3" not in open_outages(restored, ["S3"], NOON, 30)
    status = cell_status("S1", _site_days(0.012), found["S1"], NOON, 28, 2.0)
    assert status.state == "outage" and status.outage is not None
    assert status.outage.severity == "major" and status.drop_rate == 0.012


@pytest.fixture(scope="module")
def assisted(
    served: Served, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServingSettings]]:
    """The served world's API with the assistance index over its lifecycle tables and its
    own action log."""
    lifecycle = served.features.lifecycle_dir
    folder = tmp_path_factory.mktemp("assisted")
    settings = served.settings.model_copy(
        update={
            "action_db_url": f"sqlite:///{folder / 'actions.db'}",
            "assist": AgentAssist(
                tickets_file=lifecycle / "service_tickets.parquet",
                cell_quality_file=lifecycle / "cell_quality_daily.parquet",
                outage_refresh_s=0,  # the outage recorded below shows at once
            ),
        }
    )
    app = create_app(
        settings,
        lambda: serving_state(served, settings),
        assist=lambda: AssistIndex(settings.assist).load(),
    )
    with running(app) as url:
        yield url, settings


def _score(url: str, ids: list[str], **context: Any) -> requests.Response:
    body: dict[str, Any] = {"customer_ids": ids, "context": {"timestamp": AT, **context}}
    return requests.post(f"{url}/v1/score", json=body, headers=CRM, timeout=30)


@pytest.mark.parametrize("sentiment", [-1.5, 1.01, "angry"])
def test_a_live_sentiment_out_of_range_is_refused_naming_the_field(
    assisted: tuple[str, ServingSettings], served: Served, sentiment: object
) -> None:
    url, _ = assisted
    response = _score(url, active_ids(served)[:1], channel="call_centre", sentiment=sentiment)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == ["body.context.sentiment"]


def test_decide_takes_no_live_sentiment(
    assisted: tuple[str, ServingSettings], served: Served
) -> None:
    url, _ = assisted
    body: dict[str, Any] = {"customer_ids": active_ids(served)[:1], "context": {"sentiment": -0.5}}
    response = requests.post(f"{url}/v1/decide", json=body, headers=CRM, timeout=30)
    assert response.status_code == 422


def test_score_on_the_call_centre_channel_helps_the_agent(
    assisted: tuple[str, ServingSettings], served: Served
) -> None:
    url, settings = assisted
    lifecycle = served.features.lifecycle_dir
    tickets = pd.read_parquet(lifecycle / "service_tickets.parquet")
    tickets = tickets[tickets["opened_at"] <= pd.Timestamp(AT)]
    ids = active_ids(served)
    busiest = tickets[tickets["customer_id"].isin(ids)]["customer_id"].value_counts().index[0]
    profile = pd.read_parquet(served.features.tables_dir / "customer_profile.parquet")
    site = profile.set_index("customer_id").loc[busiest, "cell_site_id"]
    log = ActionLog(open_engine(settings.action_db_url))
    start = datetime.fromisoformat(AT) - timedelta(hours=1)
    log.record_outage(
        "fibre-cut-1",
        {
            "event_id": "fibre-cut-1",
            "sites": [str(site)],
            "start": start.isoformat(),
            "expected_end": (start + timedelta(hours=6)).isoformat(),
            "severity": "major",
        },
        {},
        start,
    )

    response = _score(url, [busiest, "C99999999"], channel="call_centre", sentiment=-0.75)
    assert response.status_code == 200, response.text
    result, unknown = response.json()["results"]
    assert unknown["error"]["code"] == "unknown_customer" and "assistance" not in unknown
    help_ = result["assistance"]
    assert (help_["route"], help_["script_id"]) == ("senior_agent", "deescalate-live-anger")
    assert "live sentiment -0.75" in help_["reason"]
    home = help_["home_cell"]
    assert home["cell_site_id"] == site and home["state"] == "outage"
    assert home["outage"]["event_id"] == "fibre-cut-1" and home["drop_rate"] is not None
    expected = tickets[tickets["customer_id"] == busiest].sort_values("opened_at", ascending=False)
    shown = help_["recent_tickets"]
    assert [t["ticket_id"] for t in shown] == list(expected["ticket_id"][: RULES.recent_tickets])
    for ticket in shown:
        assert ticket["state"] == ("open" if ticket["closed_at"] is None else "closed")
        assert isinstance(ticket["first_contact_resolved"], bool)

    # no agent on the channel, or no channel: no help (and no cost)
    for context in ({"channel": "crm_batch"}, {}):
        batch = _score(url, [busiest], **context).json()["results"][0]
        assert batch["assistance"] is None
        assert batch["churn_probability"] == result["churn_probability"]
