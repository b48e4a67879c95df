"""The drift loop's figures, measured through Kafka with the command line (issue: "the drift loop").

    PYTHONPATH=. .venv/bin/python scripts/drift-figures.py --out out/drift-figures

Runs the verbs users run, as processes, against a temporary embedded broker: `anomstream train`,
`worker --eos`, `drift --retrain`; a stable replay of 1,000,000 shuffled normal connections of the
10% file (first: the model in production then is the one trained on them), then
`replay kdd --drift abrupt --drift-at N --rate R`. Everything below is read back from the topics afterwards:

- detection delay: the drift event's ``detected_offsets`` minus the true change (the ``drift.phase``
  headers of the input topic), in events;
- false alarms: drift events during the stable replay;
- alert rate on normal traffic before the change, after it (model v1) and after the promoted retrain
  (v2), from the score records (labels travel with them), and the events from the change until the
  rate is back within 1.5x of the pre-change rate;
- attack recall of v1 and v2 on the traffic after the change;
- worker events/s on a prefilled topic alone, and with the drift monitor and a niced training process
  running beside it.

Writes ``figures.json`` and prints a table. Needs the KDD files in ANOMSTREAM_DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson

from stream.broker import temporary_broker
from stream.datasets import find_kdd_file, is_attack, read_kdd
from stream.kafka import create_topics, end_offsets, read_all
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


def rates(settings: Settings, change: dict[str, int], start: dict[str, int]) -> dict[str, object]:
    """Alert rate on normal traffic and attack recall of the scenario's events (from ``start``), by
    phase and model version; the recovery point."""
    rows = []  # (partition, offset, after change, version, alert, attack)
    for record in scored(settings):
        for offset, flagged, label in zip(record.offsets, record.is_alert, record.labels, strict=True):
            if offset < start.get(str(record.partition), 0):
                continue
            after = offset >= change.get(str(record.partition), 1 << 62)
            rows.append((record.partition, offset, after, record.model_version, flagged, label != "normal"))
    data = np.array(rows, dtype=np.int64)
    after, version, alert, attack = data[:, 2] == 1, data[:, 3], data[:, 4] == 1, data[:, 5] == 1

    def rate(mask: np.ndarray) -> float | None:
        return float(alert[mask].mean()) if mask.any() else None

    before_rate = rate(~after & ~attack)
    # Events after the change, in (approximately) stream order: offsets per partition interleave.
    post = np.flatnonzero(after)
    order = post[np.argsort(data[post, 1] - np.array([change[str(p)] for p in data[post, 0]]))]
    normal_post = order[~attack[order]]
    recovered_at = None
    if before_rate is not None and len(normal_post) > 2000:
        window = np.convolve(alert[normal_post].astype(float), np.ones(2000) / 2000, mode="valid")
        ok = np.flatnonzero((window <= 1.5 * max(before_rate, 1e-9)) & (version[normal_post][1999:] == 2))
        if ok.size:
            # position in the post-change stream (all events, not only normal ones) where it happened
            recovered_at = int(np.searchsorted(order, normal_post[ok[0] + 1999]))
    return {
        "normal_alert_rate_before": before_rate,
        "normal_alert_rate_after_v1": rate(after & ~attack & (version == 1)),
        "normal_alert_rate_after_v2": rate(after & ~attack & (version == 2)),
        "attack_recall_after_v1": rate(after & attack & (version == 1)),
        "attack_recall_after_v2": rate(after & attack & (version == 2)),
        "events_after_change_v1": int((after & (version == 1)).sum()),
        "events_after_change_v2": int((after & (version == 2)).sum()),
        "recovered_within_1_5x_after_events": recovered_at,
    }


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
                helpers.append(cli(load_env, "drift", "--stream", "kdd", "--instance-id", f"load-{i}",
                                   log=out / "load-drift.log", wait=False))  # fmt: skip
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("out/drift-figures"))
    parser.add_argument("--drift-at", type=int, default=20_000)
    parser.add_argument("--limit", type=int, default=120_000, help="events of the drifting replay")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--stable", type=int, default=1_000_000)
    parser.add_argument("--load-events", type=int, default=200_000)
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.environ.get("ANOMSTREAM_DATA_DIR", "../shared/data")).resolve()
    figures: dict[str, object] = {}
    with temporary_broker() as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap, data_dir=data_dir, registry_dir=out / "registry",
            state_dir=out / "state", topic_prefix="drift-figures.", topic_partitions=3,
            drift=DriftSettings(retrain_cooldown_s=3600),
        )  # fmt: skip
        create_topics(settings)
        env = {**settings.environment(), "COLUMNS": "200"}
        started = time.monotonic()
        cli(env, "train", "--stream", "kdd", "--if-missing", log=out / "train.log")
        worker = cli(env, "worker", "--streams", "kdd", "--eos", "--worker-id", "w1", log=out / "worker.log",
                     wait=False)  # fmt: skip
        monitor = cli(env, "drift", "--stream", "kdd", "--retrain", "--instance-id", "m1",
                      log=out / "drift.log", wait=False)  # fmt: skip
        try:
            time.sleep(15)
            # A stationary stream first, scored by the model it is stationary for (v1, trained on the
            # 10% file's normal traffic): a million of its normal connections in random order. Any
            # drift event during it is a false alarm.
            path = stable_file(data_dir, out, args.stable)
            cli(env, "replay", "kdd", "--file", str(path), "--rate", "0", log=out / "replay-stable.log")
            wait_scored(settings, args.stable, timeout=1800)
            time.sleep(15)
            stable_events = read_all(settings, settings.topic("drift"))
            figures["stable"] = {"events": args.stable, "false_alarms": len(stable_events)}
            print(json.dumps(figures["stable"]), flush=True)

            start = {str(p): o for p, o in end_offsets(settings, settings.topic("kdd")).items()}
            cli(env, "replay", "kdd", "--drift", "abrupt", "--drift-at", str(args.drift_at),
                "--limit", str(args.limit), "--rate", str(args.rate), log=out / "replay.log")  # fmt: skip
            wait_scored(settings, args.stable + args.limit)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and "retrain of kdd" not in (out / "drift.log").read_text():
                time.sleep(5)
            time.sleep(10)
            change = true_change(settings)
            drift = read_all(settings, settings.topic("drift"))[len(stable_events) :]
            events = [orjson.loads(m.value()) for m in drift]
            updates = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"))]
            first = events[0] if events else None
            delay = None
            if first and first["change"].get("detected_offsets"):
                detected = first["change"]["detected_offsets"]
                delay = sum(max(detected[p] - change[p], 0) for p in change if p in detected)
            figures["abrupt"] = {
                "drift_at": args.drift_at, "events": args.limit, "rate": args.rate,
                "true_change_offsets": change, "drift_events": len(events), "first_event": first,
                "detection_delay_events": delay, "model_updates": updates, **rates(settings, change, start),
            }  # fmt: skip
            stop(worker)
            stop(monitor)
            figures["worker_with_monitor_and_retrain"] = worker_rates(settings, env, out, args.load_events)
        finally:
            stop(worker)
            stop(monitor)
        figures["seconds"] = round(time.monotonic() - started)
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
    shown = {k: v for k, v in figures["abrupt"].items() if k not in ("first_event", "model_updates")}
    print(json.dumps(shown, indent=2, default=str))
    print(json.dumps(figures["stable"]))
    print(json.dumps(figures["worker_with_monitor_and_retrain"]))


if __name__ == "__main__":
    main()
