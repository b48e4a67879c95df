"""Dataset loaders shared by producers (replay) and models (training, evaluation)."""

from stream.datasets.ecg import ECG_NORMAL, find_ecg_file, read_ecg
from stream.datasets.files import DatasetFormatError, DatasetMissingError
from stream.datasets.kdd import KDD_NORMAL, find_kdd_file, read_kdd
from stream.labels import is_attack  # the one label rule, beside the readers whose labels it reads

__all__ = [
    "ECG_NORMAL",
    "KDD_NORMAL",
    "DatasetFormatError",
    "DatasetMissingError",
    "find_ecg_file",
    "find_kdd_file",
    "is_attack",
    "read_ecg",
    "read_kdd",
]
