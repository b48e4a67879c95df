"""Which model, by name: a detector's version (:class:`ModelId`); a stream's production alias
(:class:`ProductionAlias`) as a typed record, read and written in the registry's JSON format; and the
keys of a version's sealed manifest (:class:`Manifest`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict


class ModelId(NamedTuple):
    """A version of a detector within one stream (the stream is implied by where it is used).

    A tuple, so it unpacks and compares as the ``(detector, version)`` pairs it replaces:

    >>> str(ModelId("ae", 3))
    'ae v3'
    >>> ModelId("ae", 3) == ("ae", 3)
    True
    """

    detector: str
    version: int

    def __str__(self) -> str:
        return f"{self.detector} v{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"detector": self.detector, "version": self.version}


@dataclass(frozen=True)
class ProductionAlias:
    """``<stream>/production.json``: the model workers load, when and why it was promoted, and the
    models that were production before it (oldest first), for rollbacks."""

    model: ModelId
    promoted_at: str | None = None
    reason: str = "manual"
    history: tuple[ModelId, ...] = ()

    @property
    def detector(self) -> str:
        return self.model.detector

    @property
    def version(self) -> int:
        return self.model.version

    def to_json(self) -> dict[str, Any]:
        """The stored form: ``{detector, version, promoted_at, reason, history}``."""
        return {
            **self.model.to_json(),
            "promoted_at": self.promoted_at,
            "reason": self.reason,
            "history": [h.to_json() for h in self.history],
        }


class Manifest(TypedDict, total=False):
    """``manifest.json`` of a version, as :meth:`models.registry.Registry.save` seals it (older
    versions may lack a key; :meth:`~models.registry.Registry.verify` checks the ones it needs)."""

    stream: str
    detector: str
    detector_class: str
    version: int
    created_at: str
    features: list[str]
    encoder: dict[str, Any]  # the encoder's kind, protocol and window length
    threshold: dict[str, Any]  # Threshold.to_dict()
    learnt_normal: dict[str, Any]  # an adapted model's learnt records, summarised
    training: dict[str, Any]  # data, parameters and figures of the training run
    metrics: dict[str, Any]
    shadow: dict[str, Any]  # a retrained candidate's shadow evaluation
    retrain: dict[str, Any]  # a retrained candidate's origin: drift event, rows, rule
    artifacts: dict[str, str]  # relative name -> sha256 of every sealed file
