"""``anomstream train`` says what it trained on (normal rows, the fit / early-stop / calibration split,
the anomalous rows kept for validation) and whether the new version is in production, and if not the
command that promotes it (issue 28: both were only in the manifest)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from anomstream.cli import main
from models.registry import Registry
from tests.support import require_data

pytestmark = pytest.mark.data  # every test here reads the data folder


def _train(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["train", *args])
    out, err = capsys.readouterr()
    assert exited.value.code in (0, None), err
    return " ".join((out + err).split())  # the console (stderr) may wrap


def test_train_prints_the_rows_it_used_and_how_to_promote_a_version_that_is_not_production(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = require_data("nslkdd", "KDDTrain+_20Percent.txt")
    frame = pd.read_csv(source, header=None, nrows=3000).iloc[:, [0, 4, 5, 22, 23, 41]]
    frame.columns = ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "label"]
    frame = frame.astype({"count": float})
    frame.loc[10, "count"] = float("inf")
    frame.to_csv(tmp_path / "conn.csv", index=False)
    (tmp_path / "conn.toml").write_text(
        'name = "conn"\n[source]\npath = "conn.csv"\n[features]\n'
        'numeric = ["duration", "src_bytes", "dst_bytes", "count", "srv_count"]\nmissing = "drop"\n'
        '[label]\ncolumn = "label"\nnormal = ["normal"]\n'
    )
    monkeypatch.setenv("ANOMSTREAM_REGISTRY_DIR", str(tmp_path / "registry"))
    labels = frame["label"].drop(index=10)
    normal, anomalous = int((labels == "normal").sum()), int((labels != "normal").sum())

    first = _train(["--schema", str(tmp_path / "conn.toml"), "--detector", "pca"], capsys)
    assert f"trained on {normal:,} normal rows of conn.csv: fit " in first
    assert f"{anomalous:,} anomalous rows, " in first and "kept for validation" in first
    assert '1 unusable rows left out (missing = "drop")' in first
    assert "conn/pca v1 is in production" in first

    second = _train(["--schema", str(tmp_path / "conn.toml"), "--detector", "pca"], capsys)
    assert "conn/pca v2 is NOT in production (production is pca v1)" in second
    assert "promote it with: anomstream models promote conn pca 2" in second
    production = Registry(tmp_path / "registry").production("conn")
    assert production is not None and production.model == ("pca", 1)
