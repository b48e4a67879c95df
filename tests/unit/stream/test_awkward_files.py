"""Issue 28's two awkward files (scripts/awkward-files.py) go from `data infer` through training with no
hand edit: NSL-KDD sorted by label with an id counter, an attack category and a few inf and empty
cells; a NAB series with no header and no time column."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from models.registry import Registry
from models.training import TrainingRequest, train
from stream.datasets.infer import infer_schema
from stream.datasets.schema import load_schema, to_toml
from tests.support import data_root, require_data

pytestmark = pytest.mark.data  # every test here reads the data folder

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "awkward-files.py"
_spec = importlib.util.spec_from_file_location("awkward_files", SCRIPT)
assert _spec is not None and _spec.loader is not None
AWKWARD = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(AWKWARD)


@pytest.fixture(scope="module")
def awkward(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    require_data("nslkdd", "KDDTrain+_20Percent.txt")
    return AWKWARD.build(data_root(), tmp_path_factory.mktemp("awkward"))


def _drafted(path: Path) -> Path:
    """The draft as `anomstream data infer` writes it, beside the file."""
    schema, notes = infer_schema(path, schema_dir=path.parent)
    target = path.with_suffix(".schema.toml")
    target.write_text(to_toml(schema, notes))
    return target


def test_the_sorted_connections_file_trains_from_its_draft_as_it_is(
    awkward: list[Path], tmp_path: Path
) -> None:
    connections = awkward[0]
    schema = load_schema(_drafted(connections))
    text = _drafted(connections).read_text()
    assert schema.kind == "records" and schema.label is not None and schema.label.normal == ["normal"]
    assert "id" not in schema.features.numeric and "attack_category" not in schema.features.categorical
    assert "attack_category: restates the label" in text and "id: a row counter" in text
    assert schema.features.missing == "drop"
    assert {"service", "protocol_type", "flag"} <= set(schema.features.categorical)

    registry = Registry(tmp_path / "registry")
    ref = train(registry, data_root(), TrainingRequest.for_schema(schema, detector="pca"))
    manifest = registry.manifest(ref.stream, ref.detector, ref.version)
    labels = pd.read_csv(connections, usecols=["label"])["label"]
    unusable = sorted({row - 1 for row, _ in (*AWKWARD.INF_CELLS, *AWKWARD.EMPTY_CELLS)})
    training = manifest["training"]
    assert training["dropped_rows"] == len(unusable) == 6
    assert training["normal_rows"] == int((labels.drop(index=unusable) == "normal").sum())
    assert math.isfinite(registry.threshold(ref.stream, ref.detector, ref.version).threshold_)


def test_the_headerless_series_trains_from_its_draft_as_it_is(awkward: list[Path], tmp_path: Path) -> None:
    series = awkward[1]
    schema = load_schema(_drafted(series))
    assert schema.kind == "series" and schema.timestamp is not None and schema.timestamp.row_number
    registry = Registry(tmp_path / "registry")
    ref = train(registry, data_root(), TrainingRequest.for_schema(schema, detector="pca"))
    assert math.isfinite(registry.threshold(ref.stream, ref.detector, ref.version).threshold_)
    assert registry.production(schema.name) is not None
