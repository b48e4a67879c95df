# The two commands of the README:
#   make demo   set everything up (venv, Kafka jars, broker, topics, model) and run the live demo
#   make test   set everything up and run lint + unit + integration tests against a real broker
#
# Datasets are read from ANOMSTREAM_DATA_DIR (default ../shared/data when that folder exists, else
# ./data; `make data` downloads KDD there).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS ?= cpu,dev
export ANOMSTREAM_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),$(abspath data))
# pytest: -x would hide later failures; durations show what makes CI slow.
PYTEST_ARGS ?= -ra --durations=15

# Debian packages the tests need: headless Chromium and its WebDriver (the dashboard's browser test),
# Prometheus (a real server scraping a worker; promtool checks its configuration) and a font for the
# screenshots. Installed with apt when missing (as root, as CI runs); otherwise says what to install.
DEB_PACKAGES := chromium chromium-driver prometheus fonts-dejavu-core

.PHONY: venv demo test lint lint-docker lint-helm tools unit quality integration data clean system-deps

$(BIN)/anomstream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

venv: $(BIN)/anomstream

demo: venv
	$(BIN)/anomstream up

data: venv
	$(BIN)/anomstream data fetch kdd

lint: venv tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	bash scripts/lint-docker.sh
	bash scripts/lint-helm.sh

lint-docker: venv
	bash scripts/lint-docker.sh

# The Helm chart: helm lint, helm template, kubeconform against the vendored schemas (offline).
lint-helm: tools
	bash scripts/lint-helm.sh

# helm and kubeconform (pinned) into .tools/bin, built with `go install` the first time only.
tools:
	bash scripts/install-tools.sh

unit: venv tools
	$(BIN)/pytest tests/unit anomstream stream producers consumers models $(PYTEST_ARGS)

# The detectors on real data (AUC floors, NAB, sensor thresholds, streamed = offline): no broker.
quality: venv
	$(BIN)/pytest tests/quality $(PYTEST_ARGS)

integration: venv system-deps
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

# pytest exits 5 when it collects no tests, which fails this target like any other failure.
test: system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

system-deps:
	@missing=""; \
	for pkg in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing Debian packages:$$missing; install them: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	fi

clean:
	rm -rf $(VENV) .anomstream .pytest_cache .ruff_cache .mypy_cache
