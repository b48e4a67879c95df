"""Dataset loaders shared by producers (replay) and models (training, evaluation).

Every file is read through a dataset schema (:mod:`stream.datasets.schema`) by
:func:`~stream.datasets.table.read_table`: a user's own CSV, Parquet or JSON-lines file, and the
built-in datasets alike (``kdd99``, ``nslkdd``, ``ecg5000``, ``ecg5000-ucr``, ``nab``, ``bearing``).
"""

from stream.datasets.ecg import ECG_NORMAL, find_ecg_file, read_ecg
from stream.datasets.files import DatasetFormatError, DatasetMissingError
from stream.datasets.kdd import KDD_NORMAL, find_kdd_file, read_kdd
from stream.datasets.schema import DatasetSchema, SchemaError, load_schema
from stream.datasets.table import Table, read_table
from stream.labels import is_attack  # the one label rule, beside the readers whose labels it reads

__all__ = [
    "ECG_NORMAL",
    "KDD_NORMAL",
    "DatasetFormatError",
    "DatasetMissingError",
    "DatasetSchema",
    "SchemaError",
    "Table",
    "find_ecg_file",
    "find_kdd_file",
    "is_attack",
    "load_schema",
    "read_ecg",
    "read_kdd",
    "read_table",
]
