"""The configuration reference: docs/configuration.md is current, complete, and the same on every
machine; every ANOMSTREAM_* variable the README and docs/ name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from stream import settings_doc
from stream.settings_doc import DOC_PATH, render, variables

ROOT = Path(__file__).resolve().parents[3]
# Variables read by the test suite, not by Settings.
TEST_ONLY = {
    "ANOMSTREAM_TEST_BOOTSTRAP_SERVERS",
    "ANOMSTREAM_TEST_CRASH_BEFORE_COMMIT",
    "ANOMSTREAM_TEST_S3_ENDPOINT",
}


def test_configuration_doc_is_up_to_date() -> None:
    """A settings change without a refreshed reference must fail here."""
    assert DOC_PATH.read_text(encoding="utf-8") == render(), "run: python -m stream.settings_doc"


def test_the_reference_does_not_depend_on_the_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Defaults computed from the environment (the XDG folders) are shown as their rule."""
    expected = render()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ANOMSTREAM_BATCH_SIZE", "7")
    assert render() == expected


def test_a_field_without_a_description_is_refused() -> None:
    class Undocumented(BaseModel):
        documented: int = Field(default=1, description="has one")
        bare: int = 2

    with pytest.raises(ValueError, match="Undocumented.bare has no description"):
        list(settings_doc._fields(Undocumented, "ANOMSTREAM_"))


def _documented(name: str, known: list[str]) -> bool:
    if name in known or name in TEST_ONLY:
        return True
    if name.endswith("_") and any(k.startswith(name) for k in known):  # ANOMSTREAM_DRIFT__* or ..._RETRAIN_
        return True
    patterns = [k.removesuffix("<NAME>") for k in known if k.endswith("<NAME>")]
    return any(name.startswith(p) and len(name) > len(p) for p in patterns)


def test_every_variable_the_docs_name_is_a_setting() -> None:
    """A misspelt or removed variable in the README or docs/ fails here (ANOMSTREAM_STATE_DIR was once
    listed twice with two defaults)."""
    known = [v.name for v in variables()]
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    unknown = {
        f"{page.relative_to(ROOT)}: {name}"
        for page in pages
        for name in re.findall(r"ANOMSTREAM_[A-Z0-9_]+", page.read_text(encoding="utf-8"))
        if not _documented(name, known)
    }
    assert not unknown, sorted(unknown)


def test_no_variable_is_listed_twice() -> None:
    names = [v.name for v in variables()]
    assert len(names) == len(set(names))
