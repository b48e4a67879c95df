"""ECG5000 readers: every format to the same (values, labels), and the real files agree."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from stream.datasets import ECG_NORMAL, DatasetMissingError, find_ecg_file, read_ecg
from stream.datasets.splits import ecg_split
from tests.support import require_data

BEATS = np.round(np.random.default_rng(0).normal(size=(3, 140)), 6)
CLASSES = np.array([1, 2, 5])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _rows(label_first: bool, sep: str = ",") -> str:
    lines = []
    for beat, label in zip(BEATS, CLASSES, strict=True):
        values = [f"{v:.6f}" for v in beat]
        lines.append(sep.join([f"{label:.7e}", *values] if label_first else [*values, str(label)]))
    return "\n".join(lines) + "\n"


def test_ucr_txt_arff_and_ts_read_the_same(tmp_path: Path) -> None:
    txt = _write(tmp_path / "ECG5000_TRAIN.txt", _rows(True, sep="  "))
    header = "@relation ECG5000\n" + "".join(f"@attribute att{i} numeric\n" for i in range(140))
    arff = _write(
        tmp_path / "ECG5000_TRAIN.arff", header + "@attribute target {1,2,3,4,5}\n\n@data\n" + _rows(False)
    )
    ts_rows = "".join(
        ",".join(f"{v:.6f}" for v in b) + f":{c}\n" for b, c in zip(BEATS, CLASSES, strict=True)
    )
    ts = _write(
        tmp_path / "ECG5000_TRAIN.ts",
        "#comment\n@problemName ECG5000\n@classLabel true 1 2 3 4 5\n@data\n" + ts_rows,
    )
    for path in (txt, arff, ts):
        values, labels = read_ecg(path)
        assert values.dtype == np.float64 and values.shape == (3, 140), path.name
        np.testing.assert_allclose(values, BEATS)
        assert labels.tolist() == CLASSES.tolist(), path.name


def test_tensorflow_csv_plain_and_gzipped(tmp_path: Path) -> None:
    text = "".join(
        ",".join(f"{v:.6f}" for v in b) + f",{1.0 if c == 1 else 0.0}\n"
        for b, c in zip(BEATS, CLASSES, strict=True)
    )
    plain = _write(tmp_path / "ecg.csv", text)
    packed = tmp_path / "ecg.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        values, labels = read_ecg(path)
        np.testing.assert_allclose(values, BEATS)
        assert labels.tolist() == [ECG_NORMAL, 0, 0]  # abnormal class unknown in ecg.csv


def test_bad_inputs_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="140 values"):
        read_ecg(_write(tmp_path / "short.csv", "0.1,0.2,1.0\n"))
    with pytest.raises(ValueError, match="classes must be 1-5"):
        read_ecg(_write(tmp_path / "x.txt", _rows(True, sep=" ").replace("2.0000000e+00", "7.0000000e+00")))
    with pytest.raises(ValueError, match="unknown ECG5000 format"):
        read_ecg(_write(tmp_path / "x.parquet", ""))
    with pytest.raises(DatasetMissingError, match="data fetch ecg"):
        find_ecg_file(tmp_path, "csv")


def test_ecg_split_is_a_seeded_partition() -> None:
    labels = np.r_[np.ones(300, np.int8), np.zeros(200, np.int8)]
    a, b = ecg_split(labels, seed=4), ecg_split(labels, seed=4)
    parts = [a.fit, a.early_stop, a.calibration, a.anomaly_validation, a.test]
    together = np.concatenate(parts)
    assert len(together) == 500 and len(np.unique(together)) == 500  # every row exactly once
    assert all(
        np.array_equal(x, y)
        for x, y in zip(
            parts, [b.fit, b.early_stop, b.calibration, b.anomaly_validation, b.test], strict=True
        )
    )
    assert (labels[np.r_[a.fit, a.early_stop, a.calibration]] == ECG_NORMAL).all()
    assert (labels[a.anomaly_validation] != ECG_NORMAL).all() and len(a.anomaly_validation) == 20
    assert (
        int((labels[a.test] == ECG_NORMAL).sum()) == 90 and int((labels[a.test] != ECG_NORMAL).sum()) == 180
    )


@pytest.mark.data
def test_real_files_agree_with_each_other() -> None:
    folder = require_data("ecg5000")
    values, labels = read_ecg(find_ecg_file(folder.parent, "csv"))
    assert values.shape == (4998, 140) and int((labels == ECG_NORMAL).sum()) == 2919
    for name in ("ECG5000_TRAIN.txt", "ECG5000_TRAIN.arff", "ECG5000_TRAIN.ts"):
        train_values, train_labels = read_ecg(folder / name)
        assert train_values.shape == (500, 140) and np.bincount(train_labels).tolist() == [
            0,
            292,
            177,
            10,
            19,
            2,
        ]
        # ecg.csv starts with ECG5000_TRAIN in its original order (data README)
        np.testing.assert_array_equal(train_values, values[:500])
        np.testing.assert_array_equal(train_labels == ECG_NORMAL, labels[:500] == ECG_NORMAL)
