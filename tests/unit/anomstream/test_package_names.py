"""Issue 26 item 7: anomstream's top-level packages (stream, producers, consumers, models) are common
words; a user's own package of one of those names, earlier on sys.path, is refused in one line at
import (and at the command line's start), instead of being imported in place of ours."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anomstream
from anomstream.names import check_siblings

ROOT = Path(anomstream.__file__).resolve().parent.parent


def run(code: list[str], cwd: Path, path: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))}
    return subprocess.run(code, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_installed_packages_pass() -> None:
    check_siblings()


def test_a_users_models_package_first_on_the_path_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("APP = 'a Django app'\n")
    imported = run([sys.executable, "-c", "import anomstream"], tmp_path, [tmp_path, ROOT])
    assert imported.returncode != 0
    assert f"anomstream's package 'models' is imported from {tmp_path / 'models'}" in imported.stderr
    cli = run([sys.executable, "-m", "anomstream", "--help"], tmp_path, [tmp_path, ROOT])
    assert cli.returncode == 1 and cli.stdout == ""
    assert cli.stderr.count("\n") == 1 and cli.stderr.startswith("error: anomstream's package 'models'")


def test_a_users_package_later_on_the_path_is_no_concern(tmp_path: Path) -> None:
    (tmp_path / "stream").mkdir()
    (tmp_path / "stream" / "__init__.py").write_text("")
    elsewhere = tmp_path / "elsewhere"  # `python -c` puts its current folder first on sys.path
    elsewhere.mkdir()
    imported = run(
        [sys.executable, "-c", "import anomstream, stream; print(stream.__file__)"],
        elsewhere,
        [ROOT, tmp_path],
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == str(ROOT / "stream" / "__init__.py")
