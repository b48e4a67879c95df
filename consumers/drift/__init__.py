"""The drift monitor (``anomstream drift``): :mod:`consumers.drift.monitor` runs the loop,
:mod:`consumers.drift.state` keeps and checkpoints each unit's state, :mod:`consumers.drift.calibrations`
calibrates (and caches) each production model's detectors, :mod:`consumers.drift.features` runs the
feature two-sample test off the hot path, :mod:`consumers.drift.metrics` serves Prometheus metrics."""
