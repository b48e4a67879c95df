"""A dataset schema may not read a topic anomstream writes: a worker would score its own outputs
(issue 28: ``topic = "alerts"`` was accepted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.datasets.schema import OUTPUT_TOPICS, DatasetSchema, SchemaError, load_schema
from stream.settings import Settings, TopicNames


@pytest.mark.parametrize("role", OUTPUT_TOPICS)
def test_a_schema_naming_an_output_topic_is_refused_in_one_line(role: str, tmp_path: Path) -> None:
    topic = TopicNames.model_fields[role].default
    path = tmp_path / "mine.toml"
    path.write_text(f'name = "mine"\ntopic = "{topic}"\n[features]\nnumeric = ["x"]\n')
    with pytest.raises(SchemaError, match=rf"topic '{topic}' is anomstream's {role} output") as caught:
        load_schema(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_configured_output_topic_is_refused_when_the_stream_s_topic_is_resolved() -> None:
    settings = Settings(topic_prefix="sec.", topics=TopicNames(alerts="sec-alerts", drift="dr"))
    schema = DatasetSchema(name="mine", topic="dr", features={"numeric": ["x"]})  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"reads topic 'sec.dr', which anomstream writes \(drift"):
        schema.input_topic(settings)
    assert DatasetSchema(name="mine", features={"numeric": ["x"]}).input_topic(settings) == "sec.mine"  # type: ignore[arg-type]


def test_a_stream_named_like_an_output_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="incidents output"):
        DatasetSchema(name="incidents", features={"numeric": ["x"]})  # type: ignore[arg-type]
