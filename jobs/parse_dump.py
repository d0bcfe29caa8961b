"""spark-submit entry point of the parse stage (MediaWiki XML dumps -> pages/).

Takes the arguments of ``pipeline parse`` (``[CONFIG.yaml] --input DUMP... --out DIR
[key=value ...]``). The master, driver memory, driver addresses and the executors' Python
come from spark-submit's own flags; the config's other Spark settings (``spark.ui_enabled``,
``spark.conf``) are applied over spark-submit's ``--conf``, so the web UI is turned off
with the ``spark.ui_enabled=false`` override (``--conf spark.ui.enabled=false`` alone is
overridden by the default ``spark.ui_enabled: true``). Pass ``spark.master=URL`` too if the
recorded config (``stats.json``, ``config.yaml``) should name the real master. Exit code 0
on success, 1 when the stage failed (nothing published), 2 on bad usage or config.

Runbook, local mode (what tests/e2e/test_spark_submit_parse.py runs), from the repository
root, with the driver on loopback only::

    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=$PWD/.venv/bin/python \\
    PYSPARK_DRIVER_PYTHON=$PWD/.venv/bin/python \\
    .venv/bin/spark-submit --master 'local[2]' \\
      --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \\
      --conf spark.ui.enabled=false \\
      jobs/parse_dump.py conf/local.yaml \\
      --input ../shared/data/wiki/elwikivoyage-pages-articles-multistream.xml-p2566p2583.bz2 \\
      --out work/pages parse.split_bytes=4000 spark.ui_enabled=false

On a cluster the executors need the project's native dependencies (pyarrow,
mwparserfromhell's C tokenizer, tokenizers): ``make package`` packs them with the project
into ``env.tar.gz`` (no torch), which ``--archives env.tar.gz#environment`` unpacks in every
executor's folder. Inputs and output are URIs every executor can reach: ``hdfs://``,
``s3a://`` (inputs only: the output's folder is renamed into place, which object stores
cannot do), or ``file://`` on a shared mount; see README.md, "Running on a cluster".

Standalone (client mode: the driver runs here, in .venv; tests/cluster runs this against a
loopback master and compares the output with local mode)::

    make package
    .venv/bin/spark-submit --master spark://MASTER:7077 \\
      --conf spark.driver.host=THIS_HOST_IP \\
      --archives env.tar.gz#environment \\
      --conf spark.pyspark.python=./environment/bin/python \\
      --conf spark.pyspark.driver.python=$PWD/.venv/bin/python \\
      jobs/parse_dump.py conf/cluster.yaml \\
      --input hdfs:///dumps/enwiki/20260101/ --out hdfs:///wiki/enwiki/pages \\
      spark.master=spark://MASTER:7077

YARN (``HADOOP_CONF_DIR`` set; cluster mode runs the driver in YARN from the archive too,
so the config file travels with ``--files`` and is named by its base name)::

    .venv/bin/spark-submit --master yarn --deploy-mode cluster \\
      --archives env.tar.gz#environment \\
      --conf spark.pyspark.python=./environment/bin/python \\
      --conf spark.pyspark.driver.python=./environment/bin/python \\
      --files conf/cluster.yaml \\
      jobs/parse_dump.py cluster.yaml \\
      --input hdfs:///dumps/enwiki/20260101/ --out hdfs:///wiki/enwiki/pages spark.master=yarn

    (--deploy-mode client: as for standalone, with --master yarn and no --files.)

Kubernetes (cluster mode; the image from docker/etl.Dockerfile holds Spark, the project
and its environment, so no archive is needed; ``local://`` names files in the image)::

    spark-submit --master k8s://https://API_SERVER:6443 --deploy-mode cluster \\
      --conf spark.kubernetes.container.image=REGISTRY/spark-gpu-pipeline-etl:0.1.0 \\
      --conf spark.kubernetes.authenticate.driver.serviceAccountName=spark \\
      --conf spark.executor.instances=8 \\
      local:///opt/pipeline/jobs/parse_dump.py /opt/pipeline/conf/cluster.yaml \\
      --input s3a://BUCKET/dumps/enwiki/20260101/ --out hdfs://NAMENODE:8020/wiki/enwiki/pages

The same stage without spark-submit: ``pipeline parse [CONFIG.yaml] --input DUMP --out DIR``.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["parse", *sys.argv[1:]]))
