"""The drift loop on a dataset schema's stream, through a real broker: a firewall log of one's own (real
connections), a model trained through its schema, a worker scoring the schema's topic, and a drift
monitor with ``--retrain`` watching it. The firewall's normal traffic changes (KDD's normal
connections, then NSL-KDD's): the monitor finds the change on the user's topic, the retrain reads the
post-change events back from it and shadow-evaluates a candidate against the validation attacks of
the schema's own training data, the candidate is promoted, the worker follows it, and the false
alarms on the new normal traffic fall."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from consumers.drift.monitor import DriftMonitor
from consumers.worker import ScoringWorker
from models.features import RecordsRaw
from models.registry import Registry
from models.training import TrainingRequest, train
from producers.table import ReplayOptions, replay_table
from stream.datasets import find_kdd_file, read_kdd
from stream.datasets.schema import DatasetSchema, load_schema, to_toml
from stream.datasets.table import read_table
from stream.kafka import create_topics, read_all
from stream.labels import is_attack
from stream.settings import DriftSettings, Settings
from stream.signals import StopFlag
from tests.support import data_root, make_settings, measure, require_data, score_records, wait_until

pytestmark = pytest.mark.integration

NUMERIC = ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "same_srv_rate", "dst_host_count"]
CATEGORICAL = ["protocol_type", "service", "flag"]
START = pd.Timestamp("2024-03-01 08:00:00", tz="UTC")
TRAINING_NORMAL, TRAINING_ATTACKS = 10_000, 600
BEFORE, AFTER, LATER = 4_000, 9_000, 3_000  # replayed: KDD normal, then NSL normal; then unseen NSL normal


def _write_log(frame: pd.DataFrame, path: Path, first_second: int) -> Path:
    """Real connections as a firewall's log: some of their columns, one connection per second."""
    log = frame[[*NUMERIC, *CATEGORICAL, "label"]].reset_index(drop=True)
    seen = START + pd.to_timedelta(np.arange(len(log)) + first_second, unit="s")
    log.insert(0, "seen_at", seen.strftime("%Y-%m-%dT%H:%M:%SZ"))
    log.to_csv(path, index=False)
    return path


def _firewall(folder: Path) -> tuple[DatasetSchema, Path, Path]:
    """The firewall's schema over a training log (seeded KDD normal connections and a few attacks), a
    replay log whose normal traffic changes after BEFORE rows, and a later log of new normal traffic."""
    rng = np.random.default_rng(7)
    kdd = read_kdd(find_kdd_file(require_data("kdd99").parent, "train"))
    normal = kdd[~is_attack(kdd["label"])].sample(frac=1.0, random_state=7)
    attacks = kdd[is_attack(kdd["label"])].sample(TRAINING_ATTACKS, random_state=7)
    training = pd.concat([normal.iloc[:TRAINING_NORMAL], attacks])
    training = training.iloc[rng.permutation(len(training))]
    nsl = read_kdd(find_kdd_file(require_data("nslkdd").parent, "nsl-train"))
    new_normal = nsl[~is_attack(nsl["label"])].sample(frac=1.0, random_state=7)
    assert len(new_normal) >= AFTER + LATER
    changed = pd.concat([normal.iloc[TRAINING_NORMAL : TRAINING_NORMAL + BEFORE], new_normal.iloc[:AFTER]])
    _write_log(training, folder / "firewall.csv", 0)
    replayed = _write_log(changed, folder / "firewall-march.csv", len(training))
    later = _write_log(new_normal.iloc[AFTER : AFTER + LATER], folder / "firewall-april.csv", 100_000)
    schema = DatasetSchema.from_dict({
        "name": "firewall", "description": "connections seen by the office firewall",
        "source": {"path": "firewall.csv"}, "timestamp": {"column": "seen_at"},
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL,
                     "log": ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "dst_host_count"]},
        "label": {"column": "label", "normal": ["normal"]},
    })  # fmt: skip
    (folder / "firewall.toml").write_text(to_toml(schema))
    return load_schema(folder / "firewall.toml"), replayed, later


def _updates(settings: Settings) -> list[dict]:
    return [orjson.loads(m.value()) for m in read_all(settings, settings.topic("model_updates"), timeout=10)]


def _alert_rate(records: list[dict], version: int, since: str = "", until: str = "~") -> tuple[float, int]:
    """Alert rate of the events scored by ``version`` with event times in [since, until), and their count."""
    alerts = [
        a
        for r in records
        if r["model_version"] == version
        for a, t in zip(r["is_alert"], r["event_times"], strict=True)
        if since <= str(t) < until
    ]
    return float(np.mean(alerts)) if alerts else float("nan"), len(alerts)


