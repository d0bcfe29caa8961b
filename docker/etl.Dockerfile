# syntax=docker/dockerfile:1
# ETL image: Java 17, Spark 4.0 (the pyspark distribution: bin/, jars/, python/lib), and the
# project with its ETL dependencies (no torch), for parse/featurise drivers and executors
# on Kubernetes, the standalone daemons of docker/compose.yaml, or spark-submit from a box.
#
# Thin on purpose: the environment is made by scripts/package.sh, the script that
# `make package` runs and tests/cluster exercises; this file only provides Python, Java
# and the Kubernetes entrypoint around it. Not built on the development machines (no
# Docker there); see docker/README.md.
#
#   docker build -f docker/etl.Dockerfile -t spark-gpu-pipeline-etl:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
# Only its entrypoint.sh/decom.sh are taken (what Spark on Kubernetes runs in every pod).
ARG SPARK_IMAGE=apache/spark:4.0.1-scala2.13-java17-ubuntu

FROM ${SPARK_IMAGE} AS spark

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY scripts/package.sh scripts/
COPY pipeline/ pipeline/
COPY models/ models/
COPY jobs/ jobs/
# The tool venv: pip + venv-pack + pyspark (Spark itself) at the pinned versions.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/tools \
 && /opt/tools/bin/pip install -c requirements/constraints.txt "pip>=24" setuptools wheel \
      venv-pack pyspark
# /opt/etl: the project + ETL dependencies; /opt/env.tar.gz: the same packed for --archives.
RUN --mount=type=cache,target=/root/.cache/pip \
    VENV=/opt/tools ETL_VENV=/opt/etl ARCHIVE=/opt/env.tar.gz bash scripts/package.sh \
 && cp -a "$(/opt/tools/bin/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" /opt/spark

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini procps bash \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 185 --gid 0 --home-dir /opt/work-dir --create-home spark \
 && chmod g+w /opt/work-dir
COPY --from=build /opt/spark /opt/spark
COPY --from=build /opt/etl /opt/etl
COPY --from=build /opt/env.tar.gz /opt/env.tar.gz
COPY --from=spark /opt/entrypoint.sh /opt/decom.sh /opt/
COPY conf/ /opt/pipeline/conf/
COPY jobs/ /opt/pipeline/jobs/
# pyspark is not in /opt/etl (package.sh leaves it to the cluster's Spark): the venv finds
# Spark's own pyspark.zip and py4j through a .pth file, as executors do through PYTHONPATH.
RUN ls /opt/spark/python/lib/pyspark.zip /opt/spark/python/lib/py4j-*-src.zip \
      > /opt/etl/lib/python3.11/site-packages/spark-distribution.pth \
 && /opt/etl/bin/python -c "import pyspark, pipeline.spark.parse_stage"
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 \
    SPARK_HOME=/opt/spark \
    PATH=/opt/spark/bin:/opt/etl/bin:$PATH \
    PYSPARK_PYTHON=/opt/etl/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/etl/bin/python
WORKDIR /opt/work-dir
USER 185
ENTRYPOINT ["/opt/entrypoint.sh"]
