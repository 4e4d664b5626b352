"""Benchmark: single-customer scoring with reasons over HTTP, ours vs two peers, one run.

Systems, each with the same number of uvicorn worker processes, on loopback:

- ours: `retain serve`, `POST /v1/score` for one customer: online features, calibrated
  risk, exact reasons, proposed actions with contact-policy verdicts (API key checked);
- ours, no cache: the same with `explanation_cache: 0` (TreeSHAP on every request);
- ours, assisted: the same call from a call-centre agent (`context.channel` call_centre and
  a live sentiment): with the agent's help (routing, home cell status, recent tickets);
- mlflow: `mlflow models serve` of the same champion, the customer's features sent in the
  request (`dataframe_split`); returns the probability only;
- naive: bench/naive_app.py, Feast `get_online_features` + pandas + `predict_proba` +
  stock `pred_contrib` per request.

The load generator is wrk (Debian package `wrk`) on the same machine, with
bench/wrk/score.lua choosing a random customer of the sample per request. For each
system, in `--rounds` interleaved rounds: a warm-up, then saturation (closed loop,
`--connections`); its best round is its maximum throughput. Then all systems at half
the slowest system's maximum (connections with think time, calibrated in a first pass)
for p50/p99 latency. Before any load, the three systems' probabilities for the same
customers must agree (within our response's rounding).

Needs the demo project (`make run`: data, materialized online store, champion).

    .venv/bin/python bench/serve.py                  # about 5 minutes
    .venv/bin/python bench/serve.py --seconds 5 --paced-seconds 8
    .venv/bin/python bench/serve.py --systems ours "ours, assisted"   # the cost of the help
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.settings import FeatureSettings  # noqa: E402
from features.store import open_store  # noqa: E402
from retain.base.settings import load_settings  # noqa: E402
from serving.scoring import Scorer, load_champion  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402
from training.settings import TrainingSettings  # noqa: E402

API_KEY = "bench-" + "k" * 26
LUA = ROOT / "bench" / "wrk" / "score.lua"
BIN = Path(sys.executable).parent


@dataclass
class System:
    name: str
    command: list[str]
    env: dict[str, str]
    path: str
    bodies: Path
    ready_path: str
    api_key: str = ""
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def active_sample(features: FeatureSettings, count: int, seed: int) -> list[str]:
    activity = pd.read_parquet(
        features.tables_dir / "customer_activity.parquet",
        columns=["customer_id", "event_timestamp"],
    )
    latest = activity["event_timestamp"] == activity["event_timestamp"].max()
    ids = sorted(activity.loc[latest, "customer_id"])
    return random.Random(seed).sample(ids, min(count, len(ids)))


def write_bodies(folder: Path, ids: list[str], scorer: Scorer) -> tuple[Path, Path, Path, Path]:
    """One request body per line and system; mlflow's carry the customer's features; the
    assisted ones come from a call-centre agent's CRM with a live sentiment."""
    columns = scorer.loaded.model.schema.columns
    rows = scorer.reader.read(ids, pd.Timestamp.now(tz="UTC"))
    names = ("ours", "naive", "mlflow", "assisted")
    ours, naive, served, assisted = (folder / f"{name}.jsonl" for name in names)
    sentiments = random.Random(0)
    with ours.open("w") as a, naive.open("w") as b, served.open("w") as c, assisted.open("w") as d:
        for i, customer in enumerate(ids):
            a.write(json.dumps({"customer_ids": [customer]}) + "\n")
            b.write(json.dumps({"customer_id": customer}) + "\n")
            context = {"channel": "call_centre", "sentiment": round(sentiments.uniform(-1, 1), 2)}
            d.write(json.dumps({"customer_ids": [customer], "context": context}) + "\n")
            values = [rows.columns[name][i] for name in columns]
            c.write(json.dumps({"dataframe_split": {"columns": columns, "data": [values]}}) + "\n")
    return ours, naive, served, assisted


