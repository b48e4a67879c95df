"""The incident stage in ``anomstream bench`` (issue 25): does it keep up with the workers, and how
soon after an incident's first alert is its ``create`` on the ``incidents`` topic.

* :func:`stage_throughput`: an in-process stage, exactly-once as it is deployed, on the alerts topic
  that the bench's worker runs filled: alerts/s from its first handed-over batch to its last, on as
  many alerts as one worker run published. The bench sets it against the worker's alert output in
  the same run (worker events/s x the share of events that alerted): ``ratio`` >= 1.0 keeps up.
* :func:`create_latency`: a worker process and a stage process (``incidents run --eos``) under a
  steady replay; for every incident created, the broker's append time of its ``create`` message
  minus that of its first alert (both topics stamp LogAppendTime), pooled over the replay: p50 and
  p99. Every incident message read back is also validated as an OCSF Detection Finding.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka.admin import NewTopic

from anomstream.incident_summary import wait_grouped
from anomstream.measurements import median_and_spread, percentiles
from consumers.incidents.stage import IncidentStage, stage_command
from stream.kafka import create_topics, iter_topic, make_admin
from stream.ocsf import validate_detection_finding
from stream.settings import Settings
from stream.signals import StopFlag

CREATE = 1  # OCSF activity_id of an incident's first message


def incident_settings(settings: Settings, tag: str) -> Settings:
    """``settings`` with an incident stage group and incident topics of their own (the alerts topic
    unchanged), created; the incidents topic stamps LogAppendTime, as the bench's alerts topic does."""
    topics = settings.topics.model_copy(
        update={
            name: f"{getattr(settings.topics, name)}-{tag}"
            for name in ("incidents", "incident_members", "incidents_state")
        }
    )
    stage = settings.incidents.model_copy(update={"group_id": f"{settings.group_id}-incidents-{tag}"})
    fresh = settings.model_copy(update={"topics": topics, "incidents": stage})
    incidents = NewTopic(
        fresh.topic("incidents"),
        fresh.topic_partitions,
        fresh.replication_factor,
        config={"message.timestamp.type": "LogAppendTime"},
    )
    admin = make_admin(fresh)  # held until the future resolves: a collected client cancels it
    admin.create_topics([incidents])[fresh.topic("incidents")].result()
    create_topics(fresh)  # the stage's other topics, as `topics create` makes them
    return fresh


def stage_throughput(settings: Settings, alerts: int, tag: str, timeout_s: float = 600.0) -> dict[str, float]:
    """Alerts/s of one exactly-once stage grouping the first ``alerts`` alerts of the alerts topic."""
    fresh = incident_settings(settings, tag)
    stop = StopFlag(install=False)
    stage = IncidentStage(fresh, eos=True, stage_id=f"bench-{os.getpid()}-{tag}", stop=stop)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            stage.run(max_alerts=alerts)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    runner = threading.Thread(target=run, name=f"bench-stage-{tag}", daemon=True)
    first: tuple[float, int] | None = None  # (when, alerts) at the first batch handed over
    last = (time.perf_counter(), 0)
    deadline = time.monotonic() + timeout_s
    runner.start()
    while runner.is_alive():
        seen = stage.stats.alerts
        if seen > last[1]:
            last = (time.perf_counter(), seen)
            first = first or last
        if time.monotonic() > deadline:
            stop.set()
        runner.join(0.02)
    if failure:
        raise failure[0]
    seen = stage.stats.alerts
    if seen > last[1]:
        last = (time.perf_counter(), seen)
    # From the first batch handed over (its grouping and commit counted) to the last alert seen done:
    # two large batches can both be done between two looks, so the first look is no start.
    started = stage.stats.first_batch_at
    if first is None or started is None or last[0] <= started:
        raise RuntimeError(f"the incident stage grouped {seen} alerts of {alerts}: see its log")
    return {
        "alerts_per_s": last[1] / (last[0] - started),
        "alerts": float(last[1]),
        "incidents": float(stage.stats.created),
    }


