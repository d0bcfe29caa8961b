#!/usr/bin/env bash
# Pack the Python environment that Spark executors need for parse, curate and featurise into one
# archive (venv-pack), and print the spark-submit command that ships it.
#
# Why: the executors run our per-partition functions, which need native packages (pyarrow,
# mwparserfromhell's C tokenizer, tokenizers, py3langid with its model data) that --py-files
# cannot carry. Spark unpacks
# `--archives env.tar.gz#environment` in every executor's working folder, and
# PYSPARK_PYTHON=./environment/bin/python makes the executors' Python workers use it.
#
# What goes in: the project itself (a normal, non-editable install: venv-pack refuses
# editable ones) with the dependencies of pyproject.toml at the exact versions of
# requirements/constraints.txt, minus what the ETL side never imports:
#   - pyspark: the cluster's Spark puts its own pyspark.zip + py4j on the executors'
#     PYTHONPATH (the cluster must run Spark 4.0.x, like the driver);
#   - torch, safetensors, tensorboardX (training), matplotlib (reports), and Horovod's runtime needs
#     cloudpickle, packaging, cffi. Training hosts use `make setup` or
#     docker/train.Dockerfile instead. psutil stays: the parse tasks' page guard
#     (pipeline/wiki/guard.py) reads its cleaning process's CPU time with it.
# No pip or setuptools either: packages are installed with the build venv's pip.
#
# The packed venv links bin/python to the interpreter it was made from (venv-pack does not
# copy Python), so the executors need the same Python minor version at the same path, or
# at PYTHON_PREFIX (passed to venv-pack --python-prefix), e.g. PYTHON_PREFIX=/usr.
#
# Idempotent and cached: the ETL venv is rebuilt only when pyproject.toml, the constraints,
# this script or the Python version change; the project is reinstalled and the archive
# repacked only when the project's sources change too (a stamp in the build folder holds
# the hash). Called by `make package` and by tests/cluster.
#
# Usage: scripts/package.sh
# Env:   ARCHIVE (default env.tar.gz), ETL_VENV (default build/etl/venv),
#        VENV (the set-up venv providing pip and venv-pack, default .venv),
#        PYTHON_PREFIX (where Python lives on the executors; default: this machine's)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
ETL_VENV=${ETL_VENV:-build/etl/venv}
ARCHIVE=${ARCHIVE:-env.tar.gz}
PYTHON_PREFIX=${PYTHON_PREFIX:-}
VPY="$VENV/bin/python"
# Project dependencies the ETL executors never import (see above).
EXCLUDED="pyspark torch safetensors matplotlib cloudpickle packaging cffi tensorboardx"

need() { echo "package: $1" >&2; exit 1; }
[ -x "$VPY" ] || need "$VENV is missing; run make setup first."
[ -x "$VENV/bin/venv-pack" ] || need "venv-pack is missing from $VENV; run make setup."

mkdir -p "$(dirname "$ETL_VENV")" "$(dirname "$ARCHIVE")"
# One packer at a time (two test sessions, or make package during a test run).
exec 9>"$(dirname "$ETL_VENV")/.package.lock"
flock 9

base_python=$("$VPY" -c 'import sys; print(sys._base_executable)')
py_version=$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
deps_hash=$( { cat pyproject.toml requirements/constraints.txt scripts/package.sh;
               echo "$base_python $py_version"; } | sha256sum | cut -d' ' -f1)
src_hash=$( { echo "$deps_hash"; find pipeline models jobs -name '*.py' -type f | LC_ALL=C sort \
              | xargs sha256sum; } | sha256sum | cut -d' ' -f1)
# The archive's stamp lives in the build folder (ignored by git), one per archive path.
stamp="$(dirname "$ETL_VENV")/archive-$(realpath -m "$ARCHIVE" | sha256sum | cut -c1-16).stamp"

