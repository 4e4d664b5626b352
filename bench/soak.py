"""Benchmark: soak and faults, `retain serve` under mixed traffic with a database crash
and a worker killed on the way, one run.

`retain serve` with 2 uvicorn workers, its action log on a real PostgreSQL on loopback
(a throwaway cluster, `tests/postgres.py`) and its delivery worker writing to a file
sink, takes `--clients` concurrent clients for `--minutes`, all on the active customers
homed on a few random cell sites (`--customers`, about 2,000): single-customer
`/v1/score` and `/v1/decide`, `GET /v1/customers/{id}/actions` for customers with
actions, `accepted` outcomes for the delivered actions seen there, and an outage event
on one of the sites 5 s after the last from an operations client (retried with the same
id until it is taken). After a 20 s warm-up, at about 30 % of the run PostgreSQL is stopped
(`immediate`: a crash) for 20 s and started again; at about 60 % one worker is SIGKILLed
and uvicorn's supervisor replaces it. A fault's window runs from its injection until
`/readyz` answers 200 again, plus `GRACE_S`.

Printed: throughput (overall and per route), p50/p99 latency of the 2xx answers per
route, errors by route, status and error code, inside and outside the windows; a
reconciliation of the actions acknowledged by `/v1/decide` and of the outage events
against the action log, and of the outbox against the delivery sink's lines once
delivery has drained; the workers' resident memory. Targets, PASS or FAIL each (exit
status 1 on a FAIL):

- no 5xx outside the windows, only 503 inside them; connections dropped only by the kill;
- no action lost or duplicated: every acknowledged id stored, one row per idempotency
  key, each outage event's notices stored once per reachable customer, every message of
  the outbox in the sink, and twice only when the sink took it just before a fault lost
  its `delivered` mark (delivery is at least once; the receiver drops the repeat by
  action id);
- each worker's resident memory (psutil RSS) grows less than 5 % from MEMORY_WARMUP_S
  after it started taking requests to the end (the survivor of the kill, and its
  replacement when it is old enough).

Needs the demo project (`make run`: feature tables, online store, champion) and
PostgreSQL's binaries (Debian's `postgresql`, as for the tests).

    .venv/bin/python bench/soak.py                   # 10 minutes of load, about 14 in all
    .venv/bin/python bench/soak.py --minutes 1.5     # a trial: the faults, little soak
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.settings import FeatureSettings  # noqa: E402
from retain.base.settings import load_settings  # noqa: E402
from serving.action_log.database import actions, outage_events, outbox  # noqa: E402
from serving.home_cells import HomeCells  # noqa: E402
from tests.postgres import Cluster, fresh_database, owned_cluster  # noqa: E402

API_KEY = "soak-" + "k" * 27
BIN = Path(sys.executable).parent
WARMUP_S = 20.0
# The workers' RSS is not steady yet when the load's warm-up ends: in a 10-minute run it
# still rose 9 % between 20 s and 60 s (the outage index, caches, connection pools).
MEMORY_WARMUP_S = 90.0
DATABASE_DOWN_S = 20.0
GRACE_S = 5.0  # after /readyz answers 200: the other worker's probe runs every second
SAMPLE_S = 2.0  # how often the workers' memory is read
# A worker builds its outage index (who is homed on which cell site: 40 to 65 MiB of
# RSS) at the first outage event it serves. Events this often reach every worker, the
# replacement too, well within its memory warm-up, so the one-off step is not counted
# as growth.
OUTAGE_EVERY_S = 5.0
TIMEOUT_S = 30.0  # a client gives up on a request after this (status 0, "timeout")
DRAIN_TIMEOUT_S = 240.0  # a message claimed by the killed worker waits out its 60 s lease
IN_FLIGHT_S = 1.0  # a message the sink took this shortly before a fault may lack its mark
SETTLED_BY_OUTCOME = "settled by outcome"  # the outbox's note when an outcome came first
KILL = "worker SIGKILL"
RECONNECT_EVERY = 50  # requests per client connection
STARTED = "Application startup complete."  # a worker's log line once it takes requests


@dataclass(frozen=True)
class Sample:
    route: str
    status: int  # 0: no HTTP answer (connection dropped or timed out)
    code: str  # the error body's code, "" for a 2xx
    started: float  # seconds since the load started
    latency: float


@dataclass
class Window:
    fault: str
    start: float
    end: float = float("inf")


@dataclass
class Shared:
    """What the clients learn and the reconciliation checks afterwards."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    samples: list[Sample] = field(default_factory=list)
    acknowledged: dict[str, tuple[str, str]] = field(default_factory=dict)  # id: customer, type
    with_actions: list[str] = field(default_factory=list)  # customers with acknowledged actions
    delivered: set[str] = field(default_factory=set)  # delivered action ids, no outcome yet
    outcome_sent: set[str] = field(default_factory=set)
    outages: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id: its counts


