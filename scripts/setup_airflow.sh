#!/usr/bin/env bash
# Create .venv-airflow: Apache Airflow 3 + the Apache Spark provider, exact versions from
# requirements/airflow.txt, for the scheduling DAG (dags/spark_pipeline.py).
#
# Airflow lives in its own environment so that it cannot touch the project's .venv (the
# provider's pyspark-client would overwrite pyspark's files there; see the header of
# requirements/airflow.txt). The DAG runs the stages with the project's .venv (its
# spark-submit, its pipeline command), so make setup must have run too.
#
# Idempotent and cached, like the Horovod wheel: a stamp in .venv-airflow records the hash
# of the pins and this script; when it matches and `airflow version` runs, set-up returns in
# about a second. Called by `make airflow` and by tests/airflow (first run about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${AIRFLOW_VENV:-.venv-airflow}
PY=${PYTHON_FOR_VENV:-python3}

need() { echo "setup_airflow: $1" >&2; exit 1; }
command -v "$PY" >/dev/null || need "python3 (>= 3.11) is missing; install Python 3.11 or newer."
"$PY" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))' \
  || need "$("$PY" --version 2>&1) is not supported by Airflow 3.3; use Python 3.11-3.13 (PYTHON_FOR_VENV=python3.11)."

stamp_inputs=(requirements/airflow.txt scripts/setup_airflow.sh)
want=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)
stamp="$VENV/.setup-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$VENV/bin/airflow" version >/dev/null 2>&1; then
  echo "setup_airflow: $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# --no-deps: the file is the whole resolved set, so pip installs exactly it and nothing else.
"$VENV/bin/python" -m pip install --quiet --no-deps -r requirements/airflow.txt
"$VENV/bin/python" -m pip check
"$VENV/bin/airflow" version >/dev/null

echo "$want" > "$stamp"
echo "setup_airflow: done ($VENV, Airflow $("$VENV/bin/airflow" version 2>/dev/null))"