def start(system: System, log_dir: Path) -> None:
    system.port = free_port()
    command = [part.replace("{port}", str(system.port)) for part in system.command]
    log = (log_dir / f"{system.name.replace(' ', '_')}.log").open("wb")
    system.process = subprocess.Popen(
        command,
        cwd=ROOT,
        # mlflow models serve execs `uvicorn` by name: the venv's bin must come first
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **system.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(system: System, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert system.process is not None
        if system.process.poll() is not None:
            raise SystemExit(f"{system.name} exited while starting (see its log)")
        try:
            if requests.get(f"http://127.0.0.1:{system.port}{system.ready_path}", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{system.name} not ready after {timeout_s:.0f} s")


def stop(system: System) -> None:
    if system.process is not None and system.process.poll() is None:
        os.killpg(system.process.pid, signal.SIGTERM)
        try:
            system.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(system.process.pid, signal.SIGKILL)


def wrk(system: System, seconds: float, connections: int, think_ms: float = 0) -> dict[str, Any]:
    env = {
        **os.environ,
        "WRK_BODIES": str(system.bodies),
        "WRK_API_KEY": system.api_key,
        "WRK_DELAY_MS": f"{think_ms:.1f}",
    }
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(LUA), system.url,
    ]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    if result["non_2xx"] or result["socket_errors"]:
        raise SystemExit(f"{system.name}: {result['non_2xx']} non-2xx, errors: {result}")
    return result


def probabilities(systems: dict[str, System], ids: list[str], mlflow_bodies: Path) -> str:
    """The three systems' probabilities for the same customers: they must agree."""
    bodies = mlflow_bodies.read_text().splitlines()
    worst = {"mlflow": 0.0, "naive": 0.0}
    for customer, mlflow_body in zip(ids, bodies, strict=False):
        ours = requests.post(
            systems["ours"].url,
            json={"customer_ids": [customer]},
            headers={"X-API-Key": API_KEY},
            timeout=30,
        ).json()["results"][0]
        naive = requests.post(systems["naive"].url, json={"customer_id": customer}, timeout=30)
        naive.raise_for_status()
        served = requests.post(
            systems["mlflow"].url,
            data=mlflow_body,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        served.raise_for_status()
        mlflow_probability = served.json()["predictions"][0]["churn_probability"]
        worst["mlflow"] = max(worst["mlflow"], abs(ours["churn_probability"] - mlflow_probability))
        worst["naive"] = max(
            worst["naive"], abs(ours["churn_probability"] - naive.json()["churn_probability"])
        )
        if not ours["reasons"]:
            raise SystemExit(f"ours gave no reasons for {customer}")
    if max(worst.values()) > 1e-6:  # ours rounds to 6 decimals
        raise SystemExit(f"the systems disagree on probabilities: {worst}")
    return ", ".join(f"{k} {v:.1e}" for k, v in worst.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000, help="sample of active customers")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per system")
    parser.add_argument("--connections", type=int, default=8, help="connections at saturation")
    parser.add_argument("--seconds", type=float, default=10, help="saturation run per system")
    parser.add_argument("--warmup", type=float, default=4, help="warm-up per system")
    parser.add_argument("--rounds", type=int, default=2, help="saturation rounds")
    parser.add_argument("--paced-connections", type=int, default=4)
    parser.add_argument("--paced-seconds", type=float, default=15, help="half-load run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--systems", nargs="+", help="only these (default: all but 'ours, assisted')"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")

    features = load_settings(FeatureSettings)
    tracking = load_settings(TrainingSettings)
    serving = load_settings(ServingSettings)
    scorer = Scorer(load_champion(serving, tracking), open_store(features), serving)
    model_uri = f"models:/{serving.model_name}@{serving.model_alias}"
    ids = active_sample(features, args.customers, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    ours_bodies, naive_bodies, mlflow_bodies, assisted_bodies = write_bodies(folder, ids, scorer)
    del scorer
    workers = str(args.workers)
    ours_env = {
        "RETAIN_API_KEYS": f"{API_KEY}:crm",
        "RETAIN_SERVING_DELIVERY__ENABLED": "false",  # nothing to deliver: score only
        "RETAIN_SERVING_LIMITS__RATE_LIMIT": "off",  # one key at saturation: not the limiter
        "RETAIN_SERVING_RELOAD_INTERVAL_S": "0",
        # a throwaway action log: scoring reads contact history and outages, writes nothing
        "RETAIN_SERVING_ACTION_DB_URL": f"sqlite:///{folder / 'actions.db'}",
        # several servers start at once on a small machine: slow starts are not hangs
        "RETAIN_SERVING_WORKER_START_TIMEOUT_S": "600",
    }
    tracking_env = {"MLFLOW_TRACKING_URI": tracking.resolved_tracking_uri()}
    systems = {
        "ours": System(
            "ours",
            [str(BIN / "retain"), "serve", "--port", "{port}", "--workers", workers],
            ours_env, "/v1/score", ours_bodies, "/readyz", API_KEY,
        ),
        "ours, no cache": System(
            "ours, no cache",
            [str(BIN / "retain"), "serve", "--port", "{port}", "--workers", workers],
            {**ours_env, "RETAIN_SERVING_EXPLANATION_CACHE": "0"},
            "/v1/score", ours_bodies, "/readyz", API_KEY,
        ),
        "ours, assisted": System(
            "ours, assisted",
            [str(BIN / "retain"), "serve", "--port", "{port}", "--workers", workers],
            ours_env, "/v1/score", assisted_bodies, "/readyz", API_KEY,
        ),
        "mlflow": System(
            "mlflow",
            [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", "{port}", "-w", workers],
            tracking_env, "/invocations", mlflow_bodies, "/ping",
        ),
        "naive": System(
            "naive",
            [str(BIN / "uvicorn"), "--factory", "naive_app:build_app", "--app-dir", "bench",
             "--host", "127.0.0.1", "--port", "{port}", "--workers", workers, "--no-access-log",
             "--log-level", "warning"],
            {**tracking_env, "RETAIN_NAIVE_MODEL_URI": model_uri}, "/score", naive_bodies,
            "/docs",
        ),
    }  # fmt: skip
    chosen = args.systems or [name for name in systems if name != "ours, assisted"]
    if unknown := set(chosen) - set(systems):
        raise SystemExit(f"unknown systems {sorted(unknown)}; there are {sorted(systems)}")
    systems = {name: system for name, system in systems.items() if name in chosen}
    print(f"{len(ids)} customers, {args.workers} workers per system, {os.cpu_count()} cores")
    try:
        for system in systems.values():
            start(system, folder)
        for system in systems.values():
            wait_ready(system)
        if {"ours", "mlflow", "naive"} <= set(systems):
            agreement = probabilities(systems, ids[:50], mlflow_bodies)
            print(f"largest |probability difference| vs ours over 50 customers: {agreement}")

        # rounds interleave the systems, so a slow spell of this shared machine hits all;
        # each system's best round is its maximum
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
        for round_number in range(1, args.rounds + 1):
            for name, system in systems.items():
                wrk(system, args.warmup, args.connections)
                rounds[name].append(wrk(system, args.seconds, args.connections))
                print(f"round {round_number} {name:15s} {rounds[name][-1]['rps']:8.1f} req/s")
        saturated = {name: max(found, key=lambda r: r["rps"]) for name, found in rounds.items()}

        half = 0.5 * min(result["rps"] for result in saturated.values())
        paced: dict[str, dict[str, Any]] = {}
        c = args.paced_connections
        for name, system in systems.items():
            # think time so that c connections send `half` requests a second in all: a
            # short pass measures the latency to subtract, the second is the measurement
            think = 1000 * c / half
            probe = wrk(system, 3, c, think)
            think = max(0.0, 1000 * c / half - probe["mean_us"] / 1000)
            paced[name] = wrk(system, args.paced_seconds, c, think)
            print(f"at {half:.0f} req/s  {name:15s} achieved {paced[name]['rps']:6.1f} req/s")
    finally:
        for system in systems.values():
            stop(system)

    print()
    print(f"| system | max req/s | at {half:.0f} req/s: p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for name in systems:
        s, p = saturated[name], paced[name]
        print(f"| {name} | {s['rps']:.0f} | {p['p50_us'] / 1000:.2f} | {p['p99_us'] / 1000:.2f} |")
    print()
    for ours in ("ours", "ours, no cache", "ours, assisted"):
        for peer in ("mlflow", "naive"):
            if ours not in saturated or peer not in saturated:
                continue
            ratio = saturated[ours]["rps"] / saturated[peer]["rps"]
            print(f"throughput {ours} / {peer}: {ratio:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"half_load_rps": half, "saturated": rounds,
                                         "paced": paced}, indent=2))  # fmt: skip
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
