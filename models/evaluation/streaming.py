"""``anomstream evaluate --stream kdd --protocol stream``: the whole 10% file, in its order, through a
detector with and without the drift loop.

The 10% file (494,021 connections) is not a shuffled sample: it holds long runs of normal traffic
broken by floods (one smurf run is 193,127 connections long). Replayed in order it is a stream that
drifts, and the protocol scores it test-then-train:

1. **Warm-up, without labels.** The first ``warmup`` connections (N = 5,000, 1% of the file) are all
   the initial model learns from: their encoder, detector and threshold, with the retrain filter's
   repeat cap (no record above ``max_record_share`` of the rows) as the only cleaning. Their labels
   are never read (4 of the 5,000 are attacks, as we found afterwards). N = 20,000 was tried first:
   it holds a 3,695-connection smurf run, and although the cap leaves 128 rows of it, the
   autoencoder learnt smurf as normal (recall 0.002 on the 193,127-connection smurf flood later on).
2. **Static** (without the loop): the initial model scores every later connection.
3. **With the loop:** the same model scores the stream in chunks; its scores and alert flags feed
   the drift monitor's watch (``models.drift.DriftWatch``: ADWIN calibrated on the model's own
   non-alerting validation scores to one false alarm per 1,000,000 stable events, attack bursts
   guarded). A detection starts a retrain once ``min_events`` connections after the estimated change
   have been scored (``models.retraining.retrain_after_change``, exactly what the live loop runs:
   the same evidence, learnt normal, shadow evaluation). A candidate that passes replaces the
   model from the next chunk on (its few seconds of learning are not modelled: the live loop keeps
   scoring with the old model meanwhile), and the watch is recalibrated on the new model.

The shadow evaluation's validation attacks are a seeded sample of ``corrected`` (another file than
the stream; its labels are used by the promotion gate only, never for training or thresholds).

Scores of different models are not on one scale, so ROC AUC over the stream ranks the ratio of each
score to the threshold of the model that gave it (for the static run that is the plain ranking).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.drift import WatchConfig, calibrate, ert_for_risk
from models.drift.watch import DriftWatch
from models.features import RecordsRaw, TableEncoder, protocol_encoder
from models.model_id import Manifest
from models.retraining import PASSED, LabelledValidation, RetrainPolicy, cap_repeats, retrain_after_change
from models.scoring import ScoringModel
from models.training.data import TrainingData
from models.training.fit import FittedModel, fit_model
from models.training.recipes import resolve
from stream.datasets import find_kdd_file, is_attack, read_kdd
from stream.datasets.kdd import kdd_schema_name
from stream.datasets.schema import builtin_schema

log = logging.getLogger(__name__)

STREAM_POLICY = RetrainPolicy(min_events=20_000, max_events=60_000, cooldown_s=0.0, wait_s=0.0)


@dataclass(frozen=True)
class StreamProtocol:
    """The protocol's settings (defaults: the published run)."""

    detector: str = "ae"
    warmup: int = 5_000  # N: the initial model's unlabelled connections (see the module docstring)
    limit: int | None = None  # connections of the file to stream (None: all 494,021)
    chunk: int = 1_000  # connections scored per step of the loop (the worker's batch)
    window: int = 10_000  # rolling figures per this many connections
    validation_attacks: int = 2_000
    target_ert: int = 1_000_000
    false_alarm_risk: float = 0.05
    policy: RetrainPolicy = STREAM_POLICY
    overrides: dict[str, Any] = field(default_factory=dict)  # detector parameters
    seed: int = 0


@dataclass
class LoopEvent:
    """A drift detection and what the loop did with it (stream indices)."""

    detected_at: int
    change_at: int
    detector: str
    statistic: float
    threshold: float
    retrain_at: int | None = None
    outcome: str = "pending"
    detail: str = ""
    shadow: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    contamination: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0


