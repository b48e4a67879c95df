"""Dataset schemas: one small TOML file that says how a file of one's own becomes a stream.

A schema names the stream (its topic, its registry entry, the ``stream`` of its alerts), says how to
read the file (CSV, Parquet or JSON lines, gzip or not), which column holds the time, the key and the
ground truth, and what a detector scores:

- ``kind = "records"``: one message per row, a JSON object of the numeric and categorical feature
  columns (KDD connections, a firewall log, daily weather);
- ``kind = "series"``: sliding windows over the value column(s) of a time series, one message per
  window (NAB, a sensor CSV; several value columns: one multivariate window, or one series each);
- ``kind = "windows"``: one row is already one window of samples (ECG5000 heartbeats).

The built-in datasets are schemas too (``stream/datasets/builtin/*.toml``): KDD Cup 99, NSL-KDD,
ECG5000, NAB series and the NASA bearing are read by the same code as a user's file.

For example::

    schema = load_schema("seattle-weather.toml")
    schema.name, schema.kind, schema.features.numeric
    # -> ('seattle-weather', 'records', ['precipitation', 'temp_max', 'temp_min', 'wind'])

Validated with pydantic; its JSON Schema is published as ``stream/schemas/dataset-schema.schema.json``.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream.errors import ConfigurationError
from stream.settings import Settings, TopicNames

BUILTIN_DIR = Path(__file__).parent / "builtin"
# Names a schema stream may not take: the logical topics every deployment already has.
RESERVED_NAMES = frozenset({"alerts", "scores", "dead_letter", "dead-letter", "drift", "model_updates",
                            "model-updates", "feedback", "topic_prefix"})  # fmt: skip
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
# The topics anomstream writes: a schema reading one would have a worker score its own outputs.
OUTPUT_TOPICS = ("alerts", "scores", "dead_letter", "drift", "model_updates", "feedback", "incidents",
                 "incident_members", "incidents_state")  # fmt: skip


def output_topic_role(topic: str, settings: Settings | None = None) -> str | None:
    """Which output ``topic`` is (``alerts``, ``drift``, ...), by its default name or, given
    ``settings``, its configured full name; None when anomstream does not write it."""
    for role in OUTPUT_TOPICS:
        default = TopicNames.model_fields[role].default
        if topic == default or (settings is not None and topic == settings.topic(role)):
            return role
    return None


class SchemaError(ConfigurationError):
    """A dataset schema file that cannot be read or does not validate (one line: what and where)."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Part):
    """How the file is read."""

    format: Literal["csv", "parquet", "jsonl"] = Field(
        default="csv", description="csv (any delimiter), parquet, or jsonl (one JSON object per line)"
    )
    compression: Literal["infer", "gzip", "none"] = Field(
        default="infer", description="infer: gzip when the file name ends in .gz"
    )
    header: bool = Field(default=True, description="csv: the first line names the columns")
    columns: list[str] = Field(
        default_factory=list,
        description="csv without a header: the name of every column, in file order (unset: the "
        'columns are named by position, "0", "1", ...)',
    )
    delimiter: str = Field(default=",", description='csv: one character, or "whitespace" for runs of blanks')
    path: str | None = Field(
        default=None, description="the file to read when none is given (relative to the schema file)"
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if value != "whitespace" and len(value) != 1:
            raise ValueError(f'must be one character or "whitespace", got {value!r}')
        return value


class Timestamp(_Part):
    """When each row happened; replays can be paced by it (`--speedup`)."""

    column: str | None = Field(default=None, description="the column holding each row's time")
    format: str | None = Field(
        default=None,
        description='strftime format such as %Y/%m/%d %H:%M, or "unix" / "unix_ms" for epoch numbers; '
        "unset: ISO 8601 or inferred",
    )
    row_number: bool | None = Field(
        default=None,  # unset, not false: a schema with a time column never mentions it
        description="no time column (a file of one number per line): each row's time is its row number "
        "in the file (0, 1, ...), read as seconds from 1970-01-01; set instead of column",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Timestamp:
        if (self.column is None) == (not self.row_number):
            raise ValueError("give the time's column, or row_number = true when the file has none (not both)")
        if self.row_number and self.format is not None:
            raise ValueError("row_number = true times rows by their number: leave format unset")
        return self


class Features(_Part):
    """What a records detector scores: numeric columns are min-max scaled on training data,
    categorical ones one-hot encoded (a category never seen in training encodes as zeros)."""

    numeric: list[str] = Field(default_factory=list, description="numeric feature columns")
    categorical: list[str] = Field(default_factory=list, description="categorical feature columns")
    log: list[str] = Field(
        default_factory=list,
        description="numeric columns compressed with log(1 + x) before scaling (counts and byte sizes "
        "that span orders of magnitude)",
    )
    minimum: dict[str, float] = Field(
        default_factory=dict,
        description="numeric columns and the least value each may hold: a message with a smaller one is "
        "dead-lettered, never scored (KDD: counts and sizes are never negative)",
    )
    maximum: dict[str, float] = Field(
        default_factory=dict,
        description="numeric columns and the largest value each may hold: a message with a larger one is "
        "dead-lettered, never scored (KDD: rates and flags lie in [0, 1])",
    )
    missing: Literal["error", "drop"] = Field(
        default="error",
        description="a row with a missing or unusable value (an empty feature or label cell, NA, null, "
        "or a number that is not finite: inf, -inf): refuse the file in one line naming the column and "
        "the file's row (error), or leave the row out of replay and training (drop; event ids and row "
        "numbers still count the file's rows)",
    )


class Label(_Part):
    """Ground truth: travels in the `label` header, never in the fields a detector scores."""

    column: str = Field(description="the column holding each row's label")
    normal: list[str | int | float | bool] = Field(
        min_length=1, description="the value(s) that mean normal; every other value is an anomaly"
    )
    trim: str = Field(default="", description='characters stripped from the end of a label (KDD: ".")')


class Series(_Part):
    """Sliding windows over a time series (`kind = "series"`)."""

    values: list[str] = Field(min_length=1, description="the value column(s)")
    window: int = Field(default=16, ge=2, le=4096, description="rows per window")
    stride: int = Field(default=1, ge=1, description="rows between the ends of two windows")
    multivariate: bool = Field(
        default=True,
        description="several value columns: one window of all of them (true), or one series per column "
        "keyed by its name (false)",
    )


class Incidents(_Part):
    """How the incident stage groups this stream's alerts (`[incidents]`, docs/incidents.md)."""

    group_by: list[str] = Field(
        default_factory=list,
        max_length=3,
        description="up to 3 feature columns whose values an incident's alerts share (none: alerts are "
        "grouped by their explanations)",
    )


class DatasetSchema(_Part):
    """A dataset of one's own, declared: how to read it, what to score, where it streams."""

    name: str = Field(
        pattern=NAME_PATTERN, description="the stream's name: registry entry, alerts' stream, default topic"
    )
    description: str = Field(default="", description="free text: where the data comes from")
    kind: Literal["records", "series", "windows"] = Field(
        default="records", description="records: a message per row; series: sliding windows; "
        "windows: a row is a window of samples"
    )  # fmt: skip
    topic: str | None = Field(default=None, description="the input topic (default: the stream's name)")
    source: Source = Field(default_factory=Source)
    timestamp: Timestamp | None = None
    key: str | None = Field(
        default=None, description="the column whose value keys each message (series: one series per key)"
    )
    features: Features = Field(default_factory=Features)
    label: Label | None = None
    series: Series | None = None
    incidents: Incidents | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSchema:
        if self.name in RESERVED_NAMES:
            raise ValueError(f"name {self.name!r} is a reserved topic name: choose another")
        role = output_topic_role(self.topic_name)
        if role is not None:
            raise ValueError(
                f"topic {self.topic_name!r} is anomstream's {role} output: a worker reading it would score "
                "its own outputs; name the topic your data arrives on"
            )
        if self.kind == "series" and self.series is None:
            raise ValueError('kind = "series" needs a [series] table with its value column(s)')
        if self.kind != "series" and self.series is not None:
            raise ValueError(f'a [series] table applies to kind = "series", not {self.kind!r}')
        if self.kind == "records" and not (self.features.numeric or self.features.categorical):
            raise ValueError('kind = "records" needs [features] numeric and/or categorical columns')
        if self.kind == "series" and (self.features.numeric or self.features.categorical):
            raise ValueError('kind = "series" scores its [series] values: leave [features] empty')
        for part in ("log", "minimum", "maximum"):
            unknown = sorted(set(getattr(self.features, part)) - set(self.features.numeric))
            if unknown:
                raise ValueError(f"[features] {part} names {unknown}, which are not numeric features")
        if self.kind == "series" and self.timestamp is None:
            raise ValueError('kind = "series" needs a [timestamp] column: windows say when they end')
        roles = self.scored_columns() + self.meta_columns()
        doubled = sorted({c for c in roles if roles.count(c) > 1})
        if doubled:
            raise ValueError(f"column(s) {doubled} have two roles: a column is a feature, key, label or time")
        return self

    # -- what the file must hold ----------------------------------------------------------------
    def scored_columns(self) -> list[str]:
        """The columns a detector scores, in message order (empty for ``windows``: every other column)."""
        if self.series is not None:
            return list(self.series.values)
        return [*self.features.numeric, *self.features.categorical]

    def meta_columns(self) -> list[str]:
        """Time, key and label columns."""
        columns = []
        if self.timestamp is not None and self.timestamp.column is not None:
            columns.append(self.timestamp.column)
        if self.key is not None:
            columns.append(self.key)
        if self.label is not None:
            columns.append(self.label.column)
        return columns

    @property
    def topic_name(self) -> str:
        """The input topic, before any common prefix."""
        return self.topic or self.name

    def input_topic(self, settings: Settings) -> str:
        """The full input topic: a built-in stream's configured topic (``ANOMSTREAM_TOPICS__KDD``), else
        the schema's ``topic`` (default: its name), both under the common topic prefix."""
        if self.name in TopicNames.model_fields:
            return settings.topic(self.name)
        topic = settings.topic_prefix + self.topic_name
        role = output_topic_role(topic, settings)
        if role is not None:  # a configured output name (ANOMSTREAM_TOPICS__ALERTS=...) the schema names
            raise SchemaError(
                f"schema {self.name!r} reads topic {topic!r}, which anomstream writes ({role}, "
                f"ANOMSTREAM_TOPICS__{role.upper()}): a worker would score its own outputs; name the topic "
                "your data arrives on"
            )
        return topic

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (stored with every model trained on the stream)."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "schema") -> DatasetSchema:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SchemaError(f"{where}: {_one_line(exc)}") from None


def _one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def builtin_schemas() -> dict[str, Path]:
    """The schema files shipped with anomstream, by name (``kdd99``, ``ecg5000``, ``nab``, ...)."""
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.toml"))}


# The built-in streams resolve to their built-in schemas: ``--stream kdd`` is the kdd99 schema's stream.
BUILTIN_STREAM_SCHEMAS = {"kdd": "kdd99", "ecg": "ecg5000", "sensor": "nab"}


@functools.cache
def builtin_schema(name: str) -> DatasetSchema:
    """A built-in schema by name (``kdd99``, ``nslkdd``, ...), read once.

    >>> builtin_schema("kdd99").name, builtin_schema("kdd99").topic
    ('kdd', 'kdd.connections')
    """
    if name not in builtin_schemas():
        raise SchemaError(f"no built-in dataset schema {name!r}: use one of {', '.join(builtin_schemas())}")
    return load_schema(name)


def stream_schema(stream: str) -> DatasetSchema | None:
    """The built-in schema a built-in stream's messages follow (``kdd``: kdd99); None for another stream."""
    name = BUILTIN_STREAM_SCHEMAS.get(stream)
    return builtin_schema(name) if name is not None else None


def load_schema(where: str | Path) -> DatasetSchema:
    """A schema from a TOML (or JSON) file, or a built-in by name; SchemaError says what is wrong.

    A relative ``source.path`` is resolved against the schema file's folder.
    """
    path = Path(where)
    if not path.is_file():
        builtins = builtin_schemas()
        if str(where) in builtins:
            path = builtins[str(where)]
        else:
            raise SchemaError(
                f"no dataset schema {str(where)!r}: give a schema file (write a draft with "
                f"`anomstream data infer FILE`) or a built-in: {', '.join(builtins)}"
            )
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError, JSONDecodeError
        raise SchemaError(f"{path}: not a readable TOML schema: {exc}") from None
    schema = DatasetSchema.from_dict(data, str(path))
    if schema.source.path is not None and not Path(schema.source.path).is_absolute():
        where_file = os.path.normpath(path.parent / schema.source.path)  # "../data/x.csv" read plainly
        source = schema.source.model_copy(update={"path": where_file})
        schema = schema.model_copy(update={"source": source})
    return schema


def schema_file(directory: Path | None = None) -> Path:
    """Where the published JSON Schema of dataset schemas lives."""
    return (directory or Path(__file__).parents[1] / "schemas") / "dataset-schema.schema.json"


def json_schema() -> dict[str, Any]:
    schema = DatasetSchema.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def write_json_schema(directory: Path | None = None) -> Path:
    path = schema_file(directory)
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    return path


# -- TOML ------------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table: keys quoted, as column names may hold anything
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def to_toml(schema: DatasetSchema, notes: dict[str, str] | None = None) -> str:
    """The schema as TOML, each table preceded by the ``notes`` given for it (``"features"``: ...).

    Read back by :func:`load_schema` into an equal schema.
    """
    notes = notes or {}
    data = schema.to_dict()
    lines = [f"# {line}" for line in notes.get("", "").splitlines()]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if key not in tables:
            lines.append(f"{key} = {_toml_value(value)}")
    for table, values in tables.items():
        lines.append("")
        lines.extend(f"# {line}" for line in notes.get(table, "").splitlines())
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m stream.datasets.schema: refresh the published JSON Schema
    print(write_json_schema())
