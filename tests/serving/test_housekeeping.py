"""`retain housekeeping`: risk lists and delivered messages older than their period are
deleted, old decisions pseudonymized; exactly the old ones, the campaign results and
budgets unchanged, a second run changes nothing, and a period that would break
attribution is refused. The action log on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from retain.base.publish import publish_folder
from retain.cli import app
from serving.action_log.database import actions, audit, decision_outcomes, open_engine, to_db
from serving.action_log.log import ActionLog
from serving.action_log.retention import ANALYTIC_DETAILS
from serving.attribution import attribute, outcome_rows, outcomes_frame
from serving.delivery import DELIVERED_AT, FileSink, _file_lock, prune_delivered
from serving.domain import ActionRecord, ActionStatus, NewAction
from serving.housekeeping import RetentionError, housekeeping, prune_risk_lists
from serving.results import campaign_results
from serving.settings import DailySettings, Experiment, ServingSettings

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SECRET = "s" * 40
REPO = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, url: str, **retention: Any) -> tuple[ServingSettings, DailySettings]:
    serving = ServingSettings.model_validate(
        {
            "action_db_url": url,
            "delivery": {"file_path": tmp_path / "actions" / "delivered.jsonl"},
            "retention": {"pseudonym_secret": SECRET, **retention},
        }
    )
    return serving, DailySettings(output_dir=tmp_path / "risk_lists")


# --- risk lists ---------------------------------------------------------------------------


def _publish(output_dir: Path, day: str) -> None:
    def write(folder: Path) -> None:
        (folder / "risk_list.csv").write_text("C1,0.3\n")

    publish_folder(output_dir / day, write)


def test_risk_lists_before_the_cutoff_day_are_deleted_whole(tmp_path: Path) -> None:
    lists = tmp_path / "risk_lists"
    for day in ("2026-07-01", "2026-08-03", "2026-08-04", "2026-11-01"):
        _publish(lists, day)
    (lists / "2026-06-01").mkdir()  # a folder from before lists were published as links
    (lists / ".2026-07-01-0123456789ab").mkdir()  # a version a crash left behind
    (lists / ".2026-11-01-0123456789ab").mkdir()
    (lists / "campaign_results.html").write_text("<html></html>")
    assert prune_risk_lists(lists, date(2026, 8, 4)) == ["2026-06-01", "2026-07-01", "2026-08-03"]
    left = sorted(p.name for p in lists.iterdir())
    assert [n for n in left if not n.startswith(".")] == [
        "2026-08-04",
        "2026-11-01",
        "campaign_results.html",
    ]
    hidden = [n for n in left if n.startswith(".")]  # the kept days' versions only
    assert len(hidden) == 3 and all(n[1:11] in ("2026-08-04", "2026-11-01") for n in hidden)
    assert (lists / "2026-08-04" / "risk_list.csv").exists()
    assert prune_risk_lists(lists, date(2026, 8, 4)) == []
    assert sorted(p.name for p in lists.iterdir()) == left


# --- delivered messages -------------------------------------------------------------------


def _line(action_id: str, delivered: datetime | None) -> str:
    message: dict[str, Any] = {"action_id": action_id, "customer_id": "C1"}
    if delivered is not None:
        message[DELIVERED_AT] = delivered.isoformat()
    return json.dumps(message) + "\n"


def test_messages_delivered_before_the_cutoff_are_removed_and_the_rest_kept(
    tmp_path: Path,
) -> None:
    path = tmp_path / "delivered.jsonl"
    cutoff = NOW - timedelta(days=30)
    lines = [
        _line("old", cutoff - timedelta(seconds=1)),
        _line("at-cutoff", cutoff),
        _line("young", NOW - timedelta(days=1)),
        _line("unstamped", None),
        "not json\n",
    ]
    path.write_text("".join(lines))
    assert prune_delivered(path, cutoff) == 1
    assert path.read_text() == "".join(lines[1:])
    assert prune_delivered(path, cutoff) == 0  # nothing old left: the file is untouched
    assert path.read_text() == "".join(lines[1:])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".delivered.jsonl.lock", path.name]
    # unstamped lines go only once the whole file was last written before the cutoff
    old = (cutoff - timedelta(days=1)).timestamp()
    os.utime(path, (old, old))
    assert prune_delivered(path, cutoff) == 2
    assert path.read_text() == "".join(lines[1:3])


def test_the_file_sink_stamps_each_message_and_pruning_never_loses_one(tmp_path: Path) -> None:
    path = tmp_path / "delivered.jsonl"
    sink = FileSink(path)
    sent = [f"A{i}" for i in range(150)]

    def send() -> None:
        for action_id in sent:
            sink.send({"action_id": action_id, "customer_id": "C1"})

    sender = threading.Thread(target=send)
    sender.start()
    rewrites = 0
    while sender.is_alive():  # an old line to remove, so the file is rewritten during appends
        with _file_lock(path), path.open("a") as out:
            out.write(_line("old", NOW - timedelta(days=400)))
        rewrites += prune_delivered(path, datetime.now(UTC) - timedelta(days=30))
    sender.join()
    assert rewrites > 10
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [m["action_id"] for m in written] == sent
    stamps = [datetime.fromisoformat(m[DELIVERED_AT]) for m in written]
    assert all(datetime.now(UTC) - timedelta(minutes=5) < s <= datetime.now(UTC) for s in stamps)
    assert prune_delivered(path, datetime.now(UTC) + timedelta(seconds=1)) == len(sent)


# --- the action log -----------------------------------------------------------------------

OLD, RECENT = NOW - timedelta(days=500), NOW - timedelta(days=100)
REASON = "an account-manager call for a customer worth 1850 (constant save rate)"


def _decision(
    customer: str, arm: str, status: ActionStatus, offer: str | None = "loyalty_discount"
) -> NewAction:
    details = {
        "reason": REASON,
        "drivers": ["unresolved_tickets", "days_to_contract_end"],
        "arm": arm,
        "assignment_probability": 0.9 if arm == "policy" else 0.05,
        "offer_id": offer,
        "cost": 30.0,
        "estimated_effect": 0.021,
        "churn_probability": 0.31,
        "customer_value": 1850.0,
        "churn_model": "churn v3",
        "effect_model": "churn_effects v2",
        "segment": "consumer" if customer != "C3" else "enterprise",
        "contract_type": "one_year",
    }
    suppressed = status == ActionStatus.SUPPRESSED
    return NewAction(
        customer,
        "retention_offer",
        "day",
        status,
        "decide",
        None if suppressed else "sms",
        expected_value=12.5,
        region="harbour",
        details=details,
        suppressions=[
            {"code": "frequency_cap", "message": "2 sms in 7 days (cap 2)", "channel": "sms"}
        ]
        if suppressed
        else [],
    )


def _notice(customer: str) -> NewAction:
    details = {"event_id": "NOC-1", "sites": ["S00001"], "severity": "major", "start": "x"}
    return NewAction(
        customer, "outage_notice", "outage:NOC-1", ActionStatus.QUEUED, "outage", "sms",
        details={"reason": "network outage NOC-1 at the customer's home cell", **details},
    )  # fmt: skip


def _plant(log: ActionLog, at: datetime, day: str) -> list[ActionRecord]:
    """A day of decisions at `at`: settled, control, suppressed, still queued, a notice."""
    new = [
        _decision("C1", "policy", ActionStatus.QUEUED),
        _decision("C2", "control", ActionStatus.CONTROL),
        _decision("C3", "policy", ActionStatus.SUPPRESSED),
        _decision("C4", "exploration", ActionStatus.QUEUED, offer="data_boost"),
        _decision("C5", "policy", ActionStatus.QUEUED),  # never delivered: still pending
        _notice("C1"),
    ]
    new = [NewAction(**{**vars(n), "dedupe_key": f"{n.dedupe_key}:{day}"}) for n in new]
    records = [record for record, _ in log.record(new, at)]
    later = at + timedelta(hours=1)
    for record in records:
        if record.customer_id in ("C1", "C4"):
            log.set_outcome(record.id, "delivered", later)
    log.set_outcome(records[0].id, "accepted", later)
    log.set_outcome(records[3].id, "declined", later)
    return records


def _attribute(
    log: ActionLog, records: list[ActionRecord], churned_at: dict[str, datetime]
) -> None:
    """Outcome rows as `retain attribute` writes them."""
    marketing = [r for r in records if "arm" in r.details]
    left = pd.Series({c: pd.Timestamp(t) for c, t in churned_at.items()})
    rows = outcome_rows(marketing, left, pd.Timestamp(NOW), set(), NOW)
    stored = [
        {**r, **{k: to_db(r[k]) for k in ("decided_at", "sent_at")}, "updated_at": to_db(NOW)}  # type: ignore[arg-type]
        for r in rows
    ]
    with log.engine.begin() as connection:
        connection.execute(insert(decision_outcomes), stored)


def _table(log: ActionLog, table: Any) -> pd.DataFrame:
    with log.engine.connect() as connection:
        return pd.DataFrame(connection.execute(select(table)).mappings().all())


def _aggregates(log: ActionLog) -> dict[str, Any]:
    """What the campaign results, budgets and reports count."""
    frame = _table(log, actions)
    frame["arm"] = frame["details"].map(lambda d: (d or {}).get("arm"))
    frame["offer_id"] = frame["details"].map(lambda d: (d or {}).get("offer_id"))
    frame["cost"] = frame["details"].map(lambda d: (d or {}).get("cost"))
    by = ["arm", "action_type", "offer_id", "status"]
    counts = frame.groupby(by, dropna=False).agg(n=("id", "size"), cost=("cost", "sum"))
    results = campaign_results(outcomes_frame(log), "60d")
    since, until = NOW - timedelta(days=1000), NOW
    return {
        "counts": counts.reset_index().to_json(),  # JSON: a missing value equals itself
        "tables": [
            table.to_json()
            for table in (
                results.arms,
                results.overall,
                results.by_action,
                results.by_segment,
                results.by_month,
            )
        ],
        "spent": [log.spent(kind, since, until) for kind in ("retention_offer", "outage_notice")],
    }


def _pseudonym(customer: str) -> str:
    return "anon:" + hmac.new(SECRET.encode(), customer.encode(), hashlib.sha256).hexdigest()[:32]


def test_housekeeping_removes_and_pseudonymizes_exactly_the_old_and_changes_no_figure(
    action_db_url: str, tmp_path: Path
) -> None:
    serving, daily = _settings(tmp_path, action_db_url)
    log = ActionLog(open_engine(action_db_url))
    old, recent = _plant(log, OLD, "old"), _plant(log, RECENT, "recent")
    _attribute(
        log, old + recent, {"C4": OLD + timedelta(days=20), "C2": RECENT + timedelta(days=9)}
    )
    for day in ("2026-07-01", "2026-08-04", "2026-11-01"):
        _publish(daily.output_dir, day)
    messages = serving.delivery.file_path
    messages.parent.mkdir(parents=True)
    messages.write_text(_line("A-old", NOW - timedelta(days=31)) + _line("A-new", NOW))
    before_actions = _table(log, actions).set_index("id")
    before_outcomes = _table(log, decision_outcomes).set_index("action_id")
    figures = _aggregates(log)
    trail = [(OLD, "C1"), (OLD, None), (RECENT, "C1")]  # who read C1, then a list read
    with log.engine.begin() as connection:
        connection.execute(
            insert(audit),
            [
                {"at": at, "caller": "crm", "roles": "crm", "method": "GET",
                 "route": "/v1/customers/{customer_id}/actions", "customer_id": customer,
                 "status": 200, "request_id": None}
                for at, customer in trail
            ],
        )  # fmt: skip

    done = housekeeping(serving, daily, log, NOW)
    read = _table(log, audit).sort_values("id")
    assert done.audit == 1
    assert read["customer_id"].tolist()[1:] == [None, "C1"]  # the recent read keeps its customer
    assert read["customer_id"].iat[0] == _pseudonym("C1")  # as C1's old decisions

    assert done.risk_list_days == ["2026-07-01"]
    assert sorted(p.name for p in daily.output_dir.glob("????-??-??")) == [
        "2026-08-04",
        "2026-11-01",
    ]
    assert done.messages == 1
    assert [json.loads(line)["action_id"] for line in messages.open()] == ["A-new"]
    pending = {r.id for r in old if r.customer_id == "C5"}  # never delivered: keeps its customer
    changed = {r.id for r in old} - pending
    assert done.actions == len(changed) == 5
    assert done.outcomes == len([r for r in old if "arm" in r.details and r.id not in pending])
    after = _table(log, actions).set_index("id")
    for action_id, row in after.iterrows():
        was = before_actions.loc[action_id]
        if action_id not in changed:
            assert row.equals(was)
            continue
        assert row["customer_id"] == _pseudonym(was["customer_id"])  # keyed, stable
        assert set(row["details"]) <= ANALYTIC_DETAILS and "reason" not in row["details"]
        assert row["details"] == {k: v for k, v in was["details"].items() if k in ANALYTIC_DETAILS}
        assert all(set(s) == {"code", "channel"} for s in row["suppressions"])
        personal = ["customer_id", "details", "suppressions"]
        assert row.drop(personal).equals(was.drop(personal))
    # both old decisions of C1 (the offer and the outage notice) share one pseudonym
    c1 = after.loc[[r.id for r in old if r.customer_id == "C1"], "customer_id"]
    assert c1.nunique() == 1 and len(c1) == 2
    outcomes = _table(log, decision_outcomes).set_index("action_id")
    for action_id, row in outcomes.iterrows():
        expected = after.loc[action_id, "customer_id"]
        assert row["customer_id"] == expected
        was = before_outcomes.loc[action_id]
        assert row.drop("customer_id").equals(was.drop("customer_id"))
    assert _aggregates(log) == figures

    # a second run the same day changes nothing
    again = housekeeping(serving, daily, log, NOW)
    assert (again.risk_list_days, again.messages, again.actions, again.outcomes, again.audit) == (
        [],
        0,
        0,
        0,
        0,
    )
    assert _table(log, actions).set_index("id").equals(after)
    # attribution leaves pseudonymized decisions' outcomes as they are
    lifecycle = tmp_path / "lifecycle"
    lifecycle.mkdir()
    churn = {"customer_id": ["C2"], "churned_at": [pd.Timestamp(RECENT + timedelta(days=9))]}
    pd.DataFrame(churn).to_parquet(lifecycle / "churn_events.parquet")
    attribute(
        log, lifecycle, pd.Timestamp(NOW), datetime(2000, 1, 1, tzinfo=UTC), NOW, Experiment()
    )
    kept = _table(log, decision_outcomes).set_index("action_id")
    anonymous = outcomes[outcomes["customer_id"].str.startswith("anon:")]
    assert len(anonymous) == done.outcomes
    assert kept.loc[anonymous.index].equals(anonymous)


def test_a_retention_shorter_than_attribution_or_the_offer_cooldown_is_refused(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'actions.db'}"
    log = ActionLog(open_engine(url))
    serving, daily = _settings(tmp_path, url, action_log_personal_days=59)
    with pytest.raises(RetentionError, match="at least 60 days, the attribution horizon"):
        housekeeping(serving, daily, log, NOW)
    serving, daily = _settings(tmp_path, url, action_log_personal_days=80)
    longer = serving.model_copy(
        update={"contact": serving.contact.model_copy(update={"offer_cooldown_days": 90})}
    )
    with pytest.raises(RetentionError, match=r"at least 90 days, contact\.offer_cooldown_days"):
        housekeeping(longer, daily, log, NOW)
    short_secret = serving.model_copy(
        update={"retention": serving.retention.model_copy(update={"pseudonym_secret": None})}
    )
    with pytest.raises(RetentionError, match="RETAIN_SERVING_RETENTION__PSEUDONYM_SECRET"):
        housekeeping(short_secret, daily, log, NOW)


def test_the_command_prints_what_it_removed_and_refuses_a_short_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'actions.db'}"
    log = ActionLog(open_engine(url))
    _plant(log, OLD, "old")
    _publish(tmp_path / "risk_lists", "2026-01-05")
    monkeypatch.setenv("RETAIN_CONFIG_DIR", str(REPO / "configs"))
    monkeypatch.setenv("RETAIN_SERVING_ACTION_DB_URL", url)
    monkeypatch.setenv("RETAIN_SERVING_DELIVERY__FILE_PATH", str(tmp_path / "delivered.jsonl"))
    monkeypatch.setenv("RETAIN_DAILY_OUTPUT_DIR", str(tmp_path / "risk_lists"))
    monkeypatch.setenv("RETAIN_SERVING_RETENTION__PSEUDONYM_SECRET", SECRET)
    runner = CliRunner()
    result = runner.invoke(app, ["housekeeping", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    assert "risk lists older than 90 days: 1 deleted (2026-01-05)" in result.output
    assert "delivered messages older than 30 days: 0 removed" in result.output
    assert (
        "action log, decisions before 2025-09-28: 5 pseudonymized (0 outcome rows, 0 audit rows)"
        in result.output
    )
    again = runner.invoke(app, ["housekeeping", "--now", NOW.isoformat()])
    assert "1 deleted" not in again.output and ": 0 pseudonymized" in again.output
    monkeypatch.setenv("RETAIN_SERVING_RETENTION__ACTION_LOG_PERSONAL_DAYS", "30")
    refused = runner.invoke(app, ["housekeeping"])
    assert refused.exit_code == 2
    assert "action_log_personal_days is 30: it must be at least 60 days" in refused.output