@dataclass
class StreamRun:
    """Per-connection results of one pass: threshold-relative scores, alert flags, model index."""

    ratio: np.ndarray
    flags: np.ndarray
    model_of: np.ndarray  # which model (0 = initial, 1.. = promoted) scored each connection
    models: list[ScoringModel]
    promoted_at: list[int]
    events: list[LoopEvent]


@dataclass(frozen=True)
class StreamData:
    X: np.ndarray  # every connection, encoded by the warm-up encoder
    labels: np.ndarray  # original labels (never read before the figures)
    encoder: TableEncoder
    validation: LabelledValidation
    source: str


def load_stream(data_dir: Path, protocol: StreamProtocol) -> StreamData:
    """The 10% file in order, encoded with an encoder fitted on the warm-up rows only."""
    path = find_kdd_file(data_dir, "train")
    frame = read_kdd(path, limit=protocol.limit)
    if not 100 <= protocol.warmup <= len(frame) - protocol.policy.min_events:
        raise ValueError(
            f"--warmup must be at least 100 and leave {protocol.policy.min_events:,} of the {len(frame):,} "
            f"connections to stream, got {protocol.warmup:,}"
        )
    schema = builtin_schema(kdd_schema_name(path))
    raw = RecordsRaw.from_frame(frame, schema)
    encoder = protocol_encoder(schema).fit(raw.take(slice(0, protocol.warmup)))
    X = encoder.transform(raw)
    test = read_kdd(find_kdd_file(data_dir, "test"))
    attack = np.flatnonzero(is_attack(test["label"]))
    normal = np.flatnonzero(~is_attack(test["label"]))
    rng = np.random.default_rng(protocol.seed)
    n = protocol.validation_attacks
    rows = np.r_[rng.choice(normal, n, replace=False), rng.choice(attack, n, replace=False)]
    validation = LabelledValidation(
        encoder.transform(RecordsRaw.from_frame(test.iloc[rows], schema)),
        np.r_[np.zeros(n, bool), np.ones(n, bool)],
        f"seeded sample of {n:,} attack and {n:,} normal connections of corrected",
    )
    return StreamData(X, frame["label"].to_numpy().astype(str), encoder, validation, path.name)


def fit_warmup(data: StreamData, protocol: StreamProtocol) -> FittedModel:
    """The initial model, from the first ``warmup`` connections without their labels."""
    warm = data.X[: protocol.warmup]
    rows = cap_repeats(warm, np.arange(len(warm)), protocol.policy.max_record_share)
    order = np.random.default_rng(protocol.seed).permutation(rows)
    n_stop, n_cal = int(len(order) * 0.1), int(len(order) * 0.1)
    stop, cal, fit = order[:n_stop], order[n_stop : n_stop + n_cal], order[n_stop + n_cal :]
    description = {
        "data": f"first {protocol.warmup:,} connections of {data.source}, labels unread",
        "rows": {
            "warmup": protocol.warmup,
            "after_repeat_cap": int(len(rows)),
            "fit": int(len(fit)),
            "early_stop": int(n_stop),
            "calibration": int(n_cal),
        },  # fmt: skip
        "protocol": "full",
        "seed": protocol.seed,
    }
    training = TrainingData("kdd", data.encoder, warm[fit], warm[stop], warm[cal], description=description)
    params = {"verbose": 0, **protocol.overrides}
    recipe = resolve("kdd", protocol.detector, "full", params, protocol.seed)
    return fit_model(training, recipe, "quantile", 0.01)


def as_scoring(fitted: FittedModel, version: int) -> ScoringModel:
    manifest = Manifest(training=fitted.description, version=version)
    return ScoringModel("kdd", fitted.detector.name, version, fitted.encoder, fitted.detector,
                        fitted.threshold, manifest, fitted.calibration_scores)  # fmt: skip


def _watch(model: ScoringModel, protocol: StreamProtocol) -> DriftWatch:
    """The monitor's watch for ``model``: ADWIN on its non-alerting validation scores."""
    assert model.calibration_scores is not None
    reference = model.calibration_scores[~model.threshold.classify(model.calibration_scores)]
    ert = ert_for_risk(protocol.target_ert, protocol.false_alarm_risk)
    return DriftWatch(WatchConfig(calibrate("adwin", reference, ert, protocol.seed)))


