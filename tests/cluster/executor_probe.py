"""A tiny spark-submit application for tests/cluster: which Python do the executors run?

Builds its session through :func:`pipeline.spark.session.build_spark_session` (as the jobs
do), runs two tasks and prints one line ``PROBE {json}`` with the driver's and each
task's interpreter, where ``pipeline`` was imported from, whether torch is importable and
whether mwparserfromhell's C tokenizer is active.
"""

import json
import sys

from pipeline.spark.session import build_spark_session
from pipeline.stage_config import SparkConfig


def describe(_rows):
    import importlib.util
    import os

    import mwparserfromhell.parser
    import pyarrow
    import tokenizers

    import pipeline

    yield {
        "executable": sys.executable,
        "realpath": os.path.realpath(sys.executable),
        "prefix": sys.prefix,
        "cwd": os.getcwd(),
        "pipeline": pipeline.__file__,
        "torch": importlib.util.find_spec("torch") is not None,
        "mwparserfromhell_c": bool(mwparserfromhell.parser.use_c),
        "pyarrow": pyarrow.__version__,
        "tokenizers": tokenizers.__version__,
    }


def main() -> int:
    spark = build_spark_session(SparkConfig(ui_enabled=False, log_level="ERROR"))
    sc = spark.sparkContext
    tasks = sc.parallelize(range(2), 2).mapPartitions(describe).collect()
    report = {
        "driver": {"executable": sys.executable, "prefix": sys.prefix},
        "master": sc.master,
        "executor_python": sc.pythonExec,
        "tasks": tasks,
    }
    print("PROBE " + json.dumps(report), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
