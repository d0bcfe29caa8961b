# Two commands for users: `make run` and `make test`. Both set up .venv first if needed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DUMP ?= ../shared/data/wiki/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2
PYTEST_ARGS ?=

.PHONY: setup run test test-unit test-spark test-dist test-cluster test-airflow airflow package lint format clean

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

test-cluster: setup
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

test-airflow: setup
	$(PY) -m pytest tests/airflow $(PYTEST_ARGS)

# .venv-airflow: Apache Airflow + the Spark provider, pinned in requirements/airflow.txt, for
# dags/spark_pipeline.py; kept out of .venv. See README "Scheduling".
airflow: setup
	@bash scripts/setup_airflow.sh

# env.tar.gz: the project + ETL dependencies (no torch) for Spark executors, packed with
# venv-pack; prints the spark-submit --archives command. See README "Running on a cluster".
package: setup
	@bash scripts/package.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .venv-airflow work .pytest_cache .ruff_cache build/etl env.tar.gz
