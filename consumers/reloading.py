"""Hot reload: follow ``model-updates`` and load what the registry's production alias says.

An update is a notification only. Whatever it names, the worker loads the stream's production model
from the registry (checksums verified), so a hand-written ``{"detector": "ae", "version": 2}`` cannot
switch a model the alias does not name. Anything malformed is ignored with a warning, and no failure
while reloading ever stops scoring: the current model stays, and the failure is logged once.

Loading (and compiling) a model takes a second or more, so it happens in this watcher's thread; the
worker swaps the ready model in between two batches. An update for a stream the worker had no model
for when it started hands over that stream's first model: the worker then subscribes its topic.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable

import msgspec
from confluent_kafka import Consumer

from consumers.decoding import decoder_for
from models.model_id import ModelId
from models.registry import Registry
from models.scoring import ScoringModel
from stream.kafka import check_message, follow_from_end
from stream.messages import decode_model_update
from stream.settings import Settings

log = logging.getLogger(__name__)


class ModelWatcher:
    """Reads ``model-updates`` from its current end in a thread; ``ready`` yields reloaded models.

    ``serving`` maps each stream to the (detector, version) in use; ``streams`` are the streams this
    worker may score (an update for another stream is ignored).
    """

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        serving: dict[str, ModelId],
        streams: Iterable[str],
        max_batch: int = 1,
    ) -> None:
        self.registry = registry
        self.serving = dict(serving)
        self.streams = frozenset(streams)
        self.max_batch = max_batch  # the largest batch a reloaded model is warmed up for
        self.ready: queue.Queue[ScoringModel] = queue.Queue()
        self._logged: set[str] = set()
        self._stop = threading.Event()
        topic = settings.topic("model_updates")
        # Every replica must see every promotion, so the reader has no group: it reads from the end.
        self.reader: Consumer | None = follow_from_end(settings, topic)
        if self.reader is None:
            log.warning("topic %s missing: promotions will not be hot-reloaded", topic)
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        if self.reader is not None:
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        if self.reader is not None:
            self.reader.close()

    def _run(self) -> None:
        assert self.reader is not None
        while not self._stop.is_set():
            try:
                for message in self.reader.consume(100, 0.5):
                    if check_message(message):
                        self.handle(message.value())
            except Exception as exc:  # the watcher outlives any one bad read; scoring goes on
                self._once(f"reading model updates failed: {exc}")
                self._stop.wait(1.0)

    def handle(self, value: bytes | None) -> ScoringModel | None:
        """React to one update message; returns the model handed to the worker, if any."""
        try:
            update = decode_model_update(value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring a malformed model update (%s): %.200r", exc, value)
            return None
        stream = update.stream
        if stream not in self.streams:
            log.warning("ignoring a model update for stream %.64r: this worker does not score it", stream)
            return None
        try:
            alias = self.registry.production(stream)
            if alias is None:
                self._once(f"model update for {stream}, but the registry has no production model for it")
                return None
            wanted = alias.model
            if (update.detector, update.version) != wanted:
                log.warning(
                    "model update names %s v%d for %s, but the production alias says %s: following the alias",
                    update.detector,
                    update.version,
                    stream,
                    wanted,
                )
            if self.serving.get(stream) == wanted:
                log.info("stream %s already uses %s", stream, wanted)
                return None
            model = self.registry.load(stream, inference_only=True)
            decoder_for(stream, model.encoder)  # a model whose messages this worker cannot read stays out
            model.warm_up(self.max_batch)
        except Exception as exc:  # any failure keeps the current model: scoring must go on
            self._once(f"cannot reload the production model of {stream} ({exc}): keeping the current one")
            return None
        self.serving[stream] = model.model_id
        self.ready.put(model)
        return model

    def _once(self, text: str) -> None:
        if text not in self._logged:
            self._logged.add(text)
            log.error("%s", text)
        else:
            log.debug("%s", text)
