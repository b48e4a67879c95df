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


def require_data(*parts: str) -> Path:
    """The data path, or fail in CI / skip elsewhere when it is missing."""
    path = data_root().joinpath(*parts)
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
