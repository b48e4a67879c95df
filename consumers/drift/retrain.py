"""The drift loop's retrain, Kafka side: drift event in, a judged candidate (and maybe a promotion) out.

:class:`Retrainer` takes drift events from the monitor (``submit``, non-blocking) and runs each
retrain in ONE separate, niced process, so the monitor and the scoring workers on the same machine
keep their CPU. The job (:func:`retrain_job`)::

    wait until min_events post-change events exist (change.partition_offsets -> end offsets)
    -> read them from the input topic by offset range -> decode, encode with the production encoder
    -> analysts' verdicts (``feedback``) on alerts and on incidents (every alert of a judged incident,
       from ``incident-members``): benign rows always learnt, malicious rows never, and every
       confirmed attack (read back from the input topic) joins the gate's attacks
    -> models.retraining.retrain_after_change: weigh the evidence (severity, campaigns, persistence),
       learn what it allows into the candidate's learnt normal, shadow-evaluate it on the newest events
    -> save the candidate (evidence, selection and shadow results in its sealed manifest; status
       candidate, or rejected) and announce it on ``model-updates`` (status candidate / rejected, with
       the shadow figures and the reason)

``poll`` returns finished jobs and promotes the ones that passed (``model-updates`` reason
``drift:<event_id>``) by compare-and-swap: only if production is still the model the job was judged
against; otherwise the outcome is ``conflict`` (announced ``rejected``, production untouched).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from consumers.decoding import decoder_for
from consumers.model_updates import announce, promote
from consumers.verdicts import Verdicts, read_verdicts
from models.model_id import ModelId
from models.registry import RegistryConflictError, RegistryError, open_registry
from models.retraining import (
    INSUFFICIENT,
    PASSED,
    LabelledValidation,
    RetrainPolicy,
    rebuild_training_data,
    retrain_after_change,
)
from stream.kafka import end_offsets, header, read_ranges
from stream.messages import DriftEvent, ModelStatus, ModelUpdate
from stream.settings import Settings

log = logging.getLogger(__name__)

OUTCOMES = ("promoted", "rejected", "conflict", "failed", "insufficient_data", "skipped")
CHILD_NICENESS = 10


@dataclass(frozen=True)
class RetrainResult:
    """One finished retrain. ``outcome``: promoted | rejected | conflict | failed | insufficient_data |
    skipped; ``shadow``: the shadow evaluation's figures, flat (full results in the candidate's manifest)."""

    event_id: str
    stream: str
    outcome: str
    candidate_version: int | None
    shadow: dict[str, float] = field(default_factory=dict)
    detail: str = ""


@dataclass
class _Job:
    event: DriftEvent
    production: ModelId
    future: Future


def flat_shadow(shadow: dict[str, Any]) -> dict[str, float]:
    """``{"alert_rate": {"production": .05, ...}, ...}`` -> ``{"alert_rate_production": .05, ...}``."""
    flat: dict[str, float] = {}
    keys = ("alert_rate", "alert_rate_all", "recall", "never_learnt_alerts", "validation_fpr", "threshold")
    for key in keys:
        for side, value in (shadow.get(key) or {}).items():
            if side in ("production", "candidate") and value is not None:
                flat[f"{key}_{side}"] = float(value)
    if "passed" in shadow:
        flat["passed"] = float(shadow["passed"])
    return flat


def policy_from(settings: Settings) -> RetrainPolicy:
    """The retrain policy with the amounts and times an operator sets (ANOMSTREAM_DRIFT__RETRAIN_*)."""
    drift = settings.drift
    return RetrainPolicy(
        min_events=drift.retrain_min_events,
        max_events=max(drift.retrain_max_events, drift.retrain_min_events),
        min_learnt_rows=drift.retrain_min_fit_rows,
        wait_s=drift.retrain_wait_s,
        cooldown_s=drift.retrain_cooldown_s,
    )


class Retrainer:
    """Retrains a stream's model after a drift event, in a separate process; see the module docstring.

    For example::

        retrainer = Retrainer(Settings())
        retrainer.submit(event)
        # -> True
        retrainer.poll()  # later, from the monitor's loop
        # -> [RetrainResult(event_id='...', stream='kdd', outcome='promoted', candidate_version=2, ...)]
    """

    def __init__(self, settings: Settings, policy: RetrainPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or policy_from(settings)
        self.registry = open_registry(settings)
        self._pool: ProcessPoolExecutor | None = None
        self._jobs: list[_Job] = []
        self._last_start: dict[str, float] = {}

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fresh interpreter, no copy of the parent's Kafka clients or TensorFlow state.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=_child_setup)
        return self._pool

    def warm_up(self) -> None:
        """Start the retrain process now and import what a retrain needs (TensorFlow among it: tens of
        seconds on a busy machine), so a drift event's retrain starts at once (measured: the first
        retrain of the shift scenario read its data 35 s after the event, most of it this start)."""
        self._executor().submit(_warm_up)

    def submit(self, event: DriftEvent) -> bool:
        """Start a retrain for ``event`` in the background; False (logged) when it is ignored: a
        retrain is already running, the stream is in its cooldown, or the event is about a model
        that is no longer in production."""
        stream = event.stream
        if self._jobs:
            log.info("drift event %s: a retrain is already running, ignored", event.event_id)
            return False
        since = time.monotonic() - self._last_start.get(stream, -float("inf"))
        if since < self.policy.cooldown_s:
            log.info(
                "drift event %s: %s retrained %.0fs ago (cooldown), ignored", event.event_id, stream, since
            )
            return False
        try:
            prod = self.registry.production(stream)
        except RegistryError as exc:
            log.warning("drift event %s: %s", event.event_id, exc)
            return False
        if prod is None or prod.version != event.model_version:
            log.info("drift event %s is about %s v%d, not the production model: ignored",
                     event.event_id, stream, event.model_version)  # fmt: skip
            return False
        payload = msgspec.json.encode(event)
        future = self._executor().submit(reported, retrain_job, self.settings, payload, self.policy)
        self._jobs.append(_Job(event, prod.model, future))
        self._last_start[stream] = time.monotonic()
        log.info("drift event %s: retraining %s/%s in the background", event.event_id, stream, prod.model)
        return True

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def poll(self) -> list[RetrainResult]:
        """Finished retrains since the last poll; candidates that passed are promoted here."""
        finished = [job for job in self._jobs if job.future.done()]
        self._jobs = [job for job in self._jobs if not job.future.done()]
        return [self._finish(job) for job in finished]

    def _finish(self, job: _Job) -> RetrainResult:
        event = job.event
        try:
            outcome = job.future.result()
        except BrokenProcessPool as exc:
            self._pool = None  # the child died (killed, out of memory): a fresh one next time
            return self._log(
                RetrainResult(
                    event.event_id, event.stream, "failed", None, {}, f"retrain process died: {exc}"
                )
            )
        except RetrainFailed as exc:  # the child's exception, as text (its traceback is in the child's log)
            return self._log(RetrainResult(event.event_id, event.stream, "failed", None, {}, str(exc)))
        except Exception as exc:  # noqa: BLE001 - whatever the job raised is reported as a failure, once
            log.exception("retrain for drift event %s failed", event.event_id)
            return self._log(
                RetrainResult(
                    event.event_id, event.stream, "failed", None, {}, f"{type(exc).__name__}: {exc}"
                )
            )
        shadow = flat_shadow(outcome.get("shadow") or {})
        result = RetrainResult(event.event_id, event.stream, outcome["outcome"], outcome.get("version"),
                               shadow, outcome.get("detail", ""))  # fmt: skip
        if result.outcome == PASSED:
            result = self._promote(job, result)
        return self._log(result)

    def _promote(self, job: _Job, result: RetrainResult) -> RetrainResult:
        stream, detector = job.event.stream, job.production.detector
        version = result.candidate_version
        assert version is not None
        reason = f"drift:{job.event.event_id}"
        try:
            # Promoted only if production is still the model this retrain was judged against, compared
            # when the alias is swapped (a read here, then a write, would leave a window). A promotion
            # made meanwhile (by hand, say) is a decision this one did not see: it stands.
            current = self.registry.production(stream)
            if current is None or current.model != job.production:
                return self._conflict(job, replace(result, outcome="conflict"), reason)
            promotion = promote(self.settings, stream, detector, version, reason, expected=job.production)
        except RegistryConflictError:
            return self._conflict(job, replace(result, outcome="conflict"), reason)
        except RegistryError as exc:
            return replace(result, outcome="failed", detail=f"promotion refused: {exc}")
        told = "announced on model-updates" if promotion.announced else "no broker reachable to announce it"
        detail = f"{result.detail}; promoted {detector} v{version} ({told})"
        return replace(result, outcome="promoted", detail=detail)

    def _conflict(self, job: _Job, result: RetrainResult, reason: str) -> RetrainResult:
        """The candidate was judged against a production model that is no longer production: it is
        marked ``rejected`` (its shadow figures compare it with a model that is gone) and announced
        so on model-updates, in one line that says what happened."""
        stream, detector, version = result.stream, job.production.detector, result.candidate_version
        assert version is not None
        try:
            now = self.registry.production(stream)
        except RegistryError as exc:
            now, detail = None, f"conflict: production of {stream} unreadable ({exc})"
        else:
            moved = now.model if now else "none"
            detail = (
                f"conflict: production of {stream} changed from {job.production} to {moved} while "
                f"retraining; candidate {detector} v{version} not promoted (to promote it anyway: "
                f"anomstream models promote {stream} {detector} {version})"
            )
        try:
            self.registry.set_status(stream, detector, version, "rejected", detail)
        except RegistryError as exc:
            log.warning(
                "retrain %s: could not mark %s v%d rejected: %s", result.event_id, detector, version, exc
            )
        at = datetime.now(UTC).isoformat()
        announce(
            self.settings,
            ModelUpdate(stream, detector, version, at, "rejected", reason, result.shadow, detail),
        )
        return replace(result, detail=detail)

    @staticmethod
    def _log(result: RetrainResult) -> RetrainResult:
        level = logging.WARNING if result.outcome == "failed" else logging.INFO
        version = f" v{result.candidate_version}" if result.candidate_version else ""
        log.log(level, "retrain %s of %s%s: %s (%s)", result.event_id, result.stream, version, result.outcome,
                result.detail)  # fmt: skip
        return result

    def close(self) -> None:
        """Stop: a running retrain is cancelled with its process (its candidate was not saved yet,
        or stays in the registry as a candidate), and said so: a stop is not a failure."""
        for job in self._jobs:
            if not job.future.done():
                log.info("retrain for drift event %s of %s cancelled: the monitor is stopping (a candidate "
                         "it saved stays a candidate)", job.event.event_id, job.event.stream)  # fmt: skip
        if self._pool is not None:
            # SIGKILL: the retrain process ignores SIGTERM and SIGINT (see _child_setup).
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._jobs = []


# -- the job, in the child process ------------------------------------------------------------------
class RetrainFailed(Exception):  # noqa: N818 - what the monitor reports: "failed (...)"
    """What a job raised in the retrain process, as its type and message: every exception crosses the
    process boundary this way. A ``KafkaException`` cannot be pickled ("import of module 'cimpl'
    failed"): a broker that dropped during a retrain was reported as a PicklingError."""


def reported(job: Callable[..., Any], *args: Any) -> Any:
    """Run ``job`` in the retrain process; what it raises comes back as :class:`RetrainFailed`."""
    try:
        return job(*args)
    except Exception as exc:
        log.exception("retrain job %s failed", getattr(job, "__name__", job))  # the child's stderr
        raise RetrainFailed(f"{type(exc).__name__}: {exc}") from None


def _child_setup() -> None:
    # Below the workers and the monitor in the CPU scheduler: a retrain uses idle CPU first.
    os.nice(CHILD_NICENESS)
    # A stop of the whole process group (Ctrl-C, `anomstream up` stopping its processes) reaches this
    # process too: it is the monitor's to stop (Retrainer.close), or the monitor's poll reported a
    # retrain cut by a shutdown as "failed (retrain process died)".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s retrain[%(process)d] %(message)s")


def _warm_up() -> None:
    from models.detectors.backend import keras_module  # the training framework, imported once

    keras_module()


def benign_after_change(verdicts: Verdicts, topic: str, starts: dict[int, int]) -> int:
    """Events at or after the change analysts judged benign (an incident verdict counts each of the
    incident's alerts: one verdict on a cluster of new normal starts the retrain early)."""
    return sum(1 for t, p, o in verdicts.benign if t == topic and p in starts and o >= starts[p])


def post_change_ranges(
    settings: Settings, event: DriftEvent, policy: RetrainPolicy
) -> tuple[dict[int, tuple[int, int]], bool]:
    """Offset range per partition of the post-change events to collect, waiting (up to
    ``policy.wait_s``) until ``min_events`` of them exist, or only ``confirmed_min_events`` once
    analysts confirmed ``min_benign_verdicts`` post-change alerts benign (their word is evidence the
    normal traffic moved: the loop adapts sooner); at most ``max_events`` in all. Also returns
    whether verdicts started it early."""
    starts = {int(p): int(offset) for p, offset in event.change.partition_offsets.items()}
    deadline = time.monotonic() + policy.wait_s
    early = False
    while True:
        ends = end_offsets(settings, event.change.topic)
        available = sum(max(0, ends.get(p, 0) - start) for p, start in starts.items())
        if available >= policy.min_events or time.monotonic() >= deadline:
            break
        if available >= policy.early_events:
            verdicts = read_verdicts(settings, event.stream, timeout=10.0)
            if benign_after_change(verdicts, event.change.topic, starts) >= policy.min_benign_verdicts:
                early = True
                break
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
    share = policy.max_events // max(len(starts), 1)
    return {p: (start, min(ends.get(p, 0), start + share)) for p, start in starts.items()}, early


def _labels(messages: list) -> np.ndarray:
    values = [header(m, "label") for m in messages]
    return np.array([v.decode("utf-8", "replace") if v is not None else None for v in values], dtype=object)


def _verdict_masks(messages: list, verdicts: Verdicts) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``messages`` analysts confirmed benign, and which malicious."""
    where = [(m.topic(), m.partition(), m.offset()) for m in messages]
    benign = np.array([w in verdicts.benign for w in where], dtype=bool)
    malicious = np.array([w in verdicts.malicious for w in where], dtype=bool)
    return benign, malicious


MAX_CONFIRMED_ATTACKS = 2_000  # confirmed-malicious events read back for the gate, newest first
SPAN_GAP = 1_000  # offsets of one partition closer than this are read as one range


def offset_spans(offsets: list[int], gap: int = SPAN_GAP) -> list[tuple[int, int]]:
    """``[start, end)`` ranges covering ``offsets``, runs closer than ``gap`` merged (an incident's
    alerts lie close together: one read, not one per alert).

    >>> offset_spans([7, 3, 4, 5000, 5001])
    [(3, 8), (5000, 5002)]
    """
    spans: list[tuple[int, int]] = []
    for offset in sorted(set(offsets)):
        if spans and offset - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], offset + 1)
        else:
            spans.append((offset, offset + 1))
    return spans


def _confirmed_attacks(
    settings: Settings, stream: str, verdicts: Verdicts, production: Any, known: set
) -> np.ndarray | None:
    """The encoded rows of confirmed-malicious events outside the post-change read (they join the
    gate's attacks wherever they came from), or None. Read back from their topics, one span of
    nearby offsets per partition per pass."""
    pending = sorted((w for w in verdicts.malicious if w not in known), key=lambda w: -w[2])
    wanted = set(pending[:MAX_CONFIRMED_ATTACKS])
    offsets: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in wanted:
        offsets.setdefault((topic, partition), []).append(offset)
    queue = {tp: offset_spans(found) for tp, found in offsets.items()}
    messages: list = []
    while any(queue.values()):
        for topic in {t for t, _ in queue}:
            ranges = {p: spans_[0] for (t, p), spans_ in queue.items() if t == topic and spans_}
            if ranges:
                read = read_ranges(settings, topic, ranges, timeout=30.0)
                messages += [m for m in read if (m.topic(), m.partition(), m.offset()) in wanted]
        queue = {tp: spans_[1:] for tp, spans_ in queue.items()}
    if not messages:
        return None
    decoded = decoder_for(stream, production.encoder)(messages)
    return production.encoder.transform(decoded.raw) if decoded.messages else None


def retrain_job(settings: Settings, payload: bytes, policy: RetrainPolicy) -> dict[str, Any]:
    """One retrain, run in the child process; returns outcome, candidate version, shadow, detail."""
    event = msgspec.json.decode(payload, type=DriftEvent)
    registry = open_registry(settings)
    production = registry.load(event.stream)
    if production.version != event.model_version:
        return {
            "outcome": "skipped",
            "detail": f"production is v{production.version} now, not v{event.model_version}",
        }
    # The validation attacks first: their rebuild (seconds) overlaps the wait for post-change events.
    data = rebuild_training_data(production, settings.data_dir)
    validation = LabelledValidation.of(data) if data is not None else None
    ranges, early = post_change_ranges(settings, event, policy)
    if early:  # analysts confirmed the new normal: the confirmed amount of events is enough
        policy = replace(policy, min_events=policy.early_events)
    messages = read_ranges(settings, event.change.topic, ranges, timeout=max(60.0, policy.wait_s))
    # Offset order within each partition; across partitions, by broker timestamp: the newest last.
    messages.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
    batch = decoder_for(event.stream, production.encoder)(messages)
    X = production.encoder.transform(batch.raw) if batch.messages else np.zeros((0, 1), np.float32)
    verdicts = read_verdicts(settings, event.stream)
    benign, malicious = _verdict_masks(batch.messages, verdicts)
    known = {(m.topic(), m.partition(), m.offset()) for m in batch.messages}
    confirmed = _confirmed_attacks(settings, event.stream, verdicts, production, known)
    log.info("drift event %s: %d post-change events read (%d undecodable); verdicts (%d on alerts, %d on "
             "incidents): %d benign, %d malicious among them, %d confirmed attacks elsewhere", event.event_id,
             len(batch.messages), len(batch.rejected), len(verdicts.by_alert), len(verdicts.by_incident),
             int(benign.sum()), int(malicious.sum()), 0 if confirmed is None else len(confirmed))  # fmt: skip
    origin = {
        "event_id": event.event_id,
        "topic": event.change.topic,
        "ranges": {str(p): list(r) for p, r in ranges.items()},
        "production": {"detector": production.detector_name, "version": production.version},
        "started": "early, on analysts' benign verdicts" if early else "on min_events post-change events",
        "verdicts": {"benign": int(benign.sum()), "malicious": int(malicious.sum()),
                     "confirmed_attacks": 0 if confirmed is None else int(len(confirmed)),
                     **verdicts.audit()},
    }  # fmt: skip
    description = {"data": f"post-change events of {event.change.topic}", "drift_event": event.event_id}
    report = retrain_after_change(production, X, policy, validation, _labels(batch.messages), description,
                                  benign, malicious, confirmed)  # fmt: skip
    if report.candidate is None:
        return {"outcome": INSUFFICIENT, "detail": report.detail, "selection": report.selection}
    candidate = report.candidate
    calibration = report.calibration_scores
    cut = float(candidate.threshold.threshold_)
    ref = registry.save(
        candidate.stream, candidate.detector, candidate.encoder, candidate.threshold, report.training,
        {"calibration_fpr": float(np.mean(calibration >= cut)) if calibration is not None and len(calibration)
         else None},
        promote=False, calibration_scores=calibration, extra=report.manifest_entries(origin),
        learnt_normal=candidate.learnt_normal,
    )  # fmt: skip
    status: ModelStatus = "candidate" if report.outcome == PASSED else "rejected"
    why = f"shadow passed: drift:{event.event_id}" if report.outcome == PASSED else f"shadow: {report.detail}"
    registry.set_status(ref.stream, ref.detector, ref.version, status, why)
    update = ModelUpdate(ref.stream, ref.detector, ref.version, datetime.now(UTC).isoformat(), status,
                         f"drift:{event.event_id}", flat_shadow(report.shadow), report.detail)  # fmt: skip
    announce(settings, update)
    return {
        "outcome": report.outcome,
        "version": ref.version,
        "shadow": report.shadow,
        "detail": report.detail,
        "selection": report.selection,
    }
