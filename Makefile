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

.PHONY: install browser run distributed test test-fast lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip 2>&1 | $(QUIET_WARNINGS)
	$(BIN)/python -m pip install $(PIP_QUIET) -c constraints.txt -e '.[test]' 2>&1 | $(QUIET_WARNINGS)
	$(BIN)/python -c "import prefect, apprise, sqlmodel, pendulum, jinja2, fastapi, aiosmtpd, time_machine"
	touch $(STAMP)

install: $(STAMP)

## Debian's chromium and CJK fonts for the browser tests, which drive /usr/bin/chromium (never `playwright install`).
## Without apt-get, or the rights to use it, this says so and succeeds: the browser tests then skip with the reason.
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
browser:
	@if [ -x $(CHROMIUM) ] && [ -e $(CJK_FONT) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null; then if [ -t 0 ]; then sudo="sudo"; else sudo="sudo -n"; fi; \
	else echo "browser: not root and no sudo; install chromium and fonts-noto-cjk to run the browser tests (they skip)"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "browser: no apt-get; install chromium at $(CHROMIUM) and CJK fonts to run the browser tests (they skip)"; exit 0; fi; \
	echo "browser: installing chromium and fonts-noto-cjk with apt-get"; \
	if $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null; then \
		$(CHROMIUM) --version; \
	else echo "browser: apt-get could not install chromium and fonts-noto-cjk; the browser tests skip"; fi

## The service on the embedded default: SQLite under var/, web app on 127.0.0.1:8000, scheduled flows, demo receivers.
run: install
	$(BIN)/duties init
	$(BIN)/duties serve --receivers

## Prefect server on PostgreSQL, a process work pool with two workers, the web app under two uvicorn workers, and
## the duties store on PostgreSQL, all on this machine against the local PostgreSQL (README: "Running it beyond one
## machine"). Foreground; Ctrl-C stops it.
distributed: install
	$(BIN)/python -m flows.cluster

## The whole suite (with the browser tests when chromium is installed or installable), then ruff and mypy.
test: install browser
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
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.commands
	$(BIN)/python -m bench.dashboard
	$(BIN)/python -m bench.assess
	$(BIN)/python -m bench.export
	$(BIN)/python -m bench.confirm
	$(BIN)/python -m bench.prefect_flows
	$(BIN)/python -m bench.cases
	$(BIN)/python -m bench.supervise
	$(BIN)/python -m bench.escalate

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
