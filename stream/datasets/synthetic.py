"""A seeded KDD-like generator, used only when the real KDD files are not available offline.

It imitates the structure the real data has (ordinary http/smtp/dns traffic; smurf and neptune
floods; port scans; password guessing) so the pipeline can be demonstrated end to end. Numbers
measured on it say nothing about real detection quality, and the demo says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stream.messages import KDD_FEATURES

ATTACK_MIX = {"smurf": 0.45, "neptune": 0.35, "portsweep": 0.1, "guess_passwd": 0.1}


def _base(n: int) -> dict[str, object]:
    return {name: np.zeros(n) for name in KDD_FEATURES}


def _normal(rng: np.random.Generator, n: int) -> pd.DataFrame:
    cols: dict[str, object] = _base(n)
    kind = rng.choice(["http", "smtp", "domain_u", "ftp_data"], size=n, p=[0.6, 0.15, 0.15, 0.1])
    udp = kind == "domain_u"
    cols["protocol_type"] = np.where(udp, "udp", "tcp")
    cols["service"] = kind
    cols["flag"] = "SF"
    cols["src_bytes"] = np.round(rng.lognormal(np.where(udp, 3.8, 5.5), 0.6))
    cols["dst_bytes"] = np.round(rng.lognormal(np.where(udp, 4.5, 8.0), 1.2))
    cols["duration"] = np.where(kind == "ftp_data", rng.poisson(2, n), 0)
    cols["logged_in"] = (~udp).astype(int)
    cols["count"] = rng.integers(1, 20, n)
    cols["srv_count"] = np.minimum(cols["count"], rng.integers(1, 20, n))  # type: ignore[call-overload]
    cols["same_srv_rate"] = 1.0
    cols["dst_host_count"] = rng.integers(1, 256, n)
    cols["dst_host_srv_count"] = rng.integers(1, 256, n)
    cols["dst_host_same_srv_rate"] = np.round(rng.uniform(0.5, 1.0, n), 2)
    cols["dst_host_diff_srv_rate"] = np.round(rng.uniform(0.0, 0.1, n), 2)
    cols["dst_host_same_src_port_rate"] = np.round(rng.uniform(0.0, 0.2, n), 2)
    frame = pd.DataFrame(cols)
    frame["label"] = "normal"
    return frame


def _attacks(rng: np.random.Generator, n: int) -> pd.DataFrame:
    cols: dict[str, object] = _base(n)
    kind = rng.choice(list(ATTACK_MIX), size=n, p=list(ATTACK_MIX.values()))
    smurf, neptune, scan, guess = (kind == k for k in ATTACK_MIX)
    cols["protocol_type"] = np.where(smurf, "icmp", "tcp")
    cols["service"] = np.select([smurf, neptune, scan], ["ecr_i", "private", "private"], "telnet")
    cols["flag"] = np.select([smurf, neptune, scan], ["SF", "S0", "REJ"], "SF")
    cols["src_bytes"] = np.select([smurf, guess], [1032, 125], 0)
    cols["dst_bytes"] = np.where(guess, 179, 0)
    cols["count"] = np.select([smurf | neptune], [511], rng.integers(1, 5, n))
    cols["srv_count"] = np.select([smurf], [511], rng.integers(1, 20, n))
    cols["serror_rate"] = cols["srv_serror_rate"] = neptune.astype(float)
    cols["rerror_rate"] = cols["srv_rerror_rate"] = scan.astype(float)
    cols["same_srv_rate"] = np.where(scan, 0.05, 1.0)
    cols["diff_srv_rate"] = np.where(scan, 0.9, 0.0)
    cols["num_failed_logins"] = guess.astype(int)
    cols["dst_host_count"] = 255
    cols["dst_host_srv_count"] = np.where(smurf, 255, rng.integers(1, 20, n))
    cols["dst_host_same_srv_rate"] = np.where(smurf, 1.0, 0.05)
    cols["dst_host_serror_rate"] = cols["dst_host_srv_serror_rate"] = neptune.astype(float)
    frame = pd.DataFrame(cols)
    frame["label"] = kind
    return frame


def synthetic_kdd(n: int, attack_fraction: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """``n`` shuffled KDD-like records with a ``label`` column (``normal`` or an attack name).

    >>> df = synthetic_kdd(1000, attack_fraction=0.25, seed=1)
    >>> df.shape, int((df.label != "normal").sum())
    ((1000, 42), 250)
    """
    rng = np.random.default_rng(seed)
    n_attack = int(round(n * attack_fraction))
    frame = pd.concat([_normal(rng, n - n_attack), _attacks(rng, n_attack)], ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for name in KDD_FEATURES:
        if frame[name].dtype.kind == "f" and not name.endswith("_rate"):
            frame[name] = frame[name].astype(np.int64)
    return frame[[*KDD_FEATURES, "label"]]
