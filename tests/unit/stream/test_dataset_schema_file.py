"""The dataset schema file itself: its published JSON Schema, the built-ins, TOML round trips, and the
one-line errors a hand-written schema gets."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from stream.datasets import schema_doc
from stream.datasets.schema import (
    DatasetSchema,
    SchemaError,
    builtin_schemas,
    json_schema,
    load_schema,
    schema_file,
    to_toml,
)


def test_the_published_json_schema_is_up_to_date() -> None:
    stored = json.loads(schema_file().read_text())
    assert stored == json.loads(json.dumps(json_schema(), sort_keys=True)), (
        "stream/schemas/dataset-schema.schema.json is stale: run python -m stream.datasets.schema"
    )


@pytest.mark.parametrize("name", sorted(builtin_schemas()))
def test_every_builtin_schema_validates_against_the_published_json_schema(name: str) -> None:
    data = tomllib.loads(builtin_schemas()[name].read_text())
    jsonschema.validate(data, json.loads(schema_file().read_text()))
    assert load_schema(name) == DatasetSchema.model_validate(data)


def test_the_builtins_cover_every_dataset_anomstream_ships() -> None:
    assert set(builtin_schemas()) == {"kdd99", "nslkdd", "ecg5000", "ecg5000-ucr", "nab", "bearing"}
    assert {load_schema(n).name for n in builtin_schemas()} == {"kdd", "ecg", "sensor"}


@pytest.mark.parametrize("name", sorted(builtin_schemas()))
def test_toml_written_by_anomstream_reads_back_equal(name: str, tmp_path: Path) -> None:
    schema = load_schema(name)
    path = tmp_path / "s.toml"
    path.write_text(to_toml(schema, {"": "a note\non two lines", "source": "where it reads"}))
    assert load_schema(path) == schema
    assert path.read_text().startswith("# a note\n# on two lines\n")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('name = "Has Spaces"\n[features]\nnumeric = ["a"]\n', "name: String should match pattern"),
        ('name = "alerts"\n[features]\nnumeric = ["a"]\n', "reserved topic name"),
        ('name = "x"\n', "needs [features] numeric and/or categorical"),
        ('name = "x"\nkind = "series"\n[series]\nvalues = ["v"]\n', "needs a [timestamp] column"),
        ('name = "x"\n[features]\nnumeric = ["a"]\n[label]\ncolumn = "y"\nnormal = []\n', "label.normal"),
        ('name = "x"\n[features]\nnumeric = ["a"]\nlog = ["b"]\n', "not numeric features"),
        ('name = "x"\nkey = "a"\n[features]\nnumeric = ["a"]\n', "have two roles"),
        ('name = "x"\n[features]\nnumeric = ["a"]\nnumerc = ["b"]\n', "features.numerc: Extra inputs"),
        ('name = "x"\n[source]\nformat = "xlsx"\n[features]\nnumeric = ["a"]\n', "source.format"),
        ('name = "x"\n[features\n', "not a readable TOML schema"),
    ],
)
def test_a_schema_that_does_not_validate_says_where_in_one_line(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(SchemaError) as caught:
        load_schema(_write(tmp_path, text))
    message = str(caught.value)
    assert says in message and "\n" not in message and "mine.toml" in message


def test_an_unknown_schema_name_lists_the_builtins_and_how_to_draft_one() -> None:
    with pytest.raises(SchemaError, match="anomstream data infer FILE.*kdd99"):
        load_schema("no-such-schema")


def test_a_relative_source_path_is_read_from_the_schema_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.toml"
    path.write_text('name = "x"\n[source]\npath = "data.csv"\n[features]\nnumeric = ["a"]\n')
    assert load_schema(path).source.path == str(tmp_path / "sub" / "data.csv")


def test_the_schema_reference_page_is_up_to_date() -> None:
    assert schema_doc.DOC_PATH.read_text(encoding="utf-8") == schema_doc.render(), (
        "run: python -m stream.datasets.schema_doc"
    )
    assert "| `series.window` | integer ≥ 2, ≤ 4096 | 16 |" in schema_doc.render()
