"""The NAB benchmark through Kafka: every series replayed as windows, scored by a worker that learns as
it scores, NAB's score computed from the ``scores`` topic and set beside the offline run (issue 17:
"live = offline").

    PYTHONPATH=. .venv/bin/python scripts/nab-live.py --out out/nab-live            # all 58 series
    PYTHONPATH=. .venv/bin/python scripts/nab-live.py --out out/nab-live --series realTraffic/speed_7578.csv

Against a temporary embedded broker, per series, on topics and a registry of its own: train the online
detector on the series' probation (``anomstream train``'s recipe), replay every window
(``ReplayProducer``, as ``anomstream replay sensor``), score them with a ``ScoringWorker`` in small
batches (it scores one batch while the one before is still being published, and learns each only after
its commit), read the score records back, and run the same series offline (``run_online``). Prints the
largest difference of raw scores over every series and the NAB table (standard, low FP, low FN) of both,
each with one threshold per profile optimised over the series run; writes ``nab-live.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

from consumers.worker import ScoringWorker
from models.evaluation.nab.benchmark import SeriesRun, run_online, score_runs
from models.registry import Registry
from models.training import TrainingRequest, train
from producers.replay import ReplayProducer
from producers.sensor import sensor_events
from stream.broker import temporary_broker
from stream.datasets.sensor import list_nab_series, load_nab_series, nab_root
from stream.kafka import create_topics, read_all
from stream.settings import Settings
from stream.signals import StopFlag
from stream.windows import per_row_scores, window_end_rows

WINDOW = 16
BATCH = 97  # small batches: scoring overlaps the publishing of the batch before, as under load


def live_series(bootstrap: str, data_dir: Path, name: str, detector: str, skip: int = 0) -> SeriesRun:
    """One series through Kafka, scored by a learning worker; its NAB row scores from the topic. The
    first ``skip`` windows are left out of the replay: the model learnt them when it was trained."""
    tag = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix=f"nab-live-{tag}-"))
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=f"n{tag}.", group_id=f"nab-{tag}",
                        registry_dir=root / "registry", state_dir=root / "state", data_dir=data_dir,
                        topic_partitions=1, batch_size=BATCH)  # fmt: skip
    request = TrainingRequest("sensor", detector, series=name, window=WINDOW)
    train(Registry(settings.registry_dir), data_dir, request)
    create_topics(settings)
    series = load_nab_series(data_dir, name)
    events = list(sensor_events([series], WINDOW))[skip:]
    replay = ReplayProducer(settings, settings.topic("sensor"), progress=False, stop=StopFlag(False))
    if replay.run(events).delivered != len(events):
        raise SystemExit(f"{name}: the replay did not deliver every window")
    stop = StopFlag(install=False)
    timer = threading.Timer(600, stop.set)
    timer.start()
    try:
        stats = ScoringWorker(settings, ["sensor"], worker_id=f"nab-{tag}", stop=stop).run(len(events))
    finally:
        timer.cancel()
    if stats.events != len(events):
        raise SystemExit(f"{name}: the worker scored {stats.events} of {len(events)} windows")
    records = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("scores"))]
    rows = sorted((o, s) for r in records for o, s in zip(r["offsets"], r["scores"], strict=True))
    if [o for o, _ in rows] != list(range(len(events))):
        raise SystemExit(f"{name}: the scores topic does not hold every window exactly once")
    raw = np.r_[np.zeros(skip), [s for _, s in rows]]
    scores = per_row_scores(len(series), window_end_rows(len(series), WINDOW), raw)
    return SeriesRun(name, raw, scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--series", action="append", help="a NAB series (default: all 58)")
    parser.add_argument("--detector", default="context")
    parser.add_argument("--data-dir", type=Path, default=Settings().data_dir)
    args = parser.parse_args()
    names = args.series or list_nab_series(args.data_dir)
    series = {name: load_nab_series(args.data_dir, name) for name in names}
    live: dict[str, SeriesRun] = {}
    offline: dict[str, SeriesRun] = {}
    started = time.monotonic()
    with temporary_broker() as broker:
        for i, name in enumerate(names, 1):
            offline[name] = run_online(series[name], args.detector, WINDOW, batch=BATCH)
            skip = offline[name].trained
            live[name] = live_series(broker.bootstrap, args.data_dir, name, args.detector, skip)
            gap = float(np.max(np.abs(live[name].raw - offline[name].raw))) if len(live[name].raw) else 0.0
            print(f"{i}/{len(names)} {name}: {len(live[name].raw)} windows, max |live - offline| {gap:.1e}",
                  flush=True)  # fmt: skip
    root = nab_root(args.data_dir)
    tables = {"live": score_runs(live, series, root), "offline": score_runs(offline, series, root)}
    gap = max(float(np.max(np.abs(live[n].raw - offline[n].raw))) for n in names if len(live[n].raw))
    summary = {
        "detector": args.detector,
        "series": len(names),
        "seconds": round(time.monotonic() - started, 1),
        "max_raw_score_difference": gap,
        "scores": {
            run: {p: round(s.normalized, 2) for p, s in table.items()} for run, table in tables.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nab-live.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
