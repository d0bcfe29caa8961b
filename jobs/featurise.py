"""spark-submit entry point of the featurise stage (pages/ -> tokenizer + token shards).

Takes the arguments of ``pipeline featurise`` (``[CONFIG.yaml] --pages DIR --out DIR
[--tokenizer FILE] [--overwrite] [key=value ...]``). The master, driver memory, driver
addresses and the executors' Python come from spark-submit's own flags. Exit code 0 on
success, 1 when the stage failed (nothing published), 2 on bad usage or config.

Runbook, local mode, from the repository root, with the driver on loopback only::

    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=$PWD/.venv/bin/python \\
    PYSPARK_DRIVER_PYTHON=$PWD/.venv/bin/python \\
    .venv/bin/spark-submit --master 'local[2]' \\
      --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \\
      jobs/featurise.py conf/local.yaml --pages work/pages --out work/shards \\
      spark.ui_enabled=false

The output is byte-identical whatever the master and parallelism (same pages + same
config): tests/cluster submits this job to a loopback standalone cluster with the packed
environment and compares every file with local mode. On a cluster, ship the project's
native dependencies (pyarrow, tokenizers, mwparserfromhell) with ``make package`` and
``--archives env.tar.gz#environment``; ``--pages`` and ``--out`` are URIs every executor
can reach (``hdfs://`` or ``file://`` on a shared mount; the output's folder is renamed into
place, which object stores cannot do, so no ``s3a://`` output). The shards' manifest
records ``--pages`` as given, so give the same URI when comparing outputs.

Standalone (client mode: the driver runs here, in .venv)::

    make package
    .venv/bin/spark-submit --master spark://MASTER:7077 \\
      --conf spark.driver.host=THIS_HOST_IP \\
      --archives env.tar.gz#environment \\
      --conf spark.pyspark.python=./environment/bin/python \\
      --conf spark.pyspark.driver.python=$PWD/.venv/bin/python \\
      jobs/featurise.py conf/cluster.yaml \\
      --pages hdfs:///wiki/enwiki/pages --out hdfs:///wiki/enwiki/shards

YARN (cluster mode: the driver runs in YARN from the archive; the config travels with
``--files``)::

    .venv/bin/spark-submit --master yarn --deploy-mode cluster \\
      --archives env.tar.gz#environment \\
      --conf spark.pyspark.python=./environment/bin/python \\
      --conf spark.pyspark.driver.python=./environment/bin/python \\
      --files conf/cluster.yaml \\
      jobs/featurise.py cluster.yaml \\
      --pages hdfs:///wiki/enwiki/pages --out hdfs:///wiki/enwiki/shards

Kubernetes (the image from docker/etl.Dockerfile; no archive)::

    spark-submit --master k8s://https://API_SERVER:6443 --deploy-mode cluster \\
      --conf spark.kubernetes.container.image=REGISTRY/spark-gpu-pipeline-etl:0.1.0 \\
      --conf spark.kubernetes.authenticate.driver.serviceAccountName=spark \\
      --conf spark.executor.instances=8 \\
      local:///opt/pipeline/jobs/featurise.py /opt/pipeline/conf/cluster.yaml \\
      --pages hdfs://NAMENODE:8020/wiki/enwiki/pages \\
      --out hdfs://NAMENODE:8020/wiki/enwiki/shards

The same stage without spark-submit: ``pipeline featurise [CONFIG.yaml] --pages DIR --out
DIR``.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["featurise", *sys.argv[1:]]))
