"""Failed Spark jobs as PySpark raises them, without Spark: the exception types (matched by
module, as the real ones are) and the texts Spark wraps around a Python worker's traceback.
"""

from __future__ import annotations


class Py4JJavaError(Exception):
    """Stands in for py4j.protocol.Py4JJavaError (matched by module, as the real one)."""


Py4JJavaError.__module__ = "py4j.protocol"


class PythonException(Exception):
    """Stands in for pyspark.errors.exceptions.captured.PythonException."""


PythonException.__module__ = "pyspark.errors.exceptions.captured"

# Frames as an executor prints them; the paths are made up (an executor's own layout).
FRAMES = """\
  File "/opt/spark/python/lib/pyspark.zip/pyspark/worker.py", line 2044, in main
    process()
  File "/opt/app/pipeline/wiki/pages.py", line 209, in run_task
    writer.write_table(pa.Table.from_pylist(batch, PAGES_SCHEMA))
  File "pyarrow/error.pxi", line 92, in pyarrow.lib.check_status
"""


def rdd_error(last_line: str) -> Py4JJavaError:
    """The text of a failed ``rdd.collect()`` as PySpark 4 raises it."""
    return Py4JJavaError(
        "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe"
        ".\n: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage "
        "0.0 failed 1 times, most recent failure: Lost task 0.0 in stage 0.0 (TID 0) (localhost "
        "executor driver): org.apache.spark.api.python.PythonException: Traceback (most recent "
        f"call last):\n{FRAMES}{last_line}\n\n\tat org.apache.spark.api.python.BasePythonRunner"
        "$ReaderIterator.handlePythonException(PythonRunner.scala:600)\n\tat scala.collection."
        "Iterator$$anon$10.hasNext(Iterator.scala:594)\n"
    )


def dataframe_error(last_line: str) -> PythonException:
    """The text of a failed DataFrame job (mapInArrow) as PySpark 4 raises it."""
    return PythonException(
        "\n  An exception was thrown from the Python worker. Please see the stack trace below.\n"
        f"Traceback (most recent call last):\n{FRAMES}{last_line}\n"
    )
