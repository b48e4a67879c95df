"""Finding dataset files under ``ANOMSTREAM_DATA_DIR``, and the error that says how to get them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from stream.errors import AnomstreamError


class DatasetMissingError(AnomstreamError, FileNotFoundError):
    """A dataset file is not in the data directory; the message says how to get it."""


class DatasetFormatError(AnomstreamError, ValueError):
    """A file is not the dataset it was given as; the message says what was expected."""


def first_file(folders: Iterable[Path], names: Iterable[str]) -> Path | None:
    """The first ``folder / name`` that is a file, trying every name in a folder before the next."""
    names = tuple(names)
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def find_named_file(
    data_dir: Path,
    which: str,
    files: Mapping[str, tuple[str, ...]],
    subfolders: Iterable[str],
    dataset: str,
    hint: str,
) -> Path:
    """``which`` as a path, or the file of logical name ``which`` in ``data_dir/<subfolder>`` or ``data_dir``.

    ``files`` maps logical names to candidate file names (in order of preference); ``hint`` ends the
    error message with how to get the data.
    """
    candidate = Path(which)
    if candidate.is_file():
        return candidate
    if which not in files:
        what = "is a directory, not a file" if candidate.is_dir() else "is neither a file nor"
        names = ", ".join(sorted(files))
        if candidate.is_dir():
            raise DatasetMissingError(f"{which} {what}: give a {dataset} file or one of {names}")
        raise DatasetMissingError(f"{which!r} {what} one of {names}")
    found = first_file([*(data_dir / sub for sub in subfolders), data_dir], files[which])
    if found is None:
        looked_for = ", ".join(files[which])
        raise DatasetMissingError(
            f"{dataset} {which!r} file not found under {data_dir} (looked for {looked_for}). {hint}"
        )
    return found