def _score(model: ScoringModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores (learnt normal applied) and alert flags of ``X``."""
    scores = model.judge(X)
    return scores, model.threshold.classify(scores)


def _ratio(model: ScoringModel, scores: np.ndarray) -> np.ndarray:
    return scores / max(float(model.threshold.threshold_), 1e-12)


def run_static(initial: ScoringModel, data: StreamData, protocol: StreamProtocol) -> StreamRun:
    scores, flags = _score(initial, data.X[protocol.warmup :])
    return StreamRun(_ratio(initial, scores), flags, np.zeros(len(scores), np.int8), [initial], [], [])


def run_loop(
    initial: ScoringModel,
    data: StreamData,
    protocol: StreamProtocol,
    progress: Callable[[str], None] | None = None,
) -> StreamRun:
    """Test-then-train with the drift loop: score a chunk, feed the watch, retrain when due."""
    start, end = protocol.warmup, len(data.X)
    ratio, flags = np.zeros(end - start), np.zeros(end - start, bool)
    model_of = np.zeros(end - start, np.int8)
    models, promoted_at, events = [initial], [], []
    model, watch, watch_base = initial, _watch(initial, protocol), start
    pending: LoopEvent | None = None
    for lo in range(start, end, protocol.chunk):
        hi = min(lo + protocol.chunk, end)
        scores, f = _score(model, data.X[lo:hi])
        ratio[lo - start : hi - start], flags[lo - start : hi - start] = _ratio(model, scores), f
        model_of[lo - start : hi - start] = len(models) - 1
        for hit in watch.update(scores, f):
            if pending is not None:
                continue
            change = watch_base + max(hit.change_position, 0)
            pending = LoopEvent(watch_base + hit.position, change, hit.detector, hit.statistic, hit.threshold)
            events.append(pending)
            _say(progress, f"drift at {pending.detected_at:,} (change from {pending.change_at:,})")
        if pending is None or hi < pending.change_at + protocol.policy.min_events:
            continue
        post = slice(pending.change_at, min(hi, pending.change_at + protocol.policy.max_events))
        report = retrain_after_change(model, data.X[post], protocol.policy, data.validation,
                                      data.labels[post].astype(object))  # fmt: skip
        pending.retrain_at, pending.outcome, pending.detail = hi, report.outcome, report.detail
        pending.shadow, pending.selection, pending.contamination = (
            report.shadow,
            report.selection,
            report.contamination,
        )
        pending.fit_seconds = report.seconds
        _say(progress, f"retrain at {hi:,}: {report.outcome} ({report.detail})")
        if report.outcome == PASSED and report.candidate is not None:
            model = replace(
                report.candidate, version=len(models) + 1, calibration_scores=report.calibration_scores
            )
            models.append(model)
            promoted_at.append(hi)
            watch, watch_base = _watch(model, protocol), hi
        pending = None
    return StreamRun(ratio, flags, model_of, models, promoted_at, events)


def _say(progress: Callable[[str], None] | None, text: str) -> None:
    log.info("stream protocol: %s", text)
    if progress is not None:
        progress(text)


def evaluate_stream(
    data_dir: Path, protocol: StreamProtocol, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Both passes over the stream; the figures of :mod:`models.evaluation.stream_report`."""
    from models.evaluation.stream_report import stream_figures

    started = time.perf_counter()
    data = load_stream(data_dir, protocol)
    fitted = fit_warmup(data, protocol)
    initial = as_scoring(fitted, 1)
    _say(progress, f"initial {protocol.detector} fitted on the first {protocol.warmup:,} connections "
                   f"in {fitted.fit_seconds:.0f}s")  # fmt: skip
    static = run_static(initial, data, protocol)
    loop = run_loop(initial, data, protocol, progress)
    return stream_figures(data, protocol, fitted, static, loop, time.perf_counter() - started)
