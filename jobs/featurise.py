"""spark-submit entry point of the featurise stage (pages/ -> tokenizer + token shards).

Takes the arguments of ``pipeline featurise`` (``[CONFIG.yaml] --pages DIR --out DIR
[--tokenizer FILE] [--overwrite] [key=value ...]``). The master, driver memory and driver
addresses come from spark-submit's own flags. Exit code 0 on success, 1 when the stage
failed (nothing published), 2 on bad usage or config.

Runbook, local mode, from the repository root, with the driver on loopback only::

    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=$PWD/.venv/bin/python \\
    PYSPARK_DRIVER_PYTHON=$PWD/.venv/bin/python \\
    .venv/lib/python3.11/site-packages/pyspark/bin/spark-submit --master 'local[2]' \\
      --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \\
      jobs/featurise.py conf/local.yaml --pages work/pages --out work/shards \\
      spark.ui_enabled=false

The output is byte-identical whatever the master and parallelism (same pages + same
config). On a cluster, ship the environment with ``--archives env.tar.gz#environment``
and ``PYSPARK_PYTHON=./environment/bin/python``, and use ``hdfs://`` or ``s3a://`` paths
for ``--pages`` and ``--out``. The same stage without spark-submit:
``pipeline featurise [CONFIG.yaml] --pages DIR --out DIR``.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["featurise", *sys.argv[1:]]))
