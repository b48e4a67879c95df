"""Dataset loaders shared by producers (replay) and models (training, evaluation)."""

from stream.datasets.kdd import (
    KDD_NORMAL,
    DatasetMissingError,
    find_kdd_file,
    is_attack,
    read_kdd,
)

__all__ = ["KDD_NORMAL", "DatasetMissingError", "find_kdd_file", "is_attack", "read_kdd"]
