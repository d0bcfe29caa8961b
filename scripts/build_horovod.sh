#!/usr/bin/env bash
# Build (once) and install Horovod 0.28.1 with PyTorch + Gloo into the active Python.
#
# Why this script exists: Horovod 0.28.1, the newest release, asks CMake for C++14, and
# torch >= 2.1 headers need C++17. Upstream switched to C++17 after 0.28.1 and never
# published a release, so we take the 0.28.1 sdist, patch CMAKE_CXX_STANDARD to 17 in the
# top-level and torch CMakeLists.txt, and build it against the torch already installed.
#
# Second patch (Python only): Horovod's driver, task and rendezvous services bind every
# interface (('', port) in horovod/runner/util/network.py:find_port). We make that address
# come from HOROVOD_BIND_ADDRESS (default '' = upstream behaviour), and pipeline.train.dist
# sets it to 127.0.0.1 for single-host runs, so nothing listens beyond loopback.
#
# The built wheel is cached outside the checkout, keyed by Horovod, torch and Python
# versions and CPU/CUDA, so a fresh clone on the same machine (what CI does) installs it
# in seconds instead of rebuilding for ~5 minutes.
#
# Usage: PYTHON=.venv/bin/python scripts/build_horovod.sh
# Env:   HOROVOD_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/spark-gpu-pipeline/horovod)
set -euo pipefail

HOROVOD_VERSION=0.28.1
PATCH_LEVEL=p2  # bump when the patches below change: it is part of the cache key
PYTHON=${PYTHON:-python}
CACHE_DIR=${HOROVOD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spark-gpu-pipeline/horovod}

torch_tag=$("$PYTHON" - <<'PY'
import sys, torch
cuda = "cu" + torch.version.cuda.replace(".", "") if torch.version.cuda else "cpu"
print(f"torch{torch.__version__.split('+')[0]}-{cuda}-py{sys.version_info.major}{sys.version_info.minor}")
PY
)
key="horovod${HOROVOD_VERSION}-${PATCH_LEVEL}-${torch_tag}"
dest="$CACHE_DIR/$key"

installed=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('horovod'))" 2>/dev/null || true)
if [ "$installed" = "$HOROVOD_VERSION" ] && "$PYTHON" -c "import horovod.torch" 2>/dev/null \
   && "$PYTHON" -c "import inspect, horovod.runner.util.network as n, sys
sys.exit('HOROVOD_BIND_ADDRESS' not in inspect.getsource(n.find_port))" 2>/dev/null; then
  echo "horovod $HOROVOD_VERSION already installed ($key)"
  exit 0
fi

wheel=$(ls "$dest"/horovod-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "building horovod $HOROVOD_VERSION for $torch_tag (about 5 minutes on 2 cores; cached in $dest)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "$PYTHON" -m pip download --quiet --no-binary :all: --no-deps -d "$work" "horovod==$HOROVOD_VERSION"
  tar -xzf "$work"/horovod-"$HOROVOD_VERSION".tar.gz -C "$work"
  src="$work/horovod-$HOROVOD_VERSION"
  for f in "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"; do
    grep -q 'set(CMAKE_CXX_STANDARD 14)' "$f" || {
      echo "error: $f has no 'set(CMAKE_CXX_STANDARD 14)'; the Horovod sdist changed, update $0" >&2
      exit 1
    }
    sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' "$f"
  done
  net="$src/horovod/runner/util/network.py"
  grep -q "addr = ('', port)" "$net" || {
    echo "error: $net has no \"addr = ('', port)\"; the Horovod sdist changed, update $0" >&2
    exit 1
  }
  sed -i "s/^import psutil$/import os\nimport psutil/; s/addr = ('', port)/addr = (os.environ.get('HOROVOD_BIND_ADDRESS', ''), port)/" "$net"
  export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
         HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITHOUT_MPI=1
  if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)"; then
    export HOROVOD_GPU_OPERATIONS=NCCL
  fi
  export MAKEFLAGS="-j$(nproc)"
  "$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$work/dist" "$src" \
    > "$work/build.log" 2>&1 || {
      tail -n 40 "$work/build.log" >&2
      echo "error: building horovod failed; full log above (last 40 lines)" >&2
      exit 1
    }
  mkdir -p "$dest"
  cp "$work"/dist/horovod-*.whl "$dest/"
  wheel=$(ls "$dest"/horovod-*.whl | head -n 1)
fi

# --no-deps: Horovod's extras pin pyarrow<11; its runtime needs are in pyproject.toml.
"$PYTHON" -m pip install --quiet --no-deps --force-reinstall "$wheel"
echo "installed $(basename "$wheel")"
