"""SparkSession factory: master from config, driver bound to loopback, Arrow on.

Nothing in this module cleans or tokenises; stages get their session here and hand
module-level per-partition functions to Spark.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from pipeline.fs import atomic_write
from pipeline.stage_config import SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def under_spark_submit() -> bool:
    """True when this Python process was started by ``spark-submit`` (the JVM exists).

    PySpark's launcher passes the JVM gateway to the Python driver through
    ``PYSPARK_GATEWAY_PORT``; a plain ``python``/``pipeline`` process has none.
    """
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session_settings(cfg: SparkConfig, *, submitted: bool = False) -> dict[str, str]:
    """Return the Spark properties :func:`build_spark_session` sets, as strings.

    Under spark-submit (``submitted``) the master, driver memory, driver address and the
    executors' Python come from spark-submit's own flags and are left out here.
    """
    settings: dict[str, str] = {
        "spark.app.name": cfg.app_name,
        "spark.ui.enabled": str(cfg.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        # Arrow for pandas/Arrow exchange between the JVM and Python workers.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # The pages contract stores UTC timestamps.
        "spark.sql.session.timeZone": "UTC",
    }
    if cfg.shuffle_partitions is not None:
        settings["spark.sql.shuffle.partitions"] = str(cfg.shuffle_partitions)
    if not submitted:
        # Executors run the same interpreter as the driver (the project's venv). Under
        # spark-submit the executors' Python is spark-submit's (PYSPARK_PYTHON or
        # --conf spark.pyspark.python, e.g. ./environment/bin/python from --archives).
        settings["spark.pyspark.python"] = os.environ.get("PYSPARK_PYTHON", sys.executable)
        settings["spark.master"] = cfg.master
        settings["spark.driver.memory"] = cfg.driver_memory
    settings.update(cfg.conf)
    if not submitted:
        # Applied after cfg.conf on purpose: the listening address is bind_address's job.
        settings["spark.driver.host"] = cfg.bind_address
        settings["spark.driver.bindAddress"] = cfg.bind_address
    return settings


# Log4j 2 settings of a JVM started here: Spark's defaults at WARN without the start-up
# banner, and silent about a failed task (the Python traceback and Java stack trace of
# every attempt): the pipeline CLI reports the cause in one line. With --debug
# (PIPELINE_DEBUG=1) Spark's own defaults are kept and everything is logged.
_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = error
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
logger.parquet.name = org.apache.parquet.CorruptStatistics
logger.parquet.level = error
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = off
"""


def log4j2_file() -> str:
    """Path of the Log4j 2 properties the local JVM is started with (written once, under
    the temporary folder, named by its content's hash)."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(_LOG4J2.encode()).hexdigest()[:12]
    path = os.path.join(tempfile.gettempdir(), f"spark-gpu-pipeline-log4j2-{digest}.properties")
    if not os.path.isfile(path):
        atomic_write(path, _LOG4J2)
    return path


def _quiet_logging(settings: dict[str, str]) -> None:
    """Start the JVM with :data:`_LOG4J2` unless debugging or the config names its own."""
    if os.environ.get("PIPELINE_DEBUG", "").strip().lower() not in ("", "0", "false", "no"):
        return
    options = settings.get("spark.driver.extraJavaOptions", "")
    if "log4j2.configurationFile" in options or "log4j.configuration" in options:
        return
    opt = f"-Dlog4j2.configurationFile=file:{log4j2_file()}"
    settings["spark.driver.extraJavaOptions"] = f"{options} {opt}".strip()


def _class_data_sharing(settings: dict[str, str], enabled: bool) -> None:
    """Start the JVM with the class-data sharing archive, when there is a usable one
    (:mod:`pipeline.spark.cds`)."""
    from pipeline.spark import cds

    flags = cds.java_options(settings, enabled)
    if flags:
        options = settings.get("spark.driver.extraJavaOptions", "")
        settings["spark.driver.extraJavaOptions"] = f"{options} {flags}".strip()


def build_spark_session(cfg: SparkConfig) -> SparkSession:
    """Return a SparkSession configured from ``cfg`` (or the one already running).

    Locally this starts the JVM with ``SPARK_LOCAL_IP`` and the driver host/bind address set
    to ``cfg.bind_address`` (127.0.0.1 by default), so the driver, the block manager and
    the web UI listen on loopback only. Under spark-submit the JVM already exists and the
    master and addresses are those spark-submit was given.

    If a session is already active in this process it is returned as is: Spark allows one
    SparkContext per JVM, and static settings such as the master cannot change after
    start-up.

    Raises:
        RuntimeError: Java cannot be started (from PySpark's launcher), with its message.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    submitted = under_spark_submit()
    if not submitted:
        # Read by the JVM at start-up: web UI and any other bind-to-local-host service.
        os.environ["SPARK_LOCAL_IP"] = cfg.bind_address
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    settings = session_settings(cfg, submitted=submitted)
    if not submitted:
        _quiet_logging(settings)
        _class_data_sharing(settings, cfg.class_data_sharing)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    return spark