def test_a_schema_streams_drift_is_retrained_shadow_gated_promoted_and_its_false_alarms_fall(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    schema, replayed, later = _firewall(tmp_path)
    registry_dir = tmp_path / "registry"
    train(Registry(registry_dir), data_root(), TrainingRequest.for_schema(schema, detector="pca"))
    drift = DriftSettings(retrain_min_events=6_000, retrain_max_events=AFTER, retrain_min_fit_rows=500,
                          retrain_wait_s=60, retrain_cooldown_s=3600)  # fmt: skip
    settings = make_settings(kafka_bootstrap, registry_dir, state_dir=tmp_path / "state", drift=drift)
    create_topics(settings)
    topic = schema.input_topic(settings)
    create_topics(settings, topics=[topic])

    stop = StopFlag(install=False)
    worker = ScoringWorker(
        settings, ["firewall"], worker_id="fw-worker", stop=stop, topics={"firewall": topic}
    )
    monitor = DriftMonitor(settings, ["firewall"], retrain=True, stop=stop, instance_id="fw-monitor")
    threads = [threading.Thread(target=t.run, daemon=True) for t in (worker, monitor)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        assert replay_table(settings, schema, str(replayed), ReplayOptions()).delivered == BEFORE + AFTER
        outcome = lambda: [u for u in _updates(settings) if u["status"] in ("production", "rejected")]  # noqa: E731
        assert wait_until(outcome, 150), ("no retrain outcome", monitor.stats, _updates(settings))
        promoted_after = time.monotonic() - started
        updates = _updates(settings)
        assert updates[-1]["status"] == "production", updates  # not rejected: the shadow figures say why
        assert wait_until(lambda: worker.models["firewall"].version == 2, 60), "the worker did not follow"
        assert replay_table(settings, schema, str(later), ReplayOptions()).delivered == LATER
        scored = lambda: sum(len(r["offsets"]) for r in score_records(settings))  # noqa: E731
        assert wait_until(lambda: scored() >= BEFORE + AFTER + LATER, 60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)

    (event,) = [orjson.loads(m.value()) for m in read_all(settings, settings.topic("drift"))]
    assert (event["stream"], event["model_version"], event["action"]) == ("firewall", 1, "retrain_started")
    assert event["change"]["topic"] == topic  # the user's topic, where the retrain reads its events
    drift_id = f"drift:{event['event_id']}"
    candidate, promotion = updates
    assert [(u["version"], u["status"], u["reason"]) for u in updates] == [
        (2, "candidate", drift_id),
        (2, "production", drift_id),
    ]
    shadow = candidate["shadow"]
    registry = Registry(registry_dir)
    manifest = registry.manifest("firewall", "pca", 2)
    # The gate judged the candidate on the validation attacks of the schema's own training data.
    recall = manifest["shadow"]["recall"]
    assert recall is not None and recall["attacks"] > 0, manifest["shadow"]
    assert shadow["recall_candidate"] >= shadow["recall_production"] - 0.02
    assert shadow["alert_rate_candidate"] <= 0.9 * shadow["alert_rate_production"]
    assert manifest["retrain"]["topic"] == topic

    # What a user sees: the new normal traffic's false alarms, under v1 after the change, under v2 later.
    records = score_records(settings)
    change = START + pd.Timedelta(seconds=TRAINING_NORMAL + TRAINING_ATTACKS + BEFORE)
    change_time = change.strftime("%Y-%m-%dT%H:%M:%SZ")
    before_rate, n_before = _alert_rate(records, 1, until=change_time)
    v1_rate, n_v1 = _alert_rate(records, 1, since=change_time)
    v2_rate, n_v2 = _alert_rate(records, 2)
    assert (n_before, n_v2) == (BEFORE, LATER) and n_v1 > 1000
    assert v2_rate < 0.5 * v1_rate, (v1_rate, v2_rate)
    # The same later events offline, both versions: the promotion, not the sample, made the difference.
    table = read_table(schema, later)
    raw = RecordsRaw(table.numeric(), table.symbols())
    offline = {v: float(registry.load("firewall", "pca", v).score(raw).is_alert.mean()) for v in (1, 2)}
    assert offline[2] < 0.5 * offline[1], offline
    measure(
        f"own-data drift loop (firewall pca, KDD normal -> NSL normal at row {BEFORE}): promoted v2 "
        f"{promoted_after:.0f} s after the replay began; alert rate {before_rate:.2%} (v1 before the "
        f"change) -> {v1_rate:.2%} (v1 after it, {n_v1:,} events) -> {v2_rate:.2%} (v2, unseen new "
        f"normal; offline {offline[1]:.2%} -> {offline[2]:.2%}); shadow {shadow}"
    )
