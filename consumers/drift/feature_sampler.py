"""The feature two-sample test, off the hot path: a thread of the drift monitor that reads a sample of
the input topic back, encodes it with the production model's encoder and tests it window by window.

The monitor offers it the offsets of every ``feature_sample_every``-th event it admitted as normal
(not alerting, not in a burst); the thread reads those events from the input topic (a reader with
no group), decodes and encodes them as a worker would, and fills windows of ``feature_window``
inputs. The first window after a model starts is the reference; each later one is tested against it
(:class:`models.drift.FeatureDrift`, Bonferroni-corrected KS, alpha from the monitor's false-alarm
target). A drifted window is reported back to the monitor, which publishes it (detector
``feature_ks``) unless the stream's watch is in its cooldown; the next window becomes the reference.
Scoring workers never wait for any of this; the windows are not checkpointed (after a restart the
reference is rebuilt from the next window).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import TopicPartition

from consumers.decoding import BatchDecoder, decoder_for
from models.drift import FeatureDrift, FeatureTestResult, ert_for_risk, feature_alpha
from models.features import encoder_from_dict
from models.model_id import ModelId
from models.registry import open_registry
from stream.kafka import check_message, make_reader
from stream.settings import Settings

log = logging.getLogger(__name__)

FEATURE_KS = "feature_ks"
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FeatureDetection:
    stream: str
    model: ModelId
    result: FeatureTestResult
    partition_offsets: dict[str, int]  # first sampled offset of the drifted window, per partition
    event_time: str | None


@dataclass
class _Window:
    model: ModelId
    encoder: Any
    decode: BatchDecoder
    names: list[str]
    reference: np.ndarray | None = None
    rows: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    first_offsets: dict[str, int] = field(default_factory=dict)
    first_time: str | None = None


class FeatureSampler:
    def __init__(self, settings: Settings, alpha: float | None = None) -> None:
        d = settings.drift
        self.settings = settings
        self.window = d.feature_window
        ert = _ert(settings)
        self.alpha = (
            alpha if alpha is not None else feature_alpha(ert, d.feature_window, d.feature_sample_every)
        )
        self.registry = open_registry(settings)
        self.requests: queue.Queue[tuple[str, ModelId, str, int, list[int], str | None]] = queue.Queue()
        self.results: queue.Queue[FeatureDetection] = queue.Queue()
        self.tests_run: dict[str, int] = defaultdict(int)
        self.windows: dict[str, _Window] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-features", daemon=True)
        self.failed: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def offer(self, stream: str, model: ModelId, topic: str, partition: int, offsets: list[int],
              first_time: str | None) -> None:  # fmt: skip
        """Events to sample (called by the monitor's loop; never blocks)."""
        if offsets and self.failed is None:
            self.requests.put((stream, model, topic, partition, offsets, first_time))

    def poll(self) -> list[FeatureDetection]:
        found = []
        while True:
            try:
                found.append(self.results.get_nowait())
            except queue.Empty:
                return found

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(READ_TIMEOUT_S + 5)

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        reader = make_reader(self.settings)
        try:
            while not self._stop.is_set():
                batch = self._drain(timeout=0.5)
                if batch:
                    self._sample(reader, batch)
        except Exception as exc:  # the score detectors go on; say why this one stopped
            self.failed = exc
            log.exception("feature drift test stopped (score drift detection continues): %s", exc)
        finally:
            reader.close()

    def _drain(self, timeout: float) -> list[tuple[str, ModelId, str, int, list[int], str | None]]:
        try:
            items = [self.requests.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self.requests.get_nowait())
            except queue.Empty:
                return items

    def _sample(self, reader: Any, batch: list) -> None:
        wanted: dict[tuple[str, str, int], list[int]] = defaultdict(list)
        models: dict[str, ModelId] = {}
        times: dict[tuple[str, int], str | None] = {}
        for stream, model, topic, partition, offsets, first_time in batch:
            wanted[(stream, topic, partition)] += offsets
            models[stream] = model
            times.setdefault((stream, partition), first_time)
        for (stream, topic, partition), offsets in wanted.items():
            window = self._window(stream, models[stream])
            messages = _read(reader, topic, partition, sorted(set(offsets)))
            decoded = window.decode(messages)
            if not decoded.messages:
                continue
            rows = window.encoder.transform(decoded.raw)
            if not window.rows:
                window.first_time = times[(stream, partition)]
            window.first_offsets.setdefault(str(partition), decoded.messages[0].offset())
            window.rows.append(np.asarray(rows, dtype=np.float64))
            window.count += len(rows)
            if window.count >= self.window:
                self._test(stream, window)

    def _window(self, stream: str, model: ModelId) -> _Window:
        window = self.windows.get(stream)
        if window is None or window.model != model:
            ref = self.registry.resolve(stream, *model)
            self.registry.verify(ref)
            encoder = encoder_from_dict(json.loads((ref.path / "encoder.json").read_text()))
            decode = decoder_for(stream, encoder)
            window = self.windows[stream] = _Window(model, encoder, decode, list(encoder.feature_names_))
        return window

    def _test(self, stream: str, window: _Window) -> None:
        rows = np.vstack(window.rows)
        offsets, first_time = window.first_offsets, window.first_time
        window.rows, window.count, window.first_offsets, window.first_time = [], 0, {}, None
        if window.reference is None:
            window.reference = rows
            return
        result = FeatureDrift(window.reference, self.alpha, window.names).test(rows)
        self.tests_run[stream] += 1
        if result.drift:
            self.results.put(FeatureDetection(stream, window.model, result, offsets, first_time))
            window.reference = None  # the next window is the new normal's reference


def _read(reader: Any, topic: str, partition: int, offsets: list[int]) -> list[Any]:
    """The messages at ``offsets`` (sorted) of one partition, read as one range."""
    wanted, last = set(offsets), offsets[-1]
    reader.assign([TopicPartition(topic, partition, offsets[0])])
    found: list[Any] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    while time.monotonic() < deadline:
        for message in reader.consume(5000, 0.5):
            if not check_message(message):
                continue
            if message.offset() in wanted:
                found.append(message)
            if message.offset() >= last:
                reader.unassign()
                return found
    reader.unassign()
    return found


def _ert(settings: Settings) -> int:
    return ert_for_risk(settings.drift.target_ert, settings.drift.false_alarm_risk)
