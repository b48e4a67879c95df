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

.PHONY: venv demo test lint lint-docker unit integration data clean

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

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	bash scripts/lint-docker.sh

lint-docker: venv
	bash scripts/lint-docker.sh

unit: venv
	$(BIN)/pytest tests/unit anomstream stream producers consumers models $(PYTEST_ARGS)

integration: venv
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

# pytest exits 5 when it collects no tests, which fails this target like any other failure.
test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .anomstream .pytest_cache .ruff_cache .mypy_cache
