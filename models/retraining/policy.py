"""How a retrain after drift is guarded: how much post-change data, what is kept, what must hold."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrainPolicy:
    """Every knob of the drift loop's retrain, with the defaults ``anomstream drift --retrain`` uses.

    Data (post-change events of the input topic, in offset order)::

        |---- training part (1 - holdout_share) -----------------|-- holdout (newest) --|
          seeded: calibration_share of it calibrates the threshold,    shadow evaluation only
          the rest is fit + early stop; rows kept: non-alerting,
          below keep_quantile (fit rows only), repeats capped

    Shadow criteria (both must hold to promote):

    - alert rate on the holdout's *normal-looking* events (repeated records capped as for training,
      so no flood; production score below ``normal_band`` times the production threshold, i.e.
      below severity "high") falls by at least ``min_alert_drop`` (relative);
    - recall on the original validation attacks (the labelled validation split of the training data)
      drops by at most ``recall_margin`` (absolute), each model at its own threshold.

    ``learn_below`` > 1 also learns rows that alerted at low severity (score below that many
    thresholds). It lets a candidate learn normal traffic its model raises false alarms on, at the
    price of the near-miss attacks; the default (1) learns no alerting row.
    """

    min_events: int = 20_000  # post-change events needed before a retrain starts
    max_events: int = 100_000  # at most this many post-change events are collected
    holdout_share: float = 0.25  # newest share: held out for the shadow evaluation, never trained on
    calibration_share: float = 0.15  # seeded share of the training part: the candidate's threshold
    early_stop_share: float = 0.1  # of the fit rows, seeded: early stopping of deep detectors
    keep_quantile: float = 0.9  # of the non-alerting fit rows, keep those below this score quantile
    max_record_share: float = 0.001  # copies of one identical record: at most this share of the rows
    learn_below: float = 1.0  # rows scoring below this many thresholds count as "not alerted" (1: the alerts)
    moved_alert_share: float = 0.5  # production alerts on more of the capped post-change rows: baseline moved
    moved_quantile: float = 0.5  # then learn the rows below this quantile of their scores (see filtering)
    min_fit_rows: int = 2_000  # fewer rows left after filtering: insufficient data, no candidate
    rehearsal_share: float = 0.2  # share of the fit rows drawn from the production model's own training rows
    normal_band: float = 5.0  # "normal-looking": production score below this many thresholds
    min_alert_drop: float = 0.1  # the candidate's alert rate there must be <= (1 - this) x production's
    recall_margin: float = 0.02  # recall on validation attacks may drop by at most this much
    cooldown_s: float = 600.0  # live loop: no new retrain of a stream within this many seconds
    wait_s: float = 600.0  # live loop: how long a retrain waits for min_events after the change
    seed: int = 0

    def __post_init__(self) -> None:
        shares = {
            "holdout_share": self.holdout_share,
            "calibration_share": self.calibration_share,
            "early_stop_share": self.early_stop_share,
            "keep_quantile": self.keep_quantile,
            "max_record_share": self.max_record_share,
            "min_alert_drop": self.min_alert_drop,
            "moved_alert_share": self.moved_alert_share,
            "moved_quantile": self.moved_quantile,
        }
        for name, value in shares.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        if not 0.0 <= self.rehearsal_share < 1.0:
            raise ValueError(f"rehearsal_share must lie in [0, 1), got {self.rehearsal_share}")
        if not 0.0 <= self.recall_margin < 1.0:
            raise ValueError(f"recall_margin must lie in [0, 1), got {self.recall_margin}")
        if self.learn_below < 1.0:
            raise ValueError(f"learn_below must be at least 1 (threshold multiples), got {self.learn_below}")
        if self.normal_band < 1.0:
            raise ValueError(f"normal_band must be at least 1 (threshold multiples), got {self.normal_band}")
        if not 0 < self.min_events <= self.max_events:
            raise ValueError(f"need 0 < min_events <= max_events, got {self.min_events}, {self.max_events}")
        if self.min_fit_rows < 1:
            raise ValueError(f"min_fit_rows must be at least 1, got {self.min_fit_rows}")
