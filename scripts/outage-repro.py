"""Issue 19's measurement, as an operator would take it: a broker outage in the middle of a replay.

    PYTHONPATH=. .venv/bin/python scripts/outage-repro.py --eos --out out/outage-repro

Against a temporary embedded broker, with the verbs users run as processes: `anomstream worker
--streams kdd [--eos] [--replicas N]` beside `anomstream replay kdd --rate 500 --limit 20000`; 12 s into
the replay the broker is stopped, and started again 18 s later (same port, same data). Then it waits
(``--recovery-timeout``) for the worker group to commit every replayed event, sends SIGTERM and
times the exit. Everything is read back from the topics afterwards:

- outage: seconds between the broker's stop and its answering again;
- resumed / recovery: seconds from the broker answering again to the group committing past what it
  had committed when the broker stopped, and to its committing every replayed event (None: never);
- scored / lost / doubled: input offsets in the committed score records, input offsets in none,
  offsets in more than one (under --eos it must be 0), and alert ids seen more than once;
- restarts: replica restarts the supervisor logged, watchdog lines the workers logged;
- sigterm: seconds to exit after SIGTERM, and the exit code (None: still running after the grace
  period plus 30 s, then SIGKILLed).

Writes ``repro.json`` into ``--out`` (with the worker log) and prints it. A detector that trains in
seconds (PCA) is enough: the outage, not the model, is under test.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
from confluent_kafka import TopicPartition

from consumers.supervisor import worker_command
from stream.broker import EmbeddedBroker, free_port
from stream.kafka import create_topics, end_offsets, make_consumer, read_all
from stream.messages import decode_score_record
from stream.settings import Settings


def committed(settings: Settings) -> int | None:
    """Events the worker group has committed on the input topic; None when the broker cannot say."""
    consumer = make_consumer(settings, settings.group_id)
    try:
        topic = settings.topic("kdd")
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=3))
    except Exception:  # noqa: BLE001 - the broker is down: no answer
        return None
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--eos", action="store_true")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--stop-at", type=float, default=12.0, help="seconds into the replay")
    parser.add_argument("--down-for", type=float, default=18.0)
    parser.add_argument("--recovery-timeout", type=float, default=180.0)
    parser.add_argument("--grace", type=float, default=25.0, help="the SIGTERM bound expected")
    parser.add_argument("--out", type=Path, default=Path("out/outage-repro"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    folder = Path(tempfile.mkdtemp(prefix="anomstream-outage-"))
    broker = EmbeddedBroker(folder / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"o{tag}.",
        group_id=f"workers-{tag}",
        registry_dir=folder / "registry",
        state_dir=folder / "state",
        topic_partitions=3,
    )
    worker = None
    try:
        create_topics(settings)
        from models.registry import Registry
        from models.training import TrainingRequest, train

        train(Registry(settings.registry_dir), settings.data_dir, TrainingRequest("kdd", "pca"))
        env = settings.environment()
        log_path = args.out / "worker.log"
        log = log_path.open("wb")
        command = worker_command("--streams", "kdd", "--replicas", str(args.replicas))
        command += ["--eos"] if args.eos else []
        command += ["--worker-id", "repro"] if args.replicas == 1 else []
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + 120
        while "assigned" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        replay_cmd = [sys.executable, "-m", "anomstream", "replay", "kdd", "--file", "test",
                      "--rate", str(args.rate), "--limit", str(args.events)]  # fmt: skip
        replay_log = (args.out / "replay.log").open("wb")
        replay = subprocess.Popen(replay_cmd, env=env, stdout=replay_log, stderr=subprocess.STDOUT)  # noqa: S603
        started = time.monotonic()
        time.sleep(args.stop_at)
        before = committed(settings) or 0
        stopped_at = time.monotonic()
        broker.stop()
        time.sleep(args.down_for)
        broker.start()
        back_at = time.monotonic()
        resumed_at = recovered_at = None
        timeline = []
        deadline = back_at + args.recovery_timeout
        done = None
        while time.monotonic() < deadline:
            done = committed(settings)
            timeline.append((round(time.monotonic() - started, 1), done))
            if done is not None and done > before and resumed_at is None:
                resumed_at = time.monotonic()
            if done is not None and done >= args.events and recovered_at is None:
                recovered_at = time.monotonic()
            if done is not None and done >= args.events and replay.poll() is not None:
                break
            time.sleep(1.0)
        replay_code = replay.wait(120)
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(args.grace + 30)
            exit_s: float | None = round(time.monotonic() - signalled, 1)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            code, exit_s = None, None
        records = [decode_score_record(m.value()) for m in read_all(settings, settings.topic("scores"))]
        counts = Counter((r.partition, o) for r in records for o in r.offsets)
        ends = end_offsets(settings, settings.topic("kdd"))
        inputs = {(p, o) for p, end in ends.items() for o in range(end)}
        alerts = Counter(
            orjson.loads(m.value())["alert_id"] for m in read_all(settings, settings.topic("alerts"))
        )
        text = log_path.read_text()
        figures = {
            "mode": "eos" if args.eos else "at-least-once",
            "replicas": args.replicas,
            "replayed": sum(ends.values()),
            "replay_exit": replay_code,
            "outage_s": round(back_at - stopped_at, 1),
            "committed_at_stop": before,
            "resumed_s": None if resumed_at is None else round(resumed_at - back_at, 1),
            "recovery_s": None if recovered_at is None else round(recovered_at - back_at, 1),
            "committed_at_end": done,
            "scored": len(set(counts) & inputs),
            "lost": len(inputs - set(counts)),
            "doubled": sum(1 for n in counts.values() if n > 1),
            "alerts_doubled": sum(1 for n in alerts.values() if n > 1),
            "restarts": text.count("exited with"),
            "watchdog_lines": text.count("watchdog"),
            "sigterm_exit_s": exit_s,
            "sigterm_code": code,
            "timeline": timeline,
        }
        (args.out / "repro.json").write_text(json.dumps(figures, indent=1))
        print(json.dumps({k: v for k, v in figures.items() if k != "timeline"}))
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
