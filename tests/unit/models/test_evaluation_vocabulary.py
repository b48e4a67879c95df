"""One evaluation vocabulary: the label rule, the confusion matrix and their users agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from anomstream.bench import mostly_normal_frame
from models.evaluation.confusion import Confusion
from models.evaluation.metrics import detection_metrics
from models.evaluation.report import metrics_table
from stream import datasets
from stream.labels import ATTACK, NORMAL, UNLABELLED, is_attack, label_classes


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (None, UNLABELLED),
        ("normal", NORMAL),
        ("normal.", NORMAL),  # KDD Cup 99 as written in its files
        ("Normal", NORMAL),
        ("0", NORMAL),
        ("0.0", NORMAL),
        ("false", NORMAL),
        ("False", NORMAL),  # str(False): a boolean label column replayed as a header
        ("smurf", ATTACK),
        ("smurf.", ATTACK),
        ("abnormal", ATTACK),  # ECG
        ("anomaly", ATTACK),  # NAB sensor windows
        ("1", ATTACK),
        ("True", ATTACK),
        ("", UNLABELLED),  # a header that is there but says nothing
    ],
)
def test_the_label_rule(label: str | None, expected: int) -> None:
    assert label_classes([label]).tolist() == [expected]


def test_the_rule_is_vectorised_over_lists_arrays_and_series() -> None:
    labels = ["normal", None, "smurf", "normal", "neptune"] * 1000
    expected = [NORMAL, UNLABELLED, ATTACK, NORMAL, ATTACK] * 1000
    assert label_classes(labels).tolist() == expected
    assert label_classes(np.array(labels, dtype=object)).tolist() == expected
    assert label_classes(pd.Series(labels, dtype="category")).tolist() == expected
    assert label_classes(pd.Series(["normal", np.nan])).tolist() == [NORMAL, UNLABELLED]  # an empty cell
    assert label_classes([]).tolist() == []
    assert is_attack(labels).tolist() == [c == ATTACK for c in expected]


def test_the_dataset_readers_and_the_bench_use_the_rule() -> None:
    assert datasets.is_attack is is_attack
    frame = pd.DataFrame({"label": ["normal"] * 400 + ["smurf"] * 50 + ["normal."] * 100, "x": range(550)})
    mixed = mostly_normal_frame(frame, attack_share=0.01)
    assert int(is_attack(mixed["label"]).sum()) == 5  # 1% of the 500 normal rows, "normal." included
    assert len(mixed) == 505


def test_confusion_from_arrays_by_hand() -> None:
    flagged = [True, True, False, False, True, True]
    labels = ["smurf", "normal", "neptune", "normal", None, "smurf"]
    c = Confusion.of_labels(flagged, labels)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 1)  # the unlabelled alert is in none of them
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3) and c.fbeta(2.0) == pytest.approx(2 / 3)
    c.add(Confusion(tp=2))
    assert c.summary() == {"precision": 0.8, "recall": 0.8, "f1": pytest.approx(0.8), "tp": 4, "fp": 1,
                           "fn": 1, "tn": 1}  # fmt: skip


def test_undefined_figures_are_none_not_zero() -> None:
    assert Confusion().summary()["precision"] is None and Confusion().recall is None
    no_alert = Confusion.of([False, False], [True, False])
    assert no_alert.precision is None and no_alert.recall == 0.0 and no_alert.f1 is None
    all_wrong = Confusion.of([True, False], [False, True])
    assert all_wrong.precision == 0.0 and all_wrong.recall == 0.0 and all_wrong.f1 == 0.0


def test_offline_metrics_say_none_where_the_threshold_raised_no_alert() -> None:
    y = np.array([False, False, True, True])
    m = detection_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), np.zeros(4, dtype=bool))
    assert m["roc_auc"] == 1.0 and m["precision"] is None and m["recall"] == 0.0 and m["f1"] is None
    row = {**m, "threshold": 1.0, "fit_seconds": 0.1, "score_seconds_per_10k": 0.01, "n_params": 3,
           "size_kb": 1.0}  # fmt: skip
    line = metrics_table("kdd", "full", {"pca": row}).splitlines()[-1]
    assert line.startswith("| pca | 1.0000 | - | 1.0000 | - | 0.000 | - | - |")
