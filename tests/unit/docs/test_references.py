"""The README and docs/ name code by path: every file they name exists, and every ``file.py::test`` names
a test in that file. Pages once pointed at tests and modules moved or renamed since (issue 26: "docs
that describe behaviour the code no longer has"); this is the check that is cheap."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("anomstream", "stream", "producers", "consumers", "models", "tests", "scripts", "deploy", "docs")
# A repository path in backticks or a Markdown link: top folder, then path segments, then a file name.
PATH = re.compile(
    rf"(?<![\w/.-])(?:\.\./)?((?:{'|'.join(TOP)})/[\w./-]*\.(?:py|md|json|sh|yaml|yml|toml|html|js|css))(?:::(\w+))?"
)


def _references(page: Path) -> list[tuple[str, str | None]]:
    return [(m.group(1), m.group(2)) for m in PATH.finditer(page.read_text())]


def test_the_pages_name_code_at_all() -> None:
    """The pattern still finds what the pages name (a check that found nothing would pass forever)."""
    found = sum(len(_references(page)) for page in PAGES)
    assert found >= 50, found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_path_a_page_names_exists(page: Path) -> None:
    missing = []
    for path, test in _references(page):
        target = ROOT / path
        if not target.exists():
            missing.append(path)
        elif test is not None and not re.search(rf"^(?:async )?def {test}\b", target.read_text(), re.M):
            missing.append(f"{path}::{test}")
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {missing}"
