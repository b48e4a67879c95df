"""The drift loop's figures, measured through Kafka with the command line (issue: "the drift loop
restores the model").

    PYTHONPATH=. .venv/bin/python scripts/drift-figures.py --out out/drift-figures \
        --scenario shift --scenario shift-attacks --scenario abrupt --scenario shift-verdicts

Runs the verbs users run, as processes, against a temporary embedded broker: `anomstream train` (once),
then per scenario, on topics and a registry of its own (every scenario starts from the same v1):
`worker --eos`, `drift --retrain`, `replay kdd --drift SCENARIO --drift-at N --rate R`.
``shift-verdicts`` is ``shift`` with an analyst who gives a verdict on 1% of the alerts as they
arrive (benign on normal traffic, malicious on attacks: the replay's label), through
``consumers.verdicts.give_verdict`` as the dashboard does. Optional: a stationary replay first
(``--stable N``: drift events on it are false alarms) and the worker's rate beside the monitor and a
retrain (``--load-events N``). Everything is read back from the topics afterwards:

- detection delay: the first drift event's ``detected_offsets`` minus the true change (the
  ``drift.phase`` headers of the input topic), in events;
- events and seconds from the change to the promotion (input events produced before the promotion,
  by broker timestamps);
- alert rate on normal traffic before the change, after it (model v1) and after the promotion (v2+),
  from the score records (labels travel with them); the events from the change until a rolling 2,000
  normal events are back within 1.5x of the pre-change rate;
- attack recall of v1 and v2 on the traffic after the change; flood recall (smurf, neptune) of each.

Writes ``figures.json`` and prints a table. Needs the KDD and NSL-KDD files in ANOMSTREAM_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

from models.registry import Registry
from stream.broker import temporary_broker
from stream.datasets import find_kdd_file, read_kdd
from stream.kafka import create_topics, read_all
from stream.labels import is_attack
from stream.messages import decode_score_record
from stream.settings import DriftSettings, Settings

CLI = [sys.executable, "-m", "anomstream"]


def cli(env: dict[str, str], *args: str, log: Path | None = None, wait: bool = True) -> subprocess.Popen:
    out = log.open("ab") if log else subprocess.DEVNULL
    process = subprocess.Popen([*CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    if wait:
        code = process.wait()
        if code != 0:
            raise SystemExit(f"anomstream {' '.join(args)} exited {code} (see {log})")
    return process


def stop(process: subprocess.Popen, grace: float = 60) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()


def scored(settings: Settings) -> list:
    return [decode_score_record(m.value()) for m in read_all(settings, settings.topic("scores"), timeout=120)]


def wait_scored(settings: Settings, total: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(len(r.offsets) for r in scored(settings)) >= total:
            return
        time.sleep(5)
    raise SystemExit(f"not every one of {total:,} events was scored within {timeout:.0f} s")


def true_change(settings: Settings) -> dict[str, int]:
    first: dict[str, int] = {}
    for message in read_all(settings, settings.topic("kdd"), timeout=120):
        phase = dict(message.headers() or []).get("drift.phase")
        if phase is not None and phase != b"before":
            key = str(message.partition())
            first[key] = min(first.get(key, message.offset()), message.offset())
    return first


FLOODS = ("smurf", "neptune")


def rates(settings: Settings, change: dict[str, int], start: dict[str, int]) -> dict[str, object]:
    """Alert rate on normal traffic and attack recall of the scenario's events (from ``start``), by
    phase and model version; the recovery point."""
    rows = []  # (partition, offset, after change, version, alert, attack, flood)
    for record in scored(settings):
        attack = is_attack(np.array(record.labels, dtype=object))
        for i, (offset, flagged, label) in enumerate(
            zip(record.offsets, record.is_alert, record.labels, strict=True)
        ):
            if offset < start.get(str(record.partition), 0):
                continue
            after = offset >= change.get(str(record.partition), 1 << 62)
            flood = str(label).rstrip(".") in FLOODS
            rows.append((record.partition, offset, after, record.model_version, flagged, attack[i], flood))
    data = np.array(rows, dtype=np.int64)
    after, version, alert = data[:, 2] == 1, data[:, 3], data[:, 4] == 1
    attack, flood = data[:, 5] == 1, data[:, 6] == 1

    def rate(mask: np.ndarray) -> float | None:
        return float(alert[mask].mean()) if mask.any() else None

    before_rate = rate(~after & ~attack)
    # Events after the change, in (approximately) stream order: offsets per partition interleave.
    post = np.flatnonzero(after)
    order = post[np.argsort(data[post, 1] - np.array([change[str(p)] for p in data[post, 0]]), kind="stable")]
    normal_post = order[~attack[order]]
    recovered_at = None
    if before_rate is not None and len(normal_post) > 2000:
        window = np.convolve(alert[normal_post].astype(float), np.ones(2000) / 2000, mode="valid")
        ok = np.flatnonzero((window <= 1.5 * max(before_rate, 1e-9)) & (version[normal_post][1999:] >= 2))
        if ok.size:
            # position in the post-change stream (all events, not only normal ones) where it happened
            recovered_at = int(np.flatnonzero(order == normal_post[ok[0] + 1999])[0])
    first_50k = np.zeros(len(data), dtype=bool)
    first_50k[order[:50_000]] = True
    return {
        "normal_alert_rate_before": before_rate,
        "normal_alert_rate_after_v1": rate(after & ~attack & (version == 1)),
        "normal_alert_rate_after_promotion": rate(after & ~attack & (version >= 2)),
        "normal_alert_rate_last_10k_of_first_50k": rate(
            np.isin(np.arange(len(data)), order[40_000:50_000]) & ~attack
        ),
        "attack_recall_after_v1": rate(after & attack & (version == 1)),
        "attack_recall_after_promotion": rate(after & attack & (version >= 2)),
        "flood_recall_v1": rate(flood & (version == 1)),
        "flood_recall_promoted": rate(flood & (version >= 2)),
        "events_after_change_v1": int((after & (version == 1)).sum()),
        "events_after_change_promoted": int((after & (version >= 2)).sum()),
        "recovered_within_1_5x_after_events": recovered_at,
    }


def promotion_timing(settings: Settings, change: dict[str, int], updates: list[dict]) -> dict[str, object]:
    """Input events produced after the change and before the first drift promotion, and seconds."""
    promoted = [
        u
        for u in updates
        if u.get("status") == "production" and str(u.get("reason", "")).startswith("drift:")
    ]
    if not promoted:
        return {"promoted": False}
    at = datetime.fromisoformat(promoted[0]["promoted_at"]).timestamp() * 1000
    first_ms, before = None, 0
    for message in read_all(settings, settings.topic("kdd"), timeout=120):
        p, o = str(message.partition()), message.offset()
        if o < change.get(p, 1 << 62):
            continue
        ts = message.timestamp()[1]
        first_ms = ts if first_ms is None else min(first_ms, ts)
        before += int(ts <= at)
    return {
        "promoted": True,
        "events_change_to_promotion": before,
        "seconds_change_to_promotion": round((at - (first_ms or at)) / 1000, 1),
    }


class Analyst(threading.Thread):
    """Gives a verdict on one in ``every`` alerts as they arrive: benign on normal traffic, malicious on
    attacks (the label the replay carried), through give_verdict, as the dashboard does."""

    def __init__(self, settings: Settings, every: int = 100) -> None:
        super().__init__(daemon=True)
        self.settings, self.every, self.given = settings, every, {"benign": 0, "malicious": 0}
        self.stop = threading.Event()

    def run(self) -> None:
        from consumers.verdicts import give_verdict
        from stream.kafka import make_reader
        from stream.messages import decode_alert

        consumer = make_reader(self.settings)
        consumer.subscribe([self.settings.topic("alerts")])
        seen = 0
        while not self.stop.is_set():
            for message in consumer.consume(500, 0.5):
                if message.error() is not None:
                    continue
                seen += 1
                if seen % self.every:
                    continue
                alert = decode_alert(message.value())
                verdict = (
                    "malicious"
                    if alert.label and is_attack(np.array([alert.label], dtype=object))[0]
                    else "benign"
                )
                give_verdict(
                    self.settings, alert.alert_id, verdict, "figures-analyst", "replay label", alert=alert
                )
                self.given[verdict] += 1
        consumer.close()


def stable_file(data_dir: Path, out: Path, n: int, seed: int = 0) -> Path:
    """``n`` normal connections of the 10% file drawn in random order (a stationary stream)."""
    frame = read_kdd(find_kdd_file(data_dir, "train"))
    normal = frame[~is_attack(frame["label"])]
    rows = np.random.default_rng(seed).integers(0, len(normal), n)
    path = out / "stable-normal.csv"
    normal.iloc[rows].assign(label=normal.iloc[rows]["label"] + ".").to_csv(path, header=False, index=False)
    return path


def worker_rates(settings: Settings, env: dict[str, str], out: Path, events: int, pairs: int = 2) -> dict:
    """Worker events/s on a prefilled topic, alone and with the drift monitor and a niced training
    process (what a retrain is) running beside it; alternated, medians."""
    from consumers.worker import ScoringWorker
    from producers.kdd import kdd_events, load_kdd_replay
    from producers.replay import ReplayProducer
    from stream.signals import StopFlag

    loaded = settings.model_copy(update={"topic_prefix": "drift-load."})
    create_topics(loaded)
    frame, source = load_kdd_replay(settings.data_dir, "test")
    ReplayProducer(loaded, loaded.topic("kdd"), progress=False, stop=StopFlag(False)).run(
        kdd_events(frame, source, loop=True, limit=events), events
    )
    load_env = {**env, **{k: v for k, v in loaded.environment().items() if k.startswith("ANOMSTREAM_")}}
    alone, beside = [], []
    for i in range(pairs):
        for busy in (False, True):
            group = loaded.model_copy(update={"group_id": f"load-{i}-{int(busy)}"})
            helpers = []
            if busy:
                helpers.append(
                    cli(
                        load_env,
                        "drift",
                        "--stream",
                        "kdd",
                        "--instance-id",
                        f"load-{i}",
                        log=out / "load-drift.log",
                        wait=False,
                    )
                )
                command = ["nice", "-n", "10", *CLI, "train", "--stream", "kdd", "--no-promote"]
                log = (out / "load-train.log").open("ab")
                trainer = subprocess.Popen(command, env=load_env, stdout=log, stderr=subprocess.STDOUT)
                helpers.append(trainer)
                time.sleep(8)  # both running: the monitor consuming, the trainer training
            worker = ScoringWorker(group, ["kdd"], worker_id=f"load-{i}", stop=StopFlag(install=False))
            rate = worker.run(max_events=events).rate
            (beside if busy else alone).append(rate)
            for helper in helpers:
                stop(helper, 30)
    a, b = float(np.median(alone)), float(np.median(beside))
    return {"alone_eps": alone, "beside_monitor_and_retrain_eps": beside, "ratio": round(b / a, 3)}


def retrain_finished(drift_log: Path) -> bool:
    """Whether the monitor logged a retrain's outcome ("retrain <event id> of <stream> v2: promoted
    ..."), not any line naming a retrain ("a retrain is already running" for a second drift event)."""
    text = " ".join(drift_log.read_text(errors="replace").split()) if drift_log.is_file() else ""
    return re.search(r"retrain \S+ of \w+( v\d+)?: ", text) is not None


