# LienThong: the entry points. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)

.PHONY: run up test lint bench demo migrate services ocr browser clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP) ocr ## the whole system in one process (embedded mode) on http://127.0.0.1:8000
	$(BIN)/lienthong dev

up: $(STAMP) services ocr ## every service its own process, on PostgreSQL and RabbitMQ
	$(BIN)/lienthong up

demo: $(STAMP) ## the demo exchange against a running instance
	$(BIN)/lienthong demo

migrate: $(STAMP)
	$(BIN)/lienthong migrate

services: ## make sure PostgreSQL and RabbitMQ answer (starts them if installed and stopped)
	@bash .ci/services.sh

ocr: ## make sure Tesseract with Vietnamese is installed (apt-get install tesseract-ocr tesseract-ocr-vie as root)
	@bash .ci/ocr.sh

browser: ## make sure Chromium is installed for the console's browser tests (apt-get install chromium as root)
	@bash .ci/browser.sh

# pytest-xdist workers: one more than the cores (the tests wait on PostgreSQL, RabbitMQ and their
# own subprocesses a good part of the time: on 2 cores, 3 workers ran the suite in 155 s against 182 s
# with 2); 0: everything in one process. Each worker has its own databases, broker prefix and
# templates; the tests that start processes share one worker.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

# the suite's processes (pytest's workers, the services the tests start) keep the bytecode they
# compile, wherever the environment says not to (PYTHONDONTWRITEBYTECODE): compiled once, not again
# in each of them (about 0.8 s of CPU a process)
test: export PYTHONDONTWRITEBYTECODE =
test: $(STAMP) services ocr browser ## the whole suite, against the real PostgreSQL and RabbitMQ
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services gateway

bench: $(STAMP) services
	$(BIN)/python -m bench

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