class Client:
    """One session sending requests and recording each answer."""

    def __init__(self, base: str, shared: Shared, t0: float) -> None:
        self.base, self.shared, self.t0 = base, shared, t0
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = API_KEY
        self.sent = 0

    def call(self, route: str, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of a 2xx, else None; the sample is recorded either way."""
        self.sent += 1
        if self.sent % RECONNECT_EVERY == 0:
            # kept-alive connections stay with the worker that accepted them: new ones
            # spread the load over both workers, and reach the replacement after the kill
            self.session.close()
        started = time.monotonic()
        status, code, answer = 0, "connection_error", None
        try:
            response = self.session.request(method, self.base + path, json=body, timeout=TIMEOUT_S)
            status, code = response.status_code, ""
            answer = response.json()
            if not response.ok:
                code, answer = str(answer.get("error", {}).get("code", "")), None
        except requests.Timeout:
            code = "timeout"
        except requests.ConnectionError:
            pass
        except ValueError:
            code = "not_json"
        sample = Sample(route, status, code, started - self.t0, time.monotonic() - started)
        with self.shared.lock:
            self.shared.samples.append(sample)
        return answer


def crm_client(
    base: str, shared: Shared, customers: list[str], seed: int, t0: float, stop: threading.Event
) -> None:
    """Mixed CRM traffic: 40 % score, 35 % decide, 20 % a customer's actions, 5 % an
    outcome (when a delivered action has been seen; a score otherwise)."""
    client, rng = Client(base, shared, t0), random.Random(seed)
    while not stop.is_set():
        draw = rng.random()
        with shared.lock:
            action_id = shared.delivered.pop() if draw < 0.05 and shared.delivered else None
            if action_id is not None:
                shared.outcome_sent.add(action_id)
            known = rng.choice(shared.with_actions) if shared.with_actions else None
        if action_id is not None:
            client.call(
                "outcome", "POST", f"/v1/actions/{action_id}/outcome", {"outcome": "accepted"}
            )
        elif draw < 0.25 and known is not None:
            found = client.call("actions", "GET", f"/v1/customers/{known}/actions")
            with shared.lock:
                shared.delivered |= {
                    a["id"]
                    for a in found or []
                    if a["status"] == "delivered" and a["id"] not in shared.outcome_sent
                }
        elif draw < 0.60:
            customer = rng.choice(customers)
            decided = client.call("decide", "POST", "/v1/decide", {"customer_ids": [customer]})
            made = [a for r in (decided or {}).get("results", []) for a in r.get("actions", [])]
            with shared.lock:
                for action in made:
                    shared.acknowledged[action["id"]] = (
                        action["customer_id"],
                        action["action_type"],
                    )
                if made and customer not in shared.with_actions:
                    shared.with_actions.append(customer)
        else:
            customer = rng.choice(customers)
            client.call("score", "POST", "/v1/score", {"customer_ids": [customer]})


def ops_client(
    base: str, shared: Shared, sites: list[str], seed: int, t0: float, stop: threading.Event
) -> None:
    """An outage event on a random site OUTAGE_EVERY_S after the last was taken, retried
    with the same id until it is taken (a retry must not notify anyone twice)."""
    client, rng = Client(base, shared, t0), random.Random(seed)
    number = 0
    while not stop.is_set():
        number += 1
        now = datetime.now(UTC)
        event_id = f"soak-{seed}-{number}"
        event = {
            "event_id": event_id,
            "sites": [rng.choice(sites)],
            "start": (now - timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
            "expected_end": (now + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
            "severity": "major",
        }
        while not stop.is_set():
            # idle about as long as the server keeps a connection alive (5 s): a new one,
            # not one the server may be closing at that instant
            client.session.close()
            counts = client.call("outage", "POST", "/v1/events/outage", event)
            if counts is not None:
                with shared.lock:
                    shared.outages[event_id] = counts
                break
            stop.wait(2)
        stop.wait(OUTAGE_EVERY_S)


# --- the server, its workers and the database --------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int, db_url: str, sink: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RETAIN_API_KEYS": f"{API_KEY}:crm+ops",
        "RETAIN_SERVING_PORT": str(port),
        "RETAIN_SERVING_WORKERS": "2",
        "RETAIN_SERVING_ACTION_DB_URL": db_url,
        "RETAIN_SERVING_LIMITS__RATE_LIMIT": "off",  # one key for every client: not the limiter
        "RETAIN_SERVING_PROBE_INTERVAL_S": "1",  # /readyz follows the database within a second
        "RETAIN_SERVING_DELIVERY__SINK": "file",
        "RETAIN_SERVING_DELIVERY__FILE_PATH": str(sink),
        "RETAIN_SERVING_DELIVERY__INTERVAL_S": "1",
        # the model watcher reads the registry as in production: part of what must stay flat
        "RETAIN_SERVING_RELOAD_INTERVAL_S": "30",
        # no quiet hours: nothing is deferred by the clock, so everything queued is due
        "RETAIN_SERVING_CONTACT__QUIET_START": "00:00",
        "RETAIN_SERVING_CONTACT__QUIET_END": "00:00",
    }
    return subprocess.Popen(
        [str(BIN / "retain"), "serve"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def ready(base: str) -> bool:
    try:
        return requests.get(base + "/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("retain serve exited (see its log)")
        if ready(base):
            return
        time.sleep(0.5)
    raise SystemExit(f"retain serve not ready after {timeout_s:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def workers(server: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """uvicorn's worker processes: the children multiprocessing spawned (its resource
    tracker, also a child, is not one)."""
    found = []
    for child in psutil.Process(server.pid).children():
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def started_workers(log: Path) -> int:
    """How many workers have started taking requests since the server started."""
    return log.read_text(errors="replace").count(STARTED)


def wait_started(log: Path, count: int, timeout_s: float = 360) -> None:
    """Until `count` workers have started (a replacement: the supervisor may take its
    liveness timeout to notice the death, then the start itself)."""
    deadline = time.monotonic() + timeout_s
    while started_workers(log) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"fewer than {count} workers started after {timeout_s:.0f} s")
        time.sleep(0.5)


@dataclass
class Memory:
    """The workers' resident memory, sampled every SAMPLE_S, per process."""

    rss: dict[int, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))
    serving_since: dict[int, float] = field(default_factory=dict)  # the originals: from 0

    def sample(self, server: subprocess.Popen[bytes], t: float) -> None:
        for worker in workers(server):
            try:
                self.rss[worker.pid].append((t, worker.memory_info().rss))
            except psutil.NoSuchProcess:
                continue

    def growth(self, alive: list[int]) -> tuple[float | None, float | None, list[str]]:
        """The RSS growth of each worker alive at the end, from its first sample
        MEMORY_WARMUP_S after it started taking requests to its last: the largest, that
        of their sum, and lines per worker.

        Per worker, not one sum across the run: the killed worker's memory went with it,
        and its replacement starts small and fills up in its own warm-up, so a sum across
        the kill would read the replacement's start as shrinkage, and the sum of the
        survivor (the only worker that soaked the whole run) and a young replacement
        would dilute the survivor's growth. A replacement too young to have a steady
        state is left out, and said so."""
        lines: list[str] = []
        growths: list[float] = []
        first = last = 0
        for pid in alive:
            since = self.serving_since.get(pid, 0.0)
            by_minute = {int(t // 60): rss for t, rss in self.rss[pid]}  # each minute's last
            trend = ", ".join(f"{rss / 2**20:.0f}" for _, rss in sorted(by_minute.items()))
            steady = [(t, rss) for t, rss in self.rss[pid] if t >= since + MEMORY_WARMUP_S]
            if len(steady) < 2:
                lines.append(f"worker {pid}: no steady-state sample (serving since {since:.0f} s)")
                continue
            (t_first, rss_first), (t_last, rss_last) = steady[0], steady[-1]
            first, last = first + rss_first, last + rss_last
            growths.append(rss_last / rss_first - 1)
            lines.append(
                f"worker {pid}: {rss_first / 2**20:.1f} MiB at {t_first:.0f} s -> "
                f"{rss_last / 2**20:.1f} MiB at {t_last:.0f} s ({growths[-1]:+.2%})"
            )
            lines.append(f"  MiB at the end of each minute from minute {min(by_minute)}: {trend}")
        return (max(growths) if growths else None), (last / first - 1 if first else None), lines


def in_play(count: int, seed: int) -> tuple[list[str], list[str]]:
    """Random cell sites and the active customers homed on them, about `count`. The CRM
    clients and the outage events reach the same customers, so what a worker's caches can
    add while the run goes on (the exact contributions per decision path: about 1.5 KB a
    customer) is bounded, about 3 MB for 2,000, under 1 % of a worker; with every active
    customer (13,530 in the demo) it would fill, up to about 20 MB, for most of the run
    and read as growth."""
    home = HomeCells.of(load_settings(FeatureSettings).tables_dir)
    if home is None:
        raise SystemExit("no feature tables: run `make run` first")
    sites: list[str] = []
    customers: list[str] = []
    for site in random.Random(seed).sample(sorted(home.by_site), len(home.by_site)):
        if len(customers) >= count:
            break
        sites.append(site)
        customers += home.by_site[site]
    return sorted(sites), sorted(customers)


# --- the run -----------------------------------------------------------------------------------


def run_faults(
    base: str,
    server: subprocess.Popen[bytes],
    log: Path,
    cluster: Cluster,
    memory: Memory,
    minutes: float,
    seed: int,
    elapsed: Callable[[], float],
) -> list[Window]:
    """The schedule: database crash and restart at ~30 %, a worker SIGKILLed at ~60 %,
    each after the previous fault has recovered; then the load runs to the end."""
    total = 60 * minutes
    windows = []

    def recovered(window: Window) -> None:
        deadline = time.monotonic() + 180
        while not ready(base):
            if time.monotonic() > deadline:
                raise SystemExit(f"{window.fault}: /readyz not 200 after 180 s")
            time.sleep(0.25)
        window.end = elapsed() + GRACE_S

    time.sleep(max(0.0, max(WARMUP_S, 0.3 * total) - elapsed()))
    database = Window("database restart", elapsed())
    windows.append(database)
    cluster.stop("immediate")  # a crash: committed work must survive WAL replay
    time.sleep(DATABASE_DOWN_S)
    cluster.start()
    recovered(database)
    back = database.end - GRACE_S
    print(f"database down at {database.start:.0f} s, service ready again at {back:.0f} s")

    time.sleep(max(0.0, max(database.end + 5, 0.6 * total) - elapsed()))
    before = workers(server)
    victim = random.Random(seed).choice(sorted(before, key=lambda p: p.pid))
    kill = Window(KILL, elapsed())
    windows.append(kill)
    victim.send_signal(signal.SIGKILL)
    recovered(kill)
    back = kill.end - GRACE_S
    print(f"worker {victim.pid} killed at {kill.start:.0f} s, /readyz 200 at {back:.0f} s")
    wait_started(log, len(before) + 1)
    for worker in workers(server):
        if worker not in before:
            memory.serving_since[worker.pid] = elapsed()
            print(f"worker {worker.pid} replaced it, taking requests from {elapsed():.0f} s")

    time.sleep(max(0.0, max(kill.end + 10, total) - elapsed()))
    return windows


def drain(engine: Engine, timeout_s: float = DRAIN_TIMEOUT_S) -> int:
    """Wait until the outbox holds no undelivered message; how many are left."""
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as connection:
            left = connection.execute(
                select(func.count()).select_from(outbox).where(outbox.c.delivered_at.is_(None))
            ).scalar_one()
        if left == 0 or time.monotonic() > deadline:
            return int(left)
        time.sleep(2)


@dataclass
class Target:
    name: str
    passed: bool
    detail: str


def overlapping(sample: Sample, windows: list[Window]) -> Window | None:
    """The fault window the request overlaps (it started before the window ended and
    ended after the window started), if any."""
    for window in windows:
        if sample.started <= window.end and sample.started + sample.latency >= window.start:
            return window
    return None


def traffic_report(samples: list[Sample], windows: list[Window], seconds: float) -> Target:
    """Throughput, latency and errors; the target on 5xx and dropped connections."""
    by_route: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_route[sample.route].append(sample)
    print(f"\n{len(samples):,} requests in {seconds:.0f} s: {len(samples) / seconds:.1f} req/s")
    print("\n| route | requests | req/s | 2xx p50 ms | 2xx p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for route, found in sorted(by_route.items()):
        ok = np.array([s.latency for s in found if 200 <= s.status < 300]) * 1000
        p50, p99 = np.percentile(ok, [50, 99]) if len(ok) else (np.nan, np.nan)
        rate, errors = len(found) / seconds, len(found) - len(ok)
        print(f"| {route} | {len(found):,} | {rate:.1f} | {p50:.1f} | {p99:.1f} | {errors:,} |")

    failures: Counter[tuple[str, int, str, str]] = Counter()
    bad = 0
    for sample in samples:
        if 200 <= sample.status < 300:
            continue
        window = overlapping(sample, windows)
        failures[(sample.route, sample.status, sample.code, window.fault if window else "")] += 1
        if sample.status >= 500 or sample.status == 0:  # a 4xx is the caller's own doing
            allowed = window is not None and (
                sample.status == 503 or (sample.status == 0 and window.fault == KILL)
            )
            bad += not allowed
    print("\n| route | status | code | when | count |")
    print("|---|---|---|---|---|")
    for (route, status, code, where), count in sorted(failures.items()):
        print(f"| {route} | {status or 'none'} | {code} | {where or 'outside'} | {count:,} |")
    for window in windows:
        print(f"window {window.fault}: {window.start:.1f} s to {window.end:.1f} s")
    return Target(
        "no 5xx outside the fault windows, only 503 in them; dropped connections only at the kill",
        bad == 0,
        f"{bad} answers outside what is allowed",
    )


def sink_lines(sink: Path) -> tuple[Counter[str], dict[str, datetime]]:
    """The file sink's lines per action id, and when each action was first written."""
    sent: Counter[str] = Counter()
    first: dict[str, datetime] = {}
    for line in sink.read_text().splitlines() if sink.exists() else []:
        message = json.loads(line)
        sent[message["action_id"]] += 1
        first.setdefault(message["action_id"], datetime.fromisoformat(message["delivered_at"]))
    return sent, first


def reconcile(
    engine: Engine,
    shared: Shared,
    sink: Path,
    undelivered: int,
    windows: list[Window],
    started: datetime,
) -> Target:
    """Acknowledged vs stored vs delivered.

    Delivery is at least once: a message the sink took just before a fault, whose
    `delivered` mark the crash or the database then lost, is sent again when its claim
    runs out, and the receiver drops the repeat by action id. So a repeat is expected
    when the first copy was written inside a fault window or within IN_FLIGHT_S before
    it; any other repeat is a duplicate."""
    with engine.connect() as connection:
        stored = {
            row.id: row
            for row in connection.execute(
                select(
                    actions.c.id,
                    actions.c.customer_id,
                    actions.c.action_type,
                    actions.c.dedupe_key,
                    actions.c.status,
                )
            )
        }
        messages = {row.action_id: row for row in connection.execute(select(outbox))}
        events = {row.event_id for row in connection.execute(select(outage_events.c.event_id))}
    sent, first_sent = sink_lines(sink)

    lost = [i for i in shared.acknowledged if i not in stored]
    mismatched = [
        i for i, (customer, kind) in shared.acknowledged.items()
        if i in stored and (stored[i].customer_id, stored[i].action_type) != (customer, kind)
    ]  # fmt: skip
    keys = Counter((r.customer_id, r.action_type, r.dedupe_key) for r in stored.values())
    twice = [k for k, n in keys.items() if n > 1]
    notices = Counter(r.dedupe_key for r in stored.values() if r.action_type == "outage_notice")
    event_errors = [
        event
        for event, counts in shared.outages.items()
        if event not in events
        or notices[f"outage:{event}"] != counts["affected"] - counts["unreachable"]
    ]
    settled = {
        i for i, m in messages.items() if (m.last_error or "").startswith(SETTLED_BY_OUTCOME)
    }
    to_send = set(messages) - settled
    never = [i for i in to_send if sent[i] == 0]
    repeated = [i for i in messages if sent[i] > 1]

    def in_flight(action_id: str) -> bool:
        at = (first_sent[action_id] - started).total_seconds()
        return any(w.start - IN_FLIGHT_S <= at <= w.end for w in windows)

    expected = [i for i in repeated if in_flight(i)]
    stray = [i for i in sent if i not in messages]
    by_status = Counter(r.status for r in stored.values())

    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(by_status.items()))
    print("\nreconciliation")
    print(f"  acknowledged by /v1/decide: {len(shared.acknowledged):,} action ids")
    print(f"  stored: {len(stored):,} actions ({statuses})")
    print(f"  acknowledged but not stored: {len(lost)}")
    print(f"  acknowledged, stored as another customer or type: {len(mismatched)}")
    print(f"  idempotency keys stored more than once: {len(twice)}")
    print(f"  outage events acknowledged: {len(shared.outages)}, of which missing or with a wrong")
    print(f"    number of notices (one per reachable customer): {len(event_errors)}")
    print(f"  outbox: {len(messages):,} messages, {len(settled)} settled by an outcome first,")
    print(f"    {undelivered} still undelivered after the drain")
    print(f"  delivery sink: {sum(sent.values()):,} lines for {len(sent):,} actions; never sent:")
    print(
        f"    {len(never)}, not in the outbox: {len(stray)}, sent more than once: {len(repeated)}"
    )
    print(f"    of which in flight at a fault (the receiver drops the repeat): {len(expected)}")
    for name, ids in (("lost", lost), ("never sent", never), ("sent twice", repeated)):
        if ids:
            print(f"  {name}, e.g.: {sorted(ids)[:5]}")
    problems = len(lost) + len(mismatched) + len(twice) + len(event_errors) + undelivered
    problems += len(never) + len(repeated) - len(expected) + len(stray)
    return Target(
        "no action lost or duplicated (stored once; sent once, or again only if in flight at a "
        "fault)",
        problems == 0,
        f"{problems} problems",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long the load runs")
    parser.add_argument("--clients", type=int, default=16, help="concurrent CRM clients")
    parser.add_argument("--customers", type=int, default=2000, help="about this many in play")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.minutes * 60 < 2 * WARMUP_S:
        raise SystemExit("--minutes: at least 0.7 (the faults come after the warm-up)")

    sites, customers = in_play(args.customers, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    sink, log = folder / "delivered.jsonl", folder / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"{len(customers):,} customers homed on {len(sites)} sites, {args.clients} clients, "
          f"{args.minutes:g} minutes, {os.cpu_count()} cores; server log {log}")  # fmt: skip

    with owned_cluster() as cluster:
        db_url = fresh_database(cluster.url)
        server = start_server(port, db_url, sink, log)
        shared, memory, stop = Shared(), Memory(), threading.Event()
        try:
            wait_ready(base, server)
            wait_started(log, 2)  # /readyz answered from one: the load starts on both
            t0, started = time.monotonic(), datetime.now(UTC)

            def elapsed() -> float:
                return time.monotonic() - t0

            def sample_memory() -> None:
                while not stop.wait(SAMPLE_S):
                    memory.sample(server, elapsed())

            threads = [
                threading.Thread(
                    target=crm_client,
                    args=(base, shared, customers, 1000 * args.seed + i, t0, stop),
                )
                for i in range(args.clients)
            ]
            ops = (base, shared, sites, args.seed, t0, stop)
            threads.append(threading.Thread(target=ops_client, args=ops))
            threads.append(threading.Thread(target=sample_memory))
            memory.sample(server, 0.0)
            for thread in threads:
                thread.start()
            windows = run_faults(
                base, server, log, cluster, memory, args.minutes, args.seed, elapsed
            )
            memory.sample(server, elapsed())
            alive = [p.pid for p in workers(server)]
            stop.set()
            seconds = elapsed()
            for thread in threads:
                thread.join()
            engine = create_engine(db_url)
            undelivered = drain(engine)
        finally:
            stop.set()
            stop_server(server)

        targets = [traffic_report(shared.samples, windows, seconds)]
        targets.append(reconcile(engine, shared, sink, undelivered, windows, started))
        engine.dispose()

    worst, total, lines = memory.growth(alive)
    print(f"\nworkers' resident memory, from {MEMORY_WARMUP_S:.0f} s after each started serving")
    for line in lines:
        print(f"  {line}")
    if total is not None:
        print(f"  sum of the workers above: {total:+.2%}")
    targets.append(
        Target(
            "each worker's resident memory grows < 5 %",
            worst is not None and worst < 0.05,
            "not measured" if worst is None else f"at most {worst:+.2%}",
        )
    )
    print()
    for target in targets:
        print(f"{'PASS' if target.passed else 'FAIL'}  {target.name}: {target.detail}")
    if all(t.passed for t in targets):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"server log and delivery sink kept in {folder}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
