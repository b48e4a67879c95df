"""How a retrain after drift is guarded: how much post-change data, what is learnt, what must hold."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrainPolicy:
    """Every knob of the drift loop's retrain, with the defaults ``anomstream drift --retrain`` uses.

    Data (post-change events of the input topic, in offset order)::

        |---- training part (1 - holdout_share) -----------------|-- holdout (newest) --|
          evidence (models.retraining.evidence) decides what is        shadow evaluation only
          learnt; a seeded calibration_share of it is not learnt
          but scored, for the drift monitor's new reference

    What is learnt (see ``models.retraining.evidence``): quiet rows, alerting rows below the ceiling
    the evidence allows that belong to no campaign, analysts' benign rows; repeats capped at
    ``max_record_share`` of the rows; into the candidate's learnt normal (``models.learnt_normal``:
    ``vouch_ratio``, ``radius_quantile``, ``max_learnt_records``).

    Shadow criteria (all must hold to promote):

    - alert rate on the holdout's *normal-looking* events (repeated records capped, production
      ratio below ``normal_band`` thresholds, i.e. below severity "high") is at least ``min_elevation``
      times production's rate on its own validation normal (there are false alarms to remove), and
      the candidate's is lower by at least ``min_alert_drop`` (relative);
    - recall on the original validation attacks (the labelled validation split of the training
      data) and on analysts' malicious rows drops by at most ``recall_margin`` (absolute);
    - recall on the holdout rows the production model alerted on at or above the ceiling (the
      severities the adaptation never learns) drops by at most ``recall_margin``.
    """

    min_events: int = 20_000  # post-change events needed before a retrain starts
    confirmed_min_events: int = 8_000  # ... or this many, once analysts confirmed post-change alerts benign
    min_benign_verdicts: int = 5  # benign verdicts on post-change alerts that start a retrain early
    max_events: int = 100_000  # at most this many post-change events are collected
    holdout_share: float = 0.25  # newest share: held out for the shadow evaluation, never learnt
    calibration_share: float = 0.15  # seeded share of the training part: scored, not learnt
    max_record_share: float = 0.001  # copies of one identical record: at most this share of the rows
    evidence_windows: int = 10  # post-change windows the alert rate's persistence is judged over
    persistence: float = 0.8  # share of windows carrying half the mean excess alert rate: persistent
    burst_factor: float = 2.0  # in bursts, windows alerting more than this times the median are bursts
    campaign_size: int = 5  # alerting rows within the radius of an alerting row: a campaign
    campaign_radius_quantile: float = 0.5  # of the gaps between neighbouring quiet rows: the radius
    max_campaign_share: float = 0.1  # more campaign rows among the alerting ones: attacks are present
    vouch_ratio: float = 1.5  # a learnt record vouches for rows up to this many times its own ratio
    radius_quantile: float = 0.99  # of the gaps between learnt records: how far a record vouches
    max_learnt_records: int = 30_000  # records an adapted model keeps (newest first)
    min_learnt_rows: int = 2_000  # fewer rows to learn: insufficient data, no candidate
    normal_band: float = 5.0  # "normal-looking": production score below this many thresholds
    min_alert_drop: float = 0.1  # the candidate's alert rate there must be <= (1 - this) x production's
    min_elevation: float = 1.5  # production's rate there must be this many times its validation rate
    recall_margin: float = 0.02  # recall on attacks and on never-learnt alerts may drop this much
    max_gate_attacks: int = 10_000  # validation attacks the gate scores at most (a seeded sample)
    min_kept_alerts: int = 20  # fewer never-learnt alerts in the holdout: that criterion is not judged
    cooldown_s: float = 600.0  # live loop: no new retrain of a stream within this many seconds
    wait_s: float = 600.0  # live loop: how long a retrain waits for min_events after the change
    seed: int = 0

    @property
    def early_events(self) -> int:
        """Post-change events a retrain needs once analysts confirmed the new normal."""
        return min(self.confirmed_min_events, self.min_events)

    def __post_init__(self) -> None:
        shares = {
            "holdout_share": self.holdout_share,
            "calibration_share": self.calibration_share,
            "max_record_share": self.max_record_share,
            "min_alert_drop": self.min_alert_drop,
            "campaign_radius_quantile": self.campaign_radius_quantile,
            "max_campaign_share": self.max_campaign_share,
        }
        for name, value in shares.items():
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}")
        if not 0.0 < self.persistence <= 1.0 or not 0.0 < self.radius_quantile <= 1.0:
            raise ValueError("persistence and radius_quantile must lie in (0, 1]")
        if not 0.0 <= self.recall_margin < 1.0:
            raise ValueError(f"recall_margin must lie in [0, 1), got {self.recall_margin}")
        if self.vouch_ratio < 1.0:
            raise ValueError(f"vouch_ratio must be at least 1 (threshold multiples), got {self.vouch_ratio}")
        if self.min_elevation < 1.0:
            raise ValueError(f"min_elevation must be at least 1, got {self.min_elevation}")
        if self.normal_band < 1.0:
            raise ValueError(f"normal_band must be at least 1 (threshold multiples), got {self.normal_band}")
        if self.confirmed_min_events < 1 or self.min_benign_verdicts < 1:
            raise ValueError("confirmed_min_events and min_benign_verdicts must be at least 1")
        if not 0 < self.min_events <= self.max_events:
            raise ValueError(f"need 0 < min_events <= max_events, got {self.min_events}, {self.max_events}")
        if self.min_learnt_rows < 1 or self.campaign_size < 1 or self.evidence_windows < 1:
            raise ValueError("min_learnt_rows, campaign_size and evidence_windows must be at least 1")
