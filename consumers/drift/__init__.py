"""The drift monitor (``anomstream drift``): :mod:`consumers.drift.monitor` runs the loop,
:mod:`consumers.drift.state` keeps and checkpoints each unit's state, :mod:`consumers.drift.calibrations`
calibrates (and caches) each production model's detectors, :mod:`consumers.drift.features` runs the
feature two-sample test off the hot path, :mod:`consumers.drift.metrics` serves Prometheus metrics;
:mod:`consumers.drift.retrain` (``--retrain``) retrains after a drift event in a separate process,
shadow-evaluates the candidate and promotes it."""
