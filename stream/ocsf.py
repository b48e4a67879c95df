"""OCSF Detection Finding: the JSON Schema every incident message must satisfy, and its validator.

Incidents are published as OCSF 1.3.0 Detection Findings (class 2004), the format SIEMs read. The
class's JSON Schema is vendored in ``stream/schemas/ocsf/`` (see its SOURCES.md), generated offline from
OCSF's own schema export as the ``ocsf-json-schema`` package ships it: ``python -m stream.ocsf``
regenerates it, and a test checks that the vendored file is what the pinned package generates.

The schema is OCSF's base class with no profile applied: OCSF closes every object
(``additionalProperties: false``), so a field outside the class (a typo, a profile's attribute we do
not declare) is an error; what OCSF has no place for goes under ``unmapped``.

>>> validate_detection_finding({"class_uid": 2004})[0]
"(root): 'activity_id' is a required property"
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

OCSF_VERSION = "1.3.0"
DETECTION_FINDING_CLASS_UID = 2004
DETECTION_FINDING_CLASS = "detection_finding"
OCSF_SCHEMA_DIR = Path(__file__).parent / "schemas" / "ocsf"
DETECTION_FINDING_SCHEMA = OCSF_SCHEMA_DIR / f"{DETECTION_FINDING_CLASS}-{OCSF_VERSION}.schema.json"

# The generator and the OCSF export it reads; pinned, so regenerating gives the vendored file byte for byte.
GENERATOR_PACKAGE = "ocsf-json-schema"
GENERATOR_VERSION = "1.2.0"

# jsonschema repeats the offending instance in some messages (anyOf, enum): an incident's whole
# `unmapped` block would flood a log line.
_MAX_MESSAGE = 240


def generate_detection_finding_schema() -> dict[str, Any]:
    """The Detection Finding class's JSON Schema (Draft 2020-12, objects inlined under ``$defs``),
    generated from the OCSF export that the pinned ``ocsf-json-schema`` package ships (no network)."""
    try:
        from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
        from ocsf_json_schema.__about__ import __version__
    except ImportError as err:  # a dev-only dependency
        raise RuntimeError(
            f"{GENERATOR_PACKAGE} is not installed: pip install '{GENERATOR_PACKAGE}=={GENERATOR_VERSION}'"
            " (it is in the dev extra)"
        ) from err
    if __version__ != GENERATOR_VERSION:
        raise RuntimeError(
            f"{GENERATOR_PACKAGE} {__version__} found, the vendored schema comes from {GENERATOR_VERSION}:"
            f" pip install '{GENERATOR_PACKAGE}=={GENERATOR_VERSION}'"
        )
    ocsf = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))
    name = ocsf.lookup_class_name_from_uid(class_uid=DETECTION_FINDING_CLASS_UID)
    schema: dict[str, Any] = ocsf.get_class_schema(class_name=name, profiles=[])
    return schema


def schema_text(schema: dict[str, Any]) -> str:
    """The vendored file's exact text: sorted keys, so a regeneration diffs cleanly."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_detection_finding_schema(path: Path = DETECTION_FINDING_SCHEMA) -> Path:
    """Regenerate the vendored schema file (kept in the repository, checked by a test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(generate_detection_finding_schema()))
    return path


def detection_finding_schema() -> dict[str, Any]:
    """The vendored Detection Finding schema, as subscribers and the tests read it."""
    schema: dict[str, Any] = json.loads(DETECTION_FINDING_SCHEMA.read_text())
    return schema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    # Built once: the schema is ~130 kB of inlined objects.
    return jsonschema.Draft202012Validator(detection_finding_schema())


def validate_detection_finding(doc: object) -> list[str]:
    """What makes ``doc`` not a valid OCSF 1.3.0 Detection Finding, one line per error (empty: valid).

    Each line is ``<JSON path>: <what is wrong>``, ordered by path so the output is stable.
    """
    lines = []
    for error in _validator().iter_errors(doc):
        where = "/" + "/".join(str(part) for part in error.absolute_path) if error.absolute_path else "(root)"
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        lines.append(f"{where}: {message}")
    return sorted(lines)


if __name__ == "__main__":  # python -m stream.ocsf: refresh the vendored schema file
    print(write_detection_finding_schema())