def start_loop(
    settings: Settings, env: dict[str, str], name: str, log: Path, retrain: bool
) -> tuple[dict[str, str], subprocess.Popen, subprocess.Popen]:
    """`worker --eos` and `drift [--retrain]` as processes on ``settings``' topics; their environment."""
    env = {**env, **{k: v for k, v in settings.environment().items() if k.startswith("ANOMSTREAM_")}}
    log.mkdir(parents=True, exist_ok=True)
    scoring = ["worker", "--streams", "kdd", "--eos", "--worker-id", f"w-{name}"]
    worker = cli(env, *scoring, log=log / "worker.log", wait=False)
    drift = ["drift", "--stream", "kdd", *(["--retrain"] if retrain else []), "--instance-id", f"m-{name}"]
    return env, worker, cli(env, *drift, log=log / "drift.log", wait=False)


def run_scenario(name: str, base: Settings, env: dict[str, str], out: Path, args: argparse.Namespace) -> dict:
    """One scenario on its own topics and a copy of the v1 registry; its figures."""
    scenario = name.removesuffix("-verdicts")
    registry = out / f"registry-{name}"
    shutil.rmtree(registry, ignore_errors=True)
    shutil.copytree(base.registry_dir, registry)
    settings = base.model_copy(
        update={
            "topic_prefix": f"figures-{name}.",
            "registry_dir": registry,
            "state_dir": out / f"state-{name}",
        }
    )
    create_topics(settings)
    log = out / name
    log.mkdir(exist_ok=True)
    env, worker, monitor = start_loop(settings, env, name, log, retrain=True)
    analyst = Analyst(settings) if name.endswith("-verdicts") else None
    started = time.monotonic()
    try:
        time.sleep(15)
        if analyst is not None:
            analyst.start()
        cli(
            env,
            "replay",
            "kdd",
            "--drift",
            scenario,
            "--drift-at",
            str(args.drift_at),
            "--limit",
            str(args.limit),
            "--rate",
            str(args.rate),
            log=log / "replay.log",
        )
        wait_scored(settings, args.limit)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not retrain_finished(log / "drift.log"):
            time.sleep(5)
        time.sleep(10)
    finally:
        if analyst is not None:
            analyst.stop.set()
        stop(worker)
        stop(monitor)
    change = true_change(settings)
    events = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("drift"))]
    updates = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"))]
    first = events[0] if events else None
    delay = None
    if first and first["change"].get("detected_offsets"):
        detected = first["change"]["detected_offsets"]
        delay = sum(max(detected[p] - change[p], 0) for p in change if p in detected)
    outcomes = [{k: u.get(k) for k in ("version", "status", "reason", "detail")} for u in updates]
    versions = sorted({u["version"] for u in updates if u["version"] > 1})
    manifests = [Registry(registry).manifest("kdd", "ae", v) for v in versions]
    retrains = [
        {
            "evidence": {
                k: v for k, v in (m["retrain"].get("evidence") or {}).items() if k != "window_alert_rates"
            },
            "selection": m["retrain"].get("selection"),
            "contamination": m["retrain"].get("contamination"),
            "verdicts": m["retrain"].get("verdicts"),
            "shadow_criteria": m["shadow"].get("criteria"),
        }
        for m in {id(m): m for m in manifests}.values()
    ]
    return {
        "scenario": scenario,
        "drift_at": args.drift_at,
        "events": args.limit,
        "rate": args.rate,
        "true_change_offsets": change,
        "drift_events": len(events),
        "detection_delay_events": delay,
        "partitions_named": len(first["change"]["partition_offsets"]) if first else 0,
        "model_updates": outcomes,
        "retrains": retrains,
        "verdicts_given": analyst.given if analyst is not None else None,
        **promotion_timing(settings, change, updates),
        **rates(settings, change, {}),
        "seconds": round(time.monotonic() - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("out/drift-figures"))
    parser.add_argument(
        "--scenario", action="append", choices=("shift", "shift-attacks", "abrupt", "shift-verdicts")
    )
    parser.add_argument("--drift-at", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=100_000, help="events of each drifting replay")
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--stable", type=int, default=0, help="a stationary replay first (0: none)")
    parser.add_argument(
        "--load-events", type=int, default=0, help="worker rate beside the loop (0: not measured)"
    )
    args = parser.parse_args()
    scenarios = args.scenario or ["shift", "shift-attacks", "abrupt", "shift-verdicts"]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.environ.get("ANOMSTREAM_DATA_DIR", "../shared/data")).resolve()
    figures: dict[str, object] = {}
    with temporary_broker() as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            data_dir=data_dir,
            registry_dir=out / "registry",
            state_dir=out / "state",
            topic_prefix="drift-figures.",
            topic_partitions=3,
            drift=DriftSettings(retrain_cooldown_s=3600),
        )
        create_topics(settings)
        env = {**settings.environment(), "COLUMNS": "200"}
        started = time.monotonic()
        cli(env, "train", "--stream", "kdd", "--if-missing", log=out / "train.log")
        if args.stable:
            figures["stable"] = stable_figures(settings, env, out, args.stable)
            print(json.dumps(figures["stable"]), flush=True)
        for name in scenarios:
            figures[name] = run_scenario(name, settings, env, out, args)
            shown = {
                k: v
                for k, v in figures[name].items()
                if k not in ("retrains", "model_updates", "true_change_offsets")
            }
            print(json.dumps({name: shown}, default=str), flush=True)
            (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
        if args.load_events:
            figures["worker_with_monitor_and_retrain"] = worker_rates(settings, env, out, args.load_events)
        figures["seconds"] = round(time.monotonic() - started)
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
    print(table(figures, scenarios))


def stable_figures(settings: Settings, env: dict[str, str], out: Path, n: int) -> dict[str, int]:
    """Drift events (false alarms) on ``n`` normal connections of the 10% file in random order,
    scored by the model they are stationary for."""
    stable = settings.model_copy(update={"topic_prefix": "figures-stable."})
    create_topics(stable)
    env, worker, monitor = start_loop(stable, env, "stable", out / "stable", retrain=False)
    try:
        time.sleep(15)
        cli(
            env,
            "replay",
            "kdd",
            "--file",
            str(stable_file(settings.data_dir, out, n)),
            "--rate",
            "0",
            log=out / "stable-replay.log",
        )
        wait_scored(stable, n, timeout=1800)
        time.sleep(15)
    finally:
        stop(worker)
        stop(monitor)
    return {"events": n, "false_alarms": len(read_all(stable, stable.topic("drift")))}


def _pct(value: object) -> str:
    return f"{value:.2%}" if isinstance(value, float) else "-"


def table(figures: dict, scenarios: list[str]) -> str:
    rows = [
        ("detection delay (events)", lambda f: f.get("detection_delay_events")),
        ("partitions named / 3", lambda f: f.get("partitions_named")),
        ("events change -> promotion", lambda f: f.get("events_change_to_promotion", "not promoted")),
        ("seconds change -> promotion", lambda f: f.get("seconds_change_to_promotion", "-")),
        ("normal alert rate before", lambda f: _pct(f.get("normal_alert_rate_before"))),
        ("normal alert rate after, v1", lambda f: _pct(f.get("normal_alert_rate_after_v1"))),
        ("normal alert rate after promotion", lambda f: _pct(f.get("normal_alert_rate_after_promotion"))),
        (
            "normal alert rate, events 40-50k after",
            lambda f: _pct(f.get("normal_alert_rate_last_10k_of_first_50k")),
        ),
        ("back within 1.5x after (events)", lambda f: f.get("recovered_within_1_5x_after_events")),
        ("attack recall after, v1", lambda f: _pct(f.get("attack_recall_after_v1"))),
        ("attack recall after promotion", lambda f: _pct(f.get("attack_recall_after_promotion"))),
        (
            "flood recall v1 / promoted",
            lambda f: f"{_pct(f.get('flood_recall_v1'))} / {_pct(f.get('flood_recall_promoted'))}",
        ),
        (
            "outcomes",
            lambda f: ", ".join(f"v{u['version']} {u['status']}" for u in f.get("model_updates", [])),
        ),
    ]
    lines = ["| figure | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios)]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(str(get(figures[s])) for s in scenarios) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
