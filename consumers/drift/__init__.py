"""The drift monitor (``anomstream drift``): :mod:`consumers.drift.monitor` is the Kafka loop (group
membership, flow control, checkpoints) around a Kafka-free step (:mod:`consumers.drift.step`: records
in, detections out) and an event publisher (:mod:`consumers.drift.publishing`: placement in every
input partition, restatements, the retrain, ``drift-events``); :mod:`consumers.drift.watches`
feeds each stream's drift watch with score records, following the production model
(:mod:`consumers.drift.following`);
:mod:`consumers.drift.state` keeps each unit's state and :mod:`consumers.drift.checkpoint` what a
checkpoint covers; :mod:`consumers.drift.calibration_cache` calibrates (and caches) each production
model's detectors, :mod:`consumers.drift.feature_sampler` runs the feature two-sample test off the hot
path, :mod:`consumers.drift.monitor_metrics` serves Prometheus metrics; :mod:`consumers.drift.retrain`
(``--retrain``) retrains after a drift event in a separate process, shadow-evaluates the candidate and
promotes it."""