def throughput_figures(runs: list[dict[str, float]], worker_alerts_per_s: float) -> dict[str, Any]:
    """The bench.json entry: the stage's median alerts/s against the worker's alert output.

    >>> throughput_figures([{"alerts_per_s": 30.0, "alerts": 9.0, "incidents": 2.0},
    ...                     {"alerts_per_s": 20.0, "alerts": 9.0, "incidents": 2.0}], 20.0)["ratio"]
    1.25
    """
    median, spread = median_and_spread([run["alerts_per_s"] for run in runs])
    return {
        "stage_eos_alerts_per_s": round(median),
        "worker_alerts_per_s": round(worker_alerts_per_s),
        "ratio": round(median / max(worker_alerts_per_s, 1e-9), 2),
        "alerts": int(runs[0]["alerts"]),
        "incidents": int(runs[0]["incidents"]),
        "spread": [round(v) for v in spread],
    }


@contextlib.contextmanager
def stage_process(
    settings: Settings, log_path: Path, eos: bool = True, timeout_s: float = 120.0
) -> Iterator[Any]:
    """``anomstream incidents run [--eos]`` as a process of its own, from its first assignment until
    the block ends (then SIGTERM, as an orchestrator stops it)."""
    import signal
    import subprocess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        stage_command(*(["--eos"] if eos else [])),
        env=settings.environment(),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while "assigned" not in log_path.read_text() and time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the incident stage exited with {process.returncode}: see {log_path}")
            time.sleep(0.5)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def create_latency(settings: Settings, replay: Callable[[], None]) -> dict[str, Any]:
    """First alert -> ``create`` message, for every incident created while ``replay`` runs (a worker
    process must be scoring the replayed stream into ``settings``' alerts topic)."""
    log_path = settings.state_dir / "bench-incidents.log"
    with stage_process(settings, log_path):
        replay()
        grouped = wait_grouped(settings, timeout_s=180)  # the bench's worker: at-least-once
    if not grouped:
        raise RuntimeError(f"the incident stage did not group every alert within 3 minutes: see {log_path}")
    created: dict[tuple[int, int], float] = {}  # (alerts partition, first alert's offset) -> appended ms
    invalid: list[str] = []
    messages = 0
    for message in iter_topic(settings, settings.topic("incidents"), timeout=120):
        doc = orjson.loads(message.value())
        messages += 1
        errors = validate_detection_finding(doc)
        if errors:
            invalid.append(f"{doc.get('finding_info', {}).get('uid')}: {errors[0]}")
        if doc.get("activity_id") == CREATE:
            first = first_alert(doc)
            if first is not None:
                created[first] = message.timestamp()[1]
    appended = alert_append_times(settings, set(created))
    delays = [created[key] - appended[key] for key in created if key in appended]
    p50, p99 = percentiles(delays)
    return {
        "p50": round(p50, 1),
        "p99": round(p99, 1),
        "incidents": len(delays),
        "incident_messages": messages,
        "ocsf_invalid": len(invalid),
        "ocsf_errors": invalid[:3],
    }


def first_alert(doc: dict[str, Any]) -> tuple[int, int] | None:
    """Where an incident's first alert lies, (alerts partition, offset), read from its id
    (``inc-<stream>-<partition>-<offset>``: the stage names an incident after its first alert).

    >>> first_alert({"finding_info": {"uid": "inc-kdd-3-1207"}})
    (3, 1207)
    """
    parts = str(doc.get("finding_info", {}).get("uid", "")).rsplit("-", 2)
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


def alert_append_times(settings: Settings, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """The broker's append time (ms) of the alerts at the given (partition, offset) positions."""
    found: dict[tuple[int, int], float] = {}
    for message in iter_topic(settings, settings.topic("alerts"), timeout=120):
        key = (message.partition(), message.offset())
        if key in wanted:
            found[key] = message.timestamp()[1]
            if len(found) == len(wanted):
                break
    return found


__all__ = [
    "alert_append_times",
    "create_latency",
    "first_alert",
    "incident_settings",
    "stage_throughput",
    "throughput_figures",
]
