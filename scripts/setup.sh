#!/usr/bin/env bash
# Create .venv and install the project with its pinned dependencies, then Horovod.
#
# Idempotent: a stamp in .venv records the hash of everything that decides what gets
# installed; when it matches and the key imports work, set-up returns in about a second.
# Called by `make setup` (and so by `make run` and `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON_FOR_VENV:-python3}

# --- prerequisites: one sentence each, naming what to install --------------------------
need() { echo "setup: $1" >&2; exit 1; }
command -v "$PY" >/dev/null || need "python3 (>= 3.11) is missing; install Python 3.11 or newer."
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || need "$("$PY" --version 2>&1) is too old; install Python 3.11 or newer."
command -v java >/dev/null \
  || need "Java is missing; install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)."
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\(\.[0-9]*\)*.*".*/\1/p' | head -n 1)
if [ -z "$java_major" ] || [ "$java_major" = 1 ] || [ "$java_major" -lt 17 ]; then
  need "Java ${java_major:-of unknown version} is too old for Spark 4; install Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless)."
fi
command -v c++ >/dev/null || command -v g++ >/dev/null \
  || need "a C++ compiler is missing (Horovod is built from source); install g++ (Debian: apt-get install g++)."
command -v cmake >/dev/null \
  || need "cmake is missing (Horovod is built from source); install cmake (Debian: apt-get install cmake)."

# --- the Spark driver's class-data sharing archive (pipeline/spark/cds.py) ------------
# Built once per JDK and Spark version into ~/.cache/spark-gpu-pipeline/jvm (~160 MB, about
# a minute); every local Spark start then takes ~2-4 s less. Optional: without it Spark
# starts as usual.
cds() {
  "$VENV/bin/python" -m pipeline.spark.cds \
    || echo "setup: continuing without it (Spark starts a few seconds slower)" >&2
}

# --- idempotence ---------------------------------------------------------------------
stamp_inputs=(pyproject.toml requirements/constraints.txt scripts/setup.sh scripts/build_horovod.sh)
want=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)
stamp="$VENV/.setup-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$VENV/bin/python" -c 'import pipeline, pyspark, torch, horovod.torch' 2>/dev/null; then
  cds
  echo "setup: $VENV is up to date"
  exit 0
fi

# --- virtual environment and packages ------------------------------------------------
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install --quiet --upgrade "pip>=24" "setuptools>=70" wheel
# torch first and exactly pinned: on CPU machines this takes the local CPU wheel; any range
# would pull several GB of CUDA packages.
"$VPY" -m pip install --quiet -c requirements/constraints.txt "torch==2.13.0"
"$VPY" -m pip install --quiet -c requirements/constraints.txt -e ".[dev]"

PYTHON="$VPY" scripts/build_horovod.sh

# --- checks --------------------------------------------------------------------------
"$VPY" - <<'PY'
import sys
import mwparserfromhell.parser as p
if not p.use_c:
    sys.exit("setup: mwparserfromhell's C tokenizer is not active (pure-Python fallback is "
             "~10x slower); reinstall it with a C compiler: pip install --force-reinstall "
             "--no-binary mwparserfromhell mwparserfromhell")
PY
"$VENV/bin/horovodrun" --check-build | tee "$VENV/horovod-check-build.txt"
grep -q '\[X\] PyTorch' "$VENV/horovod-check-build.txt" \
  || need "Horovod was built without PyTorch; delete ~/.cache/spark-gpu-pipeline/horovod and re-run make setup."
grep -q '\[X\] Gloo' "$VENV/horovod-check-build.txt" \
  || need "Horovod was built without Gloo; delete ~/.cache/spark-gpu-pipeline/horovod and re-run make setup."

echo "$want" > "$stamp"
cds
echo "setup: done ($VENV)"
