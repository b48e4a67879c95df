"""The real datasets: where they are, and failing (in CI) or skipping (elsewhere) when they are not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from stream.datasets import find_kdd_file, read_kdd
from stream.messages import SCHEMA_DIR
from stream.settings import in_ci

REPO = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    return Path(os.environ.get("ANOMSTREAM_DATA_DIR") or REPO.parent / "shared" / "data")


# The test being set up or run (set by tests.support.plugin): a unit test that reads the data folder
# must say so with @pytest.mark.data, so `pytest tests/unit -m "not data"` runs without it.
current_test: pytest.Item | None = None
DATA_FIXTURES = frozenset({"data_dir", "kdd_registry", "kdd_pca_registry", "sensor_registry"})
"""Session fixtures that read the data folder (each calls :func:`require_data`)."""


def unmarked_data_use(item: pytest.Item) -> str | None:
    """Why a unit test should be marked ``data`` and is not (None when it is marked, or needs none)."""
    if "tests/unit/" not in item.nodeid or item.get_closest_marker("data") is not None:
        return None
    used = sorted(DATA_FIXTURES & set(getattr(item, "fixturenames", ())))
    return f"it uses the fixture {used[0]}" if used else None


def require_data(*parts: str) -> Path:
    """The data path, or fail in CI / skip elsewhere when it is missing; a unit test that asks for it
    must be marked ``data``."""
    path = data_root().joinpath(*parts)
    item = current_test
    if item is not None and "tests/unit/" in item.nodeid and item.get_closest_marker("data") is None:
        pytest.fail(f"{item.nodeid} reads {'/'.join(parts)} from the data folder: mark it @pytest.mark.data")
    if not path.exists():
        message = f"{path} not found: set ANOMSTREAM_DATA_DIR to the folder that holds kdd99/, ecg5000/, nab/"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def corrected_sample(data_dir: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """A seeded random sample of real ``corrected`` connections (normal and attacks mixed)."""
    frame = read_kdd(find_kdd_file(data_dir, "test"))
    return frame.sample(n=n, random_state=seed).reset_index(drop=True)


def schema_validator(stem: str) -> jsonschema.Draft202012Validator:
    """A validator of the published JSON Schema ``stream/schemas/<stem>.schema.json`` (formats checked)."""
    schema = json.loads((SCHEMA_DIR / f"{stem}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
