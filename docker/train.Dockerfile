# syntax=docker/dockerfile:1
# GPU training image: CUDA, Python 3.11, torch==2.13.0 (CUDA build), Horovod 0.28.1 with
# NCCL and Gloo, and the project, for `pipeline train` with horovodrun on GPU hosts (or
# the trainer of docker/compose.yaml).
#
# Thin on purpose: everything is installed by scripts/setup.sh (`make setup`), which builds
# Horovod with scripts/build_horovod.sh; on a CUDA torch that script adds NCCL
# (HOROVOD_GPU_OPERATIONS=NCCL). Not built on the development machines (no Docker there);
# see docker/README.md.
#
#   docker build -f docker/train.Dockerfile -t spark-gpu-pipeline-train:0.1.0 .
#   docker build -f docker/train.Dockerfile \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t ... .
# The devel image: nvcc and NCCL headers/libraries for building Horovod with NCCL.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu22.04
FROM ${CUDA_IMAGE}
# Where pip finds the CUDA build of torch==2.13.0: empty = PyPI (its Linux wheel is the
# CUDA build), or a PyTorch index for another CUDA version.
ARG TORCH_INDEX_URL=
ENV DEBIAN_FRONTEND=noninteractive
# setup.sh's prerequisites: Python 3.11 (deadsnakes), Java 17 (its check, and pyspark for
# --launcher spark), a C++ compiler and cmake (Horovod), ssh (horovodrun across hosts).
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
      openjdk-17-jre-headless g++ cmake make openssh-client \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/pipeline
COPY pyproject.toml README.md Makefile ./
COPY requirements/ requirements/
COPY scripts/ scripts/
COPY pipeline/ pipeline/
COPY models/ models/
COPY jobs/ jobs/
COPY conf/ conf/
RUN --mount=type=cache,target=/root/.cache \
    if [ -n "$TORCH_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL"; fi \
 && PYTHON_FOR_VENV=python3.11 bash scripts/setup.sh \
 && .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.version.cuda else 'torch is not a CUDA build')" \
 && grep -q '\[X\] NCCL' .venv/horovod-check-build.txt
ENV PATH=/opt/pipeline/.venv/bin:$PATH \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
CMD ["pipeline", "train", "--help"]
