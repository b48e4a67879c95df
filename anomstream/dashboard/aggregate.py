"""Server-side aggregation for the dashboard: whatever rate the worker scores at, the browser gets a
few kilobytes per update.

:class:`Aggregator` is fed decoded messages (score records, alerts, drift events, model updates) and
offset samples, and is asked for a *frame* a few times a second:

* per stream: events/s in (input end offsets) and scored, group lag, totals, precision / recall / F1
  so far and over the last minute, the threshold and the model that is scoring;
* a uniform sample of the scores that arrived since the last frame (at most ``points_per_frame``
  per stream), coloured by ground truth, placed at their event time, for the scores chart;
* a histogram of log10(score / threshold), normal vs anomalous, per model version;
* the newest alerts of every (stream, severity) since the last frame, so a filter for a rare
  severity still shows its latest alerts when common ones arrive by the thousand;
* new timeline entries (drift events, retrains, shadow results, promotions, rollbacks);
* analysts' verdicts on the alerts a page shows (``feedback``), so every page marks them;
* the incidents (:mod:`.incidents`), open ones first, in a frame whenever one changed.

It never keeps a per-event structure: memory is bounded whatever the stream's length. Duplicates
(a retried batch re-published after a crash) are recognised per partition by offset and counted
once. Not thread-safe by itself: the feed and the server share it under :attr:`lock`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter as Tally
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec
import numpy as np

from anomstream.dashboard.incidents import IncidentBoard
from models.evaluation.confusion import Confusion
from models.model_id import ModelId, ProductionAlias
from models.registry import Registry, RegistryError
from models.thresholds import DEFAULT_RATIOS, SEVERITIES, FixedThreshold, Threshold, grade
from stream.labels import label_classes
from stream.messages import (
    Alert,
    DateTime,
    DriftEvent,
    Feedback,
    ModelUpdate,
    ScoreRecord,
    Severity,
    decode_alert,
)

# A scored event's class (stream.labels: NORMAL 0, ATTACK 1, UNLABELLED 2) indexes the histogram's
# rows and colours the page's points.
HIST_DECADES = 3.0  # the histogram spans threshold / 1000 .. threshold * 1000
HIST_BINS = 60
RATE_WINDOW_S = 5.0
MINUTE_S = 60
POINTS_WINDOW_S = 60.0  # the scrolling chart's width (event time), kept for a page that opens later
POINTS_FRAMES_KEPT = 400  # at most this many frames' samples (a minute and more at 0.4 s a frame)
RATE_HISTORY = 300  # one point per second: the throughput chart's last five minutes
RECENT_ALERTS = 50  # per (stream, severity), for a page that opens mid-replay
NEW_ALERTS_PER_FRAME = 8  # per (stream, severity)
TIMELINE_LENGTH = 200
# Alerts sent to pages, by id: a verdict on one of them needs no search of the alerts topic. A page
# keeps its newest 400, and frames bring at most 8 per (stream, severity): this covers every page.
SHOWN_ALERTS_KEPT = 2000
VERDICTS_KEPT = 5000
MIN_SCORE = 1e-9  # the score chart's y axis is logarithmic

# (stream, detector, version) -> the model's threshold: the object stored with it (its cut and its
# severity ratios: ``registry_thresholds``), or its cut alone (graded with the default ratios).
ThresholdLookup = Callable[[str, str, int], "Threshold | float | None"]


def registry_thresholds(registry: Registry) -> ThresholdLookup:
    """The lookup to grade with: each version's threshold as stored in the registry, cut and ratios,
    cached (a published version never changes); None where the registry has none readable."""

    @lru_cache(maxsize=64)
    def lookup(stream: str, detector: str, version: int) -> Threshold | None:
        try:
            return registry.threshold(stream, detector, version)
        except (RegistryError, OSError):
            return None

    return lookup


class AlertHead(msgspec.Struct, gc=False):
    """The fields of an alert (:class:`stream.messages.Alert`) that the aggregation needs.

    Alerts come by the ten thousand a second; decoding these few fields is about 4x cheaper than the
    whole alert, which is decoded only for the handful a page is shown.
    """

    stream: str
    severity: Severity
    detector: str
    model_version: int
    threshold: float
    detected_at: DateTime


decode_alert_head = msgspec.json.Decoder(AlertHead).decode


class KeptAlert(NamedTuple):
    detected_at: str
    raw: bytes


class PerSecond:
    """Counts in one-second buckets over a sliding window (rates, the last minute's confusion)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.buckets: deque[tuple[int, Any]] = deque()

    def bucket(self, now: float, make: Callable[[], Any]) -> Any:
        second = int(now)
        if not self.buckets or self.buckets[-1][0] != second:
            self.buckets.append((second, make()))
        while self.buckets and self.buckets[0][0] <= second - self.seconds:
            self.buckets.popleft()
        return self.buckets[-1][1]

    def within(self, now: float, seconds: float) -> list[Any]:
        oldest = now - seconds
        return [value for second, value in self.buckets if second >= oldest - 1]


@dataclass
class Histogram:
    """Counts of log10(score / threshold) per class, in HIST_BINS bins; outliers land in the end bins."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros((3, HIST_BINS), dtype=np.int64))

    def add(self, scores: np.ndarray, classes: np.ndarray, threshold: float) -> None:
        ratio = np.log10(np.maximum(scores, MIN_SCORE) / max(threshold, MIN_SCORE))
        bins = ((ratio + HIST_DECADES) * HIST_BINS / (2 * HIST_DECADES)).astype(np.int64)
        np.clip(bins, 0, HIST_BINS - 1, out=bins)
        np.add.at(self.counts, (classes, bins), 1)


@lru_cache(maxsize=4096)
def _epoch(iso: str | None) -> float:
    """An event time (ISO 8601) in epoch seconds; NaN when there is none or it does not parse."""
    if not iso:
        return math.nan
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return math.nan
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def histogram_edges() -> list[float]:
    return np.linspace(-HIST_DECADES, HIST_DECADES, HIST_BINS + 1).round(6).tolist()


@dataclass
class StreamState:
    name: str
    scored: int = 0
    alerts: int = 0
    duplicates: int = 0
    confusion: Confusion = field(default_factory=Confusion)
    per_second: PerSecond = field(default_factory=lambda: PerSecond(MINUTE_S + 1))
    threshold: float | None = None
    threshold_source: str = ""
    # The severity ratios of the current model's threshold (the registry's, when the lookup has it).
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    detector: str | None = None
    model_version: int | None = None
    replaced: set[ModelId] = field(default_factory=set)
    # Highest offset seen per source partition: a re-published record below it is a duplicate.
    high_water: dict[tuple[str, int], int] = field(default_factory=dict)
    histograms: dict[ModelId, Histogram] = field(default_factory=dict)
    # Scores since the last frame, sampled when the frame is made.
    pending: list[tuple[np.ndarray, np.ndarray, float, list[str | None]]] = field(default_factory=list)
    # Each frame's sample: (when it was made, its newest event time, the sample).
    points: deque[tuple[float, float, dict[str, list]]] = field(
        default_factory=lambda: deque(maxlen=POINTS_FRAMES_KEPT)
    )
    end_offsets: deque[tuple[float, int]] = field(default_factory=deque)
    lag: int | None = None
    rates: deque[tuple[float, float | None, float]] = field(
        default_factory=lambda: deque(maxlen=RATE_HISTORY)
    )
    alerts_by_severity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))

    @property
    def model(self) -> ModelId | None:
        """The model whose scores the stream follows now; None before its first record."""
        if self.detector is None or self.model_version is None:
            return None
        return ModelId(self.detector, self.model_version)


class Aggregator:
    """Everything the dashboard shows, kept as counters, windows and samples."""

    def __init__(
        self,
        streams: tuple[str, ...],
        thresholds: ThresholdLookup | None = None,
        points_per_frame: int = 150,
        seed: int = 0,
    ) -> None:
        self.lock = threading.Lock()
        self.streams: dict[str, StreamState] = {name: StreamState(name) for name in streams}
        self.thresholds = thresholds
        self.points_per_frame = points_per_frame
        self._rng = np.random.default_rng(seed)
        self.recent_alerts: dict[tuple[str, str], deque[KeptAlert]] = defaultdict(
            lambda: deque(maxlen=RECENT_ALERTS)
        )
        self.new_alerts: dict[tuple[str, str], deque[KeptAlert]] = defaultdict(
            lambda: deque(maxlen=NEW_ALERTS_PER_FRAME)
        )
        self.timeline: deque[dict[str, Any]] = deque(maxlen=TIMELINE_LENGTH)
        self.new_timeline: list[dict[str, Any]] = []
        self.production: dict[str, dict[str, Any]] = {}
        self.shown: OrderedDict[str, Alert] = OrderedDict()
        self.verdicts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.new_verdicts: dict[str, dict[str, Any]] = {}
        self.incidents = IncidentBoard()
        self.seq = 0
        self.last_frame_at = time.time()
        # Alerts counted per (stream, severity) since the feed last exported them as metrics.
        self.severity_counted: Tally[tuple[str, str]] = Tally()
        self.counts = {"score_records": 0, "alerts": 0, "drift_events": 0, "model_updates": 0, "verdicts": 0,
                       "incidents": 0, "invalid": 0}  # fmt: skip
        self.status: dict[str, Any] = {"broker": "connecting"}

    def stream(self, name: str) -> StreamState:
        if name not in self.streams:
            self.streams[name] = StreamState(name)
        return self.streams[name]

    # -- inputs -------------------------------------------------------------------------------
    def add_score_record(self, record: ScoreRecord, now: float | None = None) -> int:
        """Count a record's events once (duplicates by offset), sample it; returns the new events."""
        now = time.time() if now is None else now
        self.counts["score_records"] += 1
        state = self.stream(record.stream)
        offsets = np.asarray(record.offsets, dtype=np.int64)
        if offsets.size == 0:
            return 0
        key = (record.topic, record.partition)
        fresh = offsets > state.high_water.get(key, -1)
        state.high_water[key] = max(state.high_water.get(key, -1), int(offsets.max()))
        n_fresh = int(np.count_nonzero(fresh))
        state.duplicates += offsets.size - n_fresh
        if n_fresh == 0:
            return 0
        scores = np.asarray(record.scores, dtype=np.float64)
        flagged = np.asarray(record.is_alert, dtype=bool)
        classes = label_classes(record.labels).astype(np.int64)
        times = record.event_times
        if n_fresh < offsets.size:
            scores, flagged, classes = scores[fresh], flagged[fresh], classes[fresh]
            times = [t for t, keep in zip(times, fresh.tolist(), strict=False) if keep]
        n_alerts = int(np.count_nonzero(flagged))
        confusion = Confusion.of_classes(flagged, classes)
        current = self._follow_model(state, record.detector, record.model_version)
        if current and state.threshold is None and n_alerts:
            # No registry and no alert yet: the lowest flagged score is the threshold, near enough.
            state.threshold, state.threshold_source = float(scores[flagged].min()), "estimate"
        if n_alerts:
            self._count_severities(state, scores[flagged], record.detector, record.model_version)
        state.scored += n_fresh
        state.alerts += n_alerts
        state.confusion.add(confusion)
        bucket = state.per_second.bucket(now, lambda: {"scored": 0, "alerts": 0, "confusion": Confusion()})
        bucket["scored"] += n_fresh
        bucket["alerts"] += n_alerts
        bucket["confusion"].add(confusion)
        if current and state.threshold is not None:
            model = ModelId(record.detector, record.model_version)
            if model not in state.histograms:
                # Keep the current model and the one before.
                for old in list(state.histograms)[:-1]:
                    del state.histograms[old]
                state.histograms[model] = Histogram()
            state.histograms[model].add(scores, classes, state.threshold)
        state.pending.append((scores, classes, now, times))
        return n_fresh

    def _follow_model(self, state: StreamState, detector: str, version: int) -> bool:
        """Whether (detector, version) is the stream's current model, switching to it when it is new.

        Replicas reload a promoted model one after the other: records of the model it replaced may
        still arrive for a moment, and must not switch the stream back.
        """
        model = ModelId(detector, version)
        if model == state.model:
            return True
        if model in state.replaced:
            return False
        if state.model is not None:
            state.replaced.add(state.model)
        state.detector, state.model_version = model
        state.threshold, state.threshold_source, state.ratios = None, "", DEFAULT_RATIOS
        looked_up = self._lookup(state.name, detector, version)
        if looked_up is not None:
            state.threshold, state.threshold_source = looked_up.threshold_, "registry"
            state.ratios = looked_up.ratios
        return True

    def _lookup(self, stream: str, detector: str, version: int) -> Threshold | None:
        found = self.thresholds(stream, detector, version) if self.thresholds else None
        if found is None or isinstance(found, Threshold):
            return found
        return FixedThreshold(found)  # a cut alone: graded with the default ratios

    def _count_severities(
        self, state: StreamState, alerting: np.ndarray, detector: str, version: int
    ) -> None:
        """Severities of a record's alerting scores, graded as the worker grades its alerts
        (:func:`models.thresholds.grade`, with the model's own ratios) against the threshold of the
        model that scored them: exact for a fixed threshold, the newest one an alert carried for a
        sliding one."""
        threshold, ratios = state.threshold, state.ratios
        if (detector, version) != (state.detector, state.model_version) or threshold is None:
            # A record of the model before a switch: its own threshold, from the registry.
            looked_up = self._lookup(state.name, detector, version)
            if looked_up is not None:
                threshold, ratios = looked_up.threshold_, looked_up.ratios
        if threshold is None:
            return
        levels = grade(alerting, threshold, ratios)
        for level, n in enumerate(np.bincount(levels, minlength=len(SEVERITIES)).tolist()):
            if n:
                state.alerts_by_severity[SEVERITIES[level]] += n
                self.severity_counted[(state.name, SEVERITIES[level])] += n

    def add_alert(self, raw: bytes, head: AlertHead | None = None) -> None:
        """Keep an alert for the feed (its encoded JSON; ``head`` when the caller decoded it already).
        Alerts are counted from the score records, which carry every event: the feed reads only the
        newest alerts of each partition."""
        alert = decode_alert_head(raw) if head is None else head
        self.counts["alerts"] += 1
        state = self.stream(alert.stream)
        if self._follow_model(state, alert.detector, alert.model_version):
            # What the worker compared against: exact, and it follows a sliding threshold.
            state.threshold, state.threshold_source = alert.threshold, "alerts"
        group = (alert.stream, alert.severity)
        kept = KeptAlert(alert.detected_at, raw)
        self.recent_alerts[group].append(kept)
        self.new_alerts[group].append(kept)

    def _decoded(self, kept: list[KeptAlert]) -> list[Alert]:
        """Whole alerts, newest first, for a page (the few a frame carries)."""
        alerts = []
        for item in sorted(kept, key=lambda k: k.detected_at, reverse=True):
            try:
                alerts.append(decode_alert(item.raw))
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.counts["invalid"] += 1
        for alert in reversed(alerts):  # the newest last: the oldest is forgotten first
            self.shown[alert.alert_id] = alert
            self.shown.move_to_end(alert.alert_id)
        while len(self.shown) > SHOWN_ALERTS_KEPT:
            self.shown.popitem(last=False)
        return alerts

    def shown_alert(self, alert_id: str) -> Alert | None:
        """The alert with this id, if a page was sent it (recently)."""
        return self.shown.get(alert_id)

    def add_feedback(self, feedback: Feedback) -> None:
        """An analyst's verdict (the last one on an alert counts), for every page to show."""
        if feedback.alert_id is None:  # an incident verdict: not shown per alert (yet)
            return
        self.counts["verdicts"] += 1
        entry = {"verdict": feedback.verdict, "by": feedback.by, "given_at": feedback.given_at,
                 "reason": feedback.reason}  # fmt: skip
        self.verdicts[feedback.alert_id] = entry
        self.verdicts.move_to_end(feedback.alert_id)
        while len(self.verdicts) > VERDICTS_KEPT:
            self.verdicts.popitem(last=False)
        self.new_verdicts[feedback.alert_id] = entry

    def add_incident(self, finding: dict[str, Any]) -> None:
        """An incident message (``incidents`` topic); the latest revision of each incident counts."""
        if self.incidents.add(finding):
            self.counts["incidents"] = len(self.incidents.incidents)

    def add_incident_verdict(self, incident_id: str, entry: dict[str, Any]) -> None:
        """An analyst's verdict on a whole incident (``feedback`` with ``incident_id``)."""
        self.counts["verdicts"] += 1
        self.incidents.add_verdict(incident_id, entry)

    def add_drift_event(self, event: DriftEvent, extra: dict[str, Any]) -> None:
        self.counts["drift_events"] += 1
        self._add_timeline(timeline_entry_of_drift(event, extra))

    def add_model_update(self, update: ModelUpdate, extra: dict[str, Any]) -> None:
        self.counts["model_updates"] += 1
        entry = timeline_entry_of_update(update, extra)
        self._add_timeline(entry)
        if update.status == "production":
            # A rollback may bring a replaced model back: let the stream follow it again.
            self.stream(update.stream).replaced.discard(ModelId(update.detector, update.version))
            self.production[update.stream] = {
                "detector": update.detector,
                "version": update.version,
                "since": update.promoted_at,
                "reason": update.reason,
            }

    def _add_timeline(self, entry: dict[str, Any]) -> None:
        self.timeline.append(entry)
        self.new_timeline.append(entry)

    def set_production(self, stream: str, alias: ProductionAlias) -> None:
        """The registry's production alias (what workers load), read at start and after each update."""
        known = self.production.get(stream, {})
        self.production[stream] = {
            "detector": alias.detector,
            "version": alias.version,
            "since": alias.promoted_at or known.get("since"),
            "reason": known.get("reason", "registry"),
        }

    def add_offsets(self, stream: str, end_total: int, committed_total: int | None, now: float) -> None:
        """One sample of the input topic's end offsets (summed) and the workers' committed offsets."""
        state = self.stream(stream)
        state.end_offsets.append((now, end_total))
        while len(state.end_offsets) > 2 and now - state.end_offsets[0][0] > RATE_WINDOW_S:
            state.end_offsets.popleft()
        state.lag = None if committed_total is None else max(end_total - committed_total, 0)
        state.rates.append((now, self.input_rate(state), self.scored_rate(state, now)))

    # -- derived figures ------------------------------------------------------------------------
    @staticmethod
    def input_rate(state: StreamState) -> float | None:
        if len(state.end_offsets) < 2:
            return None
        (t0, n0), (t1, n1) = state.end_offsets[0], state.end_offsets[-1]
        return max(n1 - n0, 0) / (t1 - t0) if t1 > t0 else None

    @staticmethod
    def scored_rate(state: StreamState, now: float, key: str = "scored") -> float:
        buckets = state.per_second.within(now, RATE_WINDOW_S)
        return sum(b[key] for b in buckets) / RATE_WINDOW_S

    def stream_view(self, state: StreamState, now: float) -> dict[str, Any]:
        minute = Confusion()
        for bucket in state.per_second.within(now, MINUTE_S):
            minute.add(bucket["confusion"])
        histogram = state.histograms.get(state.model) if state.model is not None else None
        return {
            "scored": state.scored,
            "alerts": state.alerts,
            "duplicates": state.duplicates,
            "in_rate": self.input_rate(state),
            "scored_rate": self.scored_rate(state, now),
            "alert_rate": self.scored_rate(state, now, "alerts"),
            "lag": state.lag,
            "end_offset": state.end_offsets[-1][1] if state.end_offsets else None,
            "so_far": state.confusion.summary(),
            "last_minute": minute.summary(),
            "threshold": state.threshold,
            "threshold_source": state.threshold_source,
            "model": None
            if state.detector is None
            else {"detector": state.detector, "version": state.model_version},
            "severity_counts": dict(state.alerts_by_severity),
            "hist": None if histogram is None else histogram.counts.tolist(),
        }

    def _sample_points(self, state: StreamState, since: float, now: float) -> dict[str, list]:
        """A uniform sample of the scores since the last frame, placed at their event time (a
        backlog read with ``--from-beginning`` is drawn when it happened, not when it was read);
        an event without one is spread over the interval in arrival order."""
        if not state.pending:
            return {"t": [], "score": [], "cls": []}
        since = max(since, state.pending[0][2])  # the first frame: from the first arrival
        scores = np.concatenate([p[0] for p in state.pending])
        classes = np.concatenate([p[1] for p in state.pending])
        event_times = [t for p in state.pending for t in p[3]]
        state.pending.clear()
        keep = np.arange(scores.size)
        if scores.size > self.points_per_frame:
            keep = np.sort(self._rng.choice(scores.size, self.points_per_frame, replace=False))
            scores, classes = scores[keep], classes[keep]
        arrival = np.linspace(since, now, scores.size, endpoint=False) if scores.size else np.empty(0)
        times = np.array([_epoch(event_times[i]) if i < len(event_times) else None for i in keep.tolist()],
                         dtype=np.float64)  # fmt: skip
        times = np.where(np.isnan(times), arrival, times)
        order = np.argsort(times, kind="stable")
        return {
            "t": np.round(times[order], 3).tolist(),
            "score": np.maximum(scores[order], MIN_SCORE).tolist(),
            "cls": classes[order].tolist(),
        }

    # -- frames -------------------------------------------------------------------------------
    def delta(self, now: float | None = None) -> dict[str, Any]:
        """What changed since the previous delta; drains the per-frame buffers. Call under ``lock``."""
        now = time.time() if now is None else now
        since, self.last_frame_at = self.last_frame_at, now
        self.seq += 1
        points = {}
        for name, state in self.streams.items():
            sample = self._sample_points(state, since, now)
            if sample["t"]:
                state.points.append((now, sample["t"][-1], sample))
            # The last minute of event time before the newest point is kept, however long ago it
            # was read: a page opened after a replay ended still shows its last minute.
            newest = max((t for _, t, _ in state.points), default=0.0)
            while state.points and state.points[0][1] < newest - POINTS_WINDOW_S:
                state.points.popleft()
            points[name] = sample
        alerts = self._decoded([a for group in self.new_alerts.values() for a in group])
        self.new_alerts.clear()
        timeline, self.new_timeline = self.new_timeline[::-1], []
        verdicts, self.new_verdicts = self.new_verdicts, {}
        return {
            "type": "delta",
            **self._common(now),
            "points": points,
            "rates": {name: list(s.rates)[-1:] for name, s in self.streams.items()},
            "alerts": alerts,
            "timeline": timeline,
            "verdicts": verdicts,
            "incidents": self.incidents.drain(),  # None: unchanged since the last delta
        }

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Everything a page that just opened needs (the last minute of points, recent alerts, the
        whole timeline). Does not drain what the next delta sends. Call under ``lock``."""
        now = time.time() if now is None else now
        points = {}
        for name, state in self.streams.items():
            merged: dict[str, list] = {"t": [], "score": [], "cls": []}
            for _, _, sample in state.points:
                for key in merged:
                    merged[key].extend(sample[key])
            order = np.argsort(np.asarray(merged["t"], dtype=np.float64), kind="stable").tolist()
            points[name] = {key: [values[i] for i in order] for key, values in merged.items()}
        # What the next delta brings is left to it, so a page never sees an alert or entry twice.
        pending = {id(a) for group in self.new_alerts.values() for a in group}
        alerts = self._decoded(
            [a for group in self.recent_alerts.values() for a in group if id(a) not in pending]
        )
        timeline = list(self.timeline)[: len(self.timeline) - len(self.new_timeline)]
        return {
            "type": "snapshot",
            **self._common(now),
            "points": points,
            "rates": {name: list(s.rates) for name, s in self.streams.items()},
            "alerts": alerts,
            "timeline": timeline[::-1],
            "verdicts": {
                a.alert_id: self.verdicts[a.alert_id] for a in alerts if a.alert_id in self.verdicts
            },
            "incidents": self.incidents.view(),
        }

    def _common(self, now: float) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": now,
            "streams": {name: self.stream_view(s, now) for name, s in self.streams.items()},
            "production": self.production,
            "hist_edges": histogram_edges(),
            "counts": dict(self.counts),
            "status": dict(self.status),
        }


# -- the timeline ---------------------------------------------------------------------------------
def timeline_entry_of_drift(event: DriftEvent, extra: dict[str, Any]) -> dict[str, Any]:
    detail = (
        f"event {event.event_id} · {event.detector}: {event.statistic:.4g} vs threshold {event.threshold:.4g}"
    )
    if event.action and event.action != "none":
        detail += f"; {event.action.replace('_', ' ')}"
    return {
        "kind": "drift",
        "time": event.detected_at,
        "stream": event.stream,
        "title": f"drift detected on {event.stream} (model v{event.model_version})",
        "detail": detail,
        "id": event.event_id,
        "detector": event.detector,
        "action": event.action,
        "version": event.model_version,
        "change": {"topic": event.change.topic, "event_time": event.change.event_time},
        "extra": extra,
    }


def update_kind(update: ModelUpdate) -> str:
    """promotion, rollback, retrain (a candidate was trained), shadow (rejected after its shadow run)
    or retired."""
    if update.status == "production":
        return "rollback" if update.reason == "rollback" else "promotion"
    return {"candidate": "retrain", "rejected": "shadow", "retired": "retired"}.get(
        update.status, update.status
    )


def timeline_entry_of_update(update: ModelUpdate, extra: dict[str, Any]) -> dict[str, Any]:
    kind = update_kind(update)
    model = f"{update.detector} v{update.version}"
    title = {
        "promotion": f"{model} promoted to production",
        "rollback": f"rolled back to {model}",
        "retrain": f"{model} trained: candidate in shadow",
        "shadow": f"{model} rejected by its shadow evaluation",
        "retired": f"{model} retired",
    }.get(kind, f"{model}: {update.status}")
    reason = update.reason
    drift_id = reason.split(":", 1)[1] if reason.startswith("drift:") else None
    detail = f"after drift event {drift_id}" if drift_id else reason
    if update.detail:  # a retrain outcome: why it was kept or rejected
        detail += f" · {update.detail}"
    if update.shadow:
        detail += " · shadow " + ", ".join(f"{k}={_short(v)}" for k, v in update.shadow.items())
    if extra:
        detail += " · " + ", ".join(f"{k}={_short(v)}" for k, v in extra.items())
    return {
        "kind": kind,
        "time": update.promoted_at,
        "stream": update.stream,
        "title": title,
        "detail": detail,
        "detector": update.detector,
        "version": update.version,
        "status": update.status,
        "reason": reason,
        "drift_id": drift_id,
        "shadow": update.shadow,
        "extra": extra,
    }


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:6]) + "}"
    return str(value)[:80]
