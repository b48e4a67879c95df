"""The incident stage's figures on the demo's stream, offline (no broker): how the KDD ``corrected``
alerts group into incidents.

The demo's model (the KDD ``ae`` in the registry, trained into ``--registry`` when it has none) scores
the first 300,000 ``corrected`` connections; alerts are built exactly as the worker builds them
(``consumers.outputs.build_alerts``), spread over the alerts topic's partitions as librdkafka's default
partitioner spreads them (CRC32 of the source event's key), timed as a replay at ``--rate`` events/s,
and grouped by ``consumers.incidents.grouping`` with the incident settings of the environment::

    PYTHONPATH=$PWD ANOMSTREAM_DATA_DIR=/work/shared/data python scripts/incident-figures.py

Prints: alerts, incidents, alerts per incident, alert-weighted majority-label share (purity), the
attack types with at least 20 alerts and whether each leads an incident of its own, and whether
every alert is in exactly one incident.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from consumers.incidents.grouping import PartitionGrouper, PartitionState, alert_ref
from consumers.incidents.stage import grouping_policy
from consumers.outputs import BatchMeta, build_alerts
from models.features import RecordsRaw
from models.registry import open_registry
from producers.kdd import kdd_events, load_kdd_replay
from stream.datasets.schema import builtin_schema
from stream.settings import load_settings

BATCH = 5000


def kdd_alerts(settings, limit: int, rate: float, partitions: int) -> dict[int, list[bytes]]:
    """Alert JSON values per alerts partition, in the order the worker would publish them."""
    registry = open_registry(settings)
    if registry.production("kdd") is None:
        from models.training import TrainingRequest, train

        train(registry, settings.data_dir, TrainingRequest("kdd", "ae"))
    model = registry.load("kdd", inference_only=True)
    frame, source = load_kdd_replay(settings.data_dir, "test", announce=lambda _: None)
    frame = frame.iloc[:limit].reset_index(drop=True)
    events = list(kdd_events(frame, source, limit=limit))
    topic = settings.topic("kdd")
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    offsets: Counter[int] = Counter()
    detected_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    for first in range(0, len(frame), BATCH):
        rows = range(first, min(first + BATCH, len(frame)))
        keys = [events[i].key for i in rows]
        parts = [zlib.crc32(k) % partitions for k in keys]
        offs = []
        for p in parts:
            offs.append(offsets[p])
            offsets[p] += 1
        millis = np.array([int((start + i / rate) * 1000) for i in rows], "int64")
        times = np.datetime_as_string(millis.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()
        meta = BatchMeta([topic] * len(rows), parts, offs, keys, [events[i].label for i in rows], times)
        batch = frame.iloc[first : first + BATCH]
        scored = model.score(RecordsRaw.from_frame(batch, builtin_schema("kdd99")))
        for key, value in build_alerts(model, meta, scored, detected_at):
            # The alert is keyed by its source event's key: it lands in the same partition number.
            by_partition[zlib.crc32(key) % partitions].append(value)
    return by_partition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=5000.0, help="replay rate the event times follow")
    parser.add_argument("--registry", type=Path, default=None, help="model registry (default: settings)")
    parser.add_argument("--cache", type=Path, default=None, help="keep the alerts here between runs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--kafka", action="store_true", help="the figures of what the incident stage published on the broker"
    )
    args = parser.parse_args()
    settings = load_settings(**({"registry_dir": args.registry} if args.registry else {}))
    if args.kafka:
        kafka_figures(settings, args.json)
        return
    partitions = settings.topic_partitions
    if args.cache is not None and args.cache.exists():
        by_partition = {
            int(k): [v.encode() for v in vs] for k, vs in json.loads(args.cache.read_text()).items()
        }
    else:
        by_partition = kdd_alerts(settings, args.limit, args.rate, partitions)
        if args.cache is not None:
            args.cache.write_text(json.dumps({p: [v.decode() for v in vs] for p, vs in by_partition.items()}))
    policy = grouping_policy(settings.incidents)
    members: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
    for partition, values in sorted(by_partition.items()):
        grouper = PartitionGrouper(PartitionState(settings.topic("alerts"), partition), policy)
        refs = [alert_ref(v, offset) for offset, v in enumerate(values)]
        for first in range(0, len(refs), 1000):  # batches, with the timers between them as live
            batch = refs[first : first + 1000]
            wall = batch[-1].time_ms
            for incident_id, alerts in grouper.add(batch, wall).members.items():
                members[incident_id] += [(a.label, a.alert_id) for a in alerts]
            grouper.tick(wall)
        grouper.close_all(refs[-1].time_ms if refs else 0)
    print_figures(members, json_out=args.json)


def kafka_figures(settings, json_out: bool) -> None:
    """The figures from the topics: members from ``incident-members``, compared with ``alerts``."""
    from stream.kafka import read_all
    from stream.messages import decode_alert, decode_incident_members

    members: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
    for message in read_all(settings, settings.topic("incident_members"), timeout=600):
        batch = decode_incident_members(message.value())
        members[batch.incident_id] += [(a.label, a.alert_id) for a in batch.alerts]
    alerts = {
        decode_alert(m.value()).alert_id for m in read_all(settings, settings.topic("alerts"), timeout=600)
    }
    figures = print_figures(members, json_out)
    grouped = {a for m in members.values() for _, a in m}
    print(
        f"alerts on the topic: {len(alerts):,}; in no incident: {len(alerts - grouped):,}; "
        f"in an incident and not on the topic: {len(grouped - alerts):,}; "
        f"each alert once: {figures['each_alert_once']}"
    )


def print_figures(members: dict[str, list[tuple[str | None, str]]], json_out: bool = False) -> dict:
    alerts = sum(len(m) for m in members.values())
    ids = [a for m in members.values() for _, a in m]
    majority: dict[str, str] = {}
    pure = 0
    for incident_id, m in members.items():
        label, n = Counter(lab or "?" for lab, _ in m).most_common(1)[0]
        majority[incident_id] = label
        pure += n
    by_type = Counter(lab or "?" for m in members.values() for lab, _ in m)
    attack_types = sorted(t for t, n in by_type.items() if n >= 20 and t != "normal")
    led = {t for t in majority.values()}
    figures = {
        "alerts": alerts,
        "incidents": len(members),
        "alerts_per_incident": alerts / max(len(members), 1),
        "purity": pure / max(alerts, 1),
        "attack_types_20": len(attack_types),
        "attack_types_leading": sum(t in led for t in attack_types),
        "not_leading": [t for t in attack_types if t not in led],
        "each_alert_once": len(ids) == len(set(ids)),
    }
    if json_out:
        print(json.dumps(figures))
        return figures
    for name, value in figures.items():
        print(f"{name:>22}: {value:.4f}" if isinstance(value, float) else f"{name:>22}: {value}")
    mix = Counter()
    for incident_id in members:
        mix[majority[incident_id]] += 1
    print("incidents by majority label:", dict(mix.most_common()))
    print("alerts by label:", dict(by_type.most_common()))
    return figures


if __name__ == "__main__":
    main()
