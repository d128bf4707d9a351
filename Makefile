# duties: `make run` and `make test` work from a fresh clone; both set up .venv from constraints.txt first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_QUIET := --quiet --disable-pip-version-check
# pipefail: a failed pip install fails the target even though its warnings are filtered.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
QUIET_WARNINGS := { grep -v "is ignored: it is neither" || true; }

.PHONY: install run test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip 2>&1 | $(QUIET_WARNINGS)
	$(BIN)/python -m pip install $(PIP_QUIET) -c constraints.txt -e '.[test]' 2>&1 | $(QUIET_WARNINGS)
	$(BIN)/python -c "import prefect, apprise, sqlmodel, pendulum, jinja2, fastapi, aiosmtpd, time_machine"
	touch $(STAMP)

install: $(STAMP)

## The service on the embedded default: SQLite under var/, web app on 127.0.0.1:8000, scheduled flows, demo receivers.
run: install
	$(BIN)/duties init
	$(BIN)/duties serve --receivers

## The whole suite, then ruff and mypy.
test: install
	$(BIN)/python -m pytest
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## The suite without the Prefect flow tests.
test-fast: install
	$(BIN)/python -m pytest -m "not flows"

## Benchmarks: each prints its figures beside a baseline measured in the same run.
bench: install
	$(BIN)/python -m bench.dispatch

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
