"""Malformed messages land in dead-letter with their bytes untouched; valid ones around them are scored."""

from __future__ import annotations

import orjson
import pytest

from producers.kdd import kdd_events
from producers.replay import Event
from stream.kafka import read_all
from stream.settings import Settings
from tests.support import (
    corrected_sample,
    replay_events,
    run_worker,
    schema_validator,
    score_records,
    scored_offsets,
)

pytestmark = pytest.mark.integration


def _mutate(valid: bytes, **changes: object) -> bytes:
    record = orjson.loads(valid)
    for key, value in changes.items():
        if value is KeyError:
            del record[key]
        else:
            record[key] = value
    return orjson.dumps(record)


def test_malformed_messages_go_to_dead_letter_and_valid_ones_are_scored(kafka_settings: Settings) -> None:
    settings = kafka_settings
    good = list(kdd_events(corrected_sample(settings.data_dir, 6, seed=3), "corrected"))
    template = good[0].value
    bad = {
        b"bad-json": b'{"duration": 0, "protocol_type": "tcp",',
        b"missing-field": _mutate(template, src_bytes=KeyError),
        b"wrong-type": _mutate(template, src_bytes="lots"),
        b"nan": template.replace(b'"dst_bytes":', b'"dst_bytes":NaN,"x":', 1),
        b"out-of-range": _mutate(template, serror_rate=1.5),
        b"not-an-object": b"[1, 2, 3]",
    }
    # Interleave: valid, bad, valid, bad, ... all in one partition-agnostic replay.
    events: list[Event] = []
    for i, (key, value) in enumerate(bad.items()):
        events += [good[i], Event(key, value, label="normal")]
    replay_events(settings, events)

    stats = run_worker(settings, max_events=len(events))
    assert (stats.events, stats.dead_letters) == (len(good), len(bad))

    letters = {m.key(): m for m in read_all(settings, settings.topic("dead_letter"))}
    assert set(letters) == set(bad)
    header_schema = schema_validator("dead-letter-headers")
    for key, message in letters.items():
        assert message.value() == bad[key], "dead letter bytes must be the original bytes"
        headers = {k: v.decode() for k, v in message.headers()}
        header_schema.validate(headers)
        assert headers["source.topic"] == settings.topic("kdd")
        assert int(headers["source.offset"]) >= 0 and headers["error.message"]
        assert headers["label"] == "normal", "original headers are kept"
    errors = {key: dict(m.headers())[b"error.type".decode()].decode() for key, m in letters.items()}
    assert errors[b"bad-json"] == "InvalidJSON"
    assert errors[b"missing-field"] == errors[b"wrong-type"] == errors[b"out-of-range"] == "ValidationError"
    assert b"src_bytes" in dict(letters[b"missing-field"].headers())["error.message"]

    scored = scored_offsets(score_records(settings))
    assert sum(scored.values()) == len(good)
