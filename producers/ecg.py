"""ECG5000 heartbeats as replay events: one :class:`~stream.messages.EcgBeat` (140 samples) per message.

The key is the beat's record id (``<file>-<row>``), so a beat always lands in the same partition; the
ground truth rides in the ``label`` header: ``normal``, ``abnormal`` (``ecg.csv`` folds the four
abnormal classes into one) or, from the UCR files, the class (``r-on-t-pvc``, ``pvc``, ``sp-eb``,
``unclassified``). Anything but ``normal`` is an anomaly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from producers.replay import Event, ReplayProducer, ReplayStats, repeat
from stream.datasets import find_ecg_file, read_ecg
from stream.datasets.splits import ecg_split
from stream.settings import Settings

# UCR ECG5000 classes (1-5), and 0 for ecg.csv's "abnormal, class unknown".
ECG_LABELS: dict[int, str] = {
    0: "abnormal",
    1: "normal",
    2: "r-on-t-pvc",
    3: "pvc",
    4: "sp-eb",
    5: "unclassified",
}


@dataclass(frozen=True)
class EcgReplay:
    """The beats to replay: values (n, 140), UCR-style labels, the file rows they come from."""

    values: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.rows)


def ecg_label(code: int) -> str:
    """``label`` header of a beat from its class code.

    >>> ecg_label(1), ecg_label(0), ecg_label(3)
    ('normal', 'abnormal', 'pvc')
    """
    return ECG_LABELS[int(code)]


def record_id(source: str, row: int) -> str:
    return f"{source}-{row:05d}"


def ecg_events(replay: EcgReplay, loop: bool = False, limit: int | None = None) -> Iterator[Event]:
    """One event per beat, in file order; ``loop`` starts over at the end (the same record ids).

    >>> import numpy as np
    >>> beats = EcgReplay(np.zeros((2, 140)), np.array([1, 0]), np.array([7, 9]), "ecg")
    >>> [(e.key, e.label) for e in ecg_events(beats)]
    [(b'ecg-00007', 'normal'), (b'ecg-00009', 'abnormal')]
    """
    labels = [ecg_label(code) for code in replay.labels.tolist()]
    ids = [record_id(replay.source, row) for row in replay.rows.tolist()]
    # Serialised once, however many passes: orjson writes the shortest repr that reads back to the
    # same float64, so the worker scores exactly the values that offline evaluation scores.
    dumps, numpy = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
    events = [
        Event(record.encode(), dumps({"record": record, "values": values}, option=numpy), label)
        for record, values, label in zip(ids, replay.values, labels, strict=True)
    ]
    return repeat(events, loop, limit)


def load_ecg_replay(data_dir: Path, file: str = "csv", holdout: bool = False, seed: int = 0) -> EcgReplay:
    """Beats of an ECG5000 file (``csv``, ``train``, ``test`` or a path).

    ``holdout`` keeps only the test beats of the training split (:func:`stream.datasets.splits.ecg_split`,
    ``seed``), so a live replay never scores a beat the model was trained or thresholded on.
    """
    path = find_ecg_file(data_dir, file)
    values, labels = read_ecg(path)
    rows = np.arange(len(labels))
    if holdout:
        rows = ecg_split(labels, seed).test
    source = path.name.removesuffix(".gz").rsplit(".", 1)[0]
    return EcgReplay(np.ascontiguousarray(values[rows]), labels[rows], rows, source)


def replay_ecg(
    settings: Settings,
    file: str = "csv",
    rate: float = 0.0,
    limit: int | None = None,
    loop: bool = False,
    holdout: bool = False,
    seed: int = 0,
) -> ReplayStats:
    """``anomstream replay ecg``: ECG5000 beats into the ``ecg.beats`` topic."""
    beats = load_ecg_replay(settings.data_dir, file, holdout, seed)
    total = limit if limit is not None else (None if loop else len(beats))
    producer = ReplayProducer(settings, settings.topic("ecg"), rate=rate)
    return producer.run(ecg_events(beats, loop, limit), total, "ecg")