print_command() {
  local archive venv
  archive=$(realpath "$ARCHIVE")
  venv=$(realpath "$VENV")
  cat <<EOF
package: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1), Python $py_version, project + ETL dependencies, no torch)
Submit a stage to a cluster with it (client mode: the driver runs $venv/bin/python):

  $venv/bin/spark-submit --master spark://HOST:7077 \\
    --conf spark.driver.host=THIS_HOST_IP \\
    --archives $archive#environment \\
    --conf spark.pyspark.python=./environment/bin/python \\
    --conf spark.pyspark.driver.python=$venv/bin/python \\
    jobs/parse_dump.py conf/cluster.yaml --input hdfs:///dumps/enwiki/ --out hdfs:///wiki/pages

  (--master yarn --deploy-mode cluster|client, or k8s://https://HOST:PORT; see README.md,
  "Running on a cluster")
EOF
}

if [ -f "$ARCHIVE" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$src_hash" ]; then
  echo "package: $ARCHIVE is up to date"
  print_command
  exit 0
fi

# --- the ETL venv: dependencies (rebuilt when their inputs change) ----------------------
pip_etl() {  # the build venv's pip, installing into the ETL venv (which has none)
  "$VPY" -m pip --python "$ETL_VENV/bin/python" "$@" 2> >(grep -v '^WARNING: Location' >&2)
}
if [ ! -f "$ETL_VENV/.deps-stamp" ] || [ "$(cat "$ETL_VENV/.deps-stamp")" != "$deps_hash" ]; then
  echo "package: building $ETL_VENV from requirements/constraints.txt (a minute or two)"
  rm -rf "$ETL_VENV"
  "$base_python" -m venv --without-pip "$ETL_VENV"
  mapfile -t reqs < <("$VPY" - "$EXCLUDED" <<'PY'
import re, sys, tomllib
excluded = set(sys.argv[1].split())
with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
for dep in deps:
    name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0)
    if name.lower() not in excluded:
        print(dep)
PY
  )
  pip_etl install --quiet --disable-pip-version-check -c requirements/constraints.txt "${reqs[@]}"
  echo "$deps_hash" > "$ETL_VENV/.deps-stamp"
fi

# --- the project: a wheel built from a clean copy of the sources ------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar --exclude=__pycache__ -cf - pyproject.toml README.md pipeline models jobs | tar -xf - -C "$work"
"$VPY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -w "$work/dist" "$work" >/dev/null
pip_etl install --quiet --disable-pip-version-check --no-deps --force-reinstall \
  "$work"/dist/spark_gpu_pipeline-*.whl

# --- checks: what the executors import, with the cluster's pyspark on PYTHONPATH --------
spark_lib=$("$VPY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "python", "lib"))')
PYTHONPATH="$spark_lib/pyspark.zip:$(ls "$spark_lib"/py4j-*-src.zip)" \
  "$ETL_VENV/bin/python" -P - <<'PY'
import importlib.util, sys
import mwparserfromhell.parser, pyarrow, tokenizers  # the native packages
import pipeline.cli.handlers, pipeline.spark.featurise_stage, pipeline.spark.parse_stage
import pipeline.spark.curate_stage
from pipeline.curate.lang import detect
if detect("Dies ist ein deutscher Satz über die Stadt.")[0] != "de":  # model data shipped
    sys.exit("package: py3langid's model is missing from the ETL venv")
if not mwparserfromhell.parser.use_c:
    sys.exit("package: mwparserfromhell's C tokenizer is not active in the ETL venv")
for name in ("torch", "horovod", "matplotlib"):
    if importlib.util.find_spec(name) is not None:
        sys.exit(f"package: {name} ended up in the ETL venv; it must stay out of the archive")
if "site-packages" not in pipeline.__file__:
    sys.exit(f"package: pipeline is imported from {pipeline.__file__}, not the venv")
PY

# --- pack -------------------------------------------------------------------------------
prefix_args=()
[ -n "$PYTHON_PREFIX" ] && prefix_args=(--python-prefix "$PYTHON_PREFIX")
rm -f "$stamp"
# Test suites and C++ headers of the dependencies are never imported on executors.
"$VENV/bin/venv-pack" --quiet --force -p "$ETL_VENV" -o "$work/env.tar.gz" "${prefix_args[@]}" \
  --exclude 'lib/python*/site-packages/*/tests/*' \
  --exclude 'lib/python*/site-packages/pyarrow/include/*' \
  --exclude 'lib/python*/site-packages/pyarrow/src/*'
chmod 644 "$work/env.tar.gz"
mv -f "$work/env.tar.gz" "$ARCHIVE"
echo "$src_hash" > "$stamp"
print_command
