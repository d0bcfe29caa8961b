"""spark-submit entry point of the curate stage (pages/ -> curated/: dedup, language ID,
quality rules).

Takes the arguments of ``pipeline curate`` (``[CONFIG.yaml] --pages DIR --out DIR
[--overwrite] [key=value ...]``). The master, driver memory, driver addresses and the
executors' Python come from spark-submit's own flags. Exit code 0 on success, 1 when the
stage failed (nothing published), 2 on bad usage or config.

Runbook, local mode, from the repository root, with the driver on loopback only::

    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=$PWD/.venv/bin/python \\
    PYSPARK_DRIVER_PYTHON=$PWD/.venv/bin/python \\
    .venv/bin/spark-submit --master 'local[2]' \\
      --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \\
      jobs/curate.py conf/local.yaml --pages work/pages --out work/curated \\
      spark.ui_enabled=false

The output is byte-identical whatever the master and parallelism (same pages + same
config). On a cluster, ship the project's dependencies, py3langid with its model included,
with ``make package`` and ``--archives env.tar.gz#environment`` (see jobs/featurise.py for
the standalone, YARN and Kubernetes forms; replace ``featurise.py`` by ``curate.py`` and
``--out .../shards`` by ``--out .../curated``).

The same stage without spark-submit: ``pipeline curate [CONFIG.yaml] --pages DIR --out DIR``.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["curate", *sys.argv[1:]]))
