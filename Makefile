# Two commands for users: `make run` and `make test`. Both set up .venv first if needed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DUMP ?= ../shared/data/wiki/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
PYTEST_ARGS ?=

.PHONY: setup run test test-unit test-spark test-dist lint format clean

setup:
	@bash scripts/setup.sh

run: setup
	$(VENV)/bin/pipeline run conf/local.yaml --dump $(DUMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-spark: setup
	$(PY) -m pytest tests/spark $(PYTEST_ARGS)

test-dist: setup
	$(PY) -m pytest tests/dist $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) work .pytest_cache .ruff_cache
