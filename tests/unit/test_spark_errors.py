"""pipeline.spark.errors: the real cause of a failed Spark job, from the text Spark wraps
around the Python worker's traceback (no Spark needed: the texts are as Spark prints them)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from pipeline.errors import PipelineError, UsageError
from pipeline.spark.errors import cause_of, is_spark_error, summary, worker_exception
from tests.support.spark_errors import FRAMES, Py4JJavaError, dataframe_error, rdd_error


def test_disk_full_in_pyarrow_is_enospc() -> None:
    exc = rdd_error(
        "OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on "
        "device"
    )
    assert is_spark_error(exc)
    cause = cause_of(exc)
    assert isinstance(cause, OSError)
    assert cause.errno == errno.ENOSPC and cause.filename is None
    assert "No space left on device" in cause.strerror


def test_os_error_keeps_the_file() -> None:
    cause = cause_of(
        dataframe_error("PermissionError: [Errno 13] Permission denied: '/data/x.arrow'")
    )
    assert isinstance(cause, OSError)
    assert (cause.errno, cause.filename) == (errno.EACCES, "/data/x.arrow")
    cause = cause_of(
        rdd_error("OSError: [Errno 28] No space left on device: '/out/.s/p-0.parquet'")
    )
    assert isinstance(cause, OSError)
    assert (cause.errno, cause.filename) == (errno.ENOSPC, "/out/.s/p-0.parquet")


@pytest.mark.parametrize(
    ("line", "cls", "message"),
    [
        (
            "pipeline.wiki.xmlpages.DumpError: a.xml at line 3, uncompressed byte 9: broken",
            PipelineError,
            "a.xml at line 3, uncompressed byte 9: broken",
        ),
        ("pipeline.shards.format.ShardError: no rows", PipelineError, "no rows"),
        (
            "pipeline.config.ConfigError: train.np: expected int",
            UsageError,
            "train.np: expected int",
        ),
    ],
)
def test_pipeline_errors_keep_their_message(line: str, cls: type, message: str) -> None:
    cause = cause_of(rdd_error(line))
    assert type(cause) is cls and str(cause) == message


def test_the_last_exception_of_a_chain_is_the_cause() -> None:
    chained = (
        "KeyError: 'x'\n\nDuring handling of the above exception, another exception occurred:\n\n"
        f"Traceback (most recent call last):\n{FRAMES}"
        "pipeline.wiki.pages.PagesError: /p/part-00000.parquet: not a Parquet file"
    )
    cause = cause_of(dataframe_error(chained))
    assert isinstance(cause, PipelineError)
    assert str(cause) == "/p/part-00000.parquet: not a Parquet file"


def test_an_unknown_worker_exception_is_not_a_cause() -> None:
    exc = rdd_error("ZeroDivisionError: division by zero")
    assert cause_of(exc) is None
    assert summary(exc) == "ZeroDivisionError: division by zero"
    assert worker_exception(str(exc)) == ("ZeroDivisionError", "division by zero")


def test_java_side_causes() -> None:
    exc = Py4JJavaError(
        "An error occurred while calling o42.save.\n: java.io.IOException: No space left on "
        "device\n\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)\n"
    )
    cause = cause_of(exc)
    assert isinstance(cause, OSError) and cause.errno == errno.ENOSPC
    denied = Py4JJavaError(": java.nio.file.AccessDeniedException: /data/out/x\n\tat sun.nio.fs")
    cause = cause_of(denied)
    assert isinstance(cause, OSError)
    assert (cause.errno, cause.filename) == (errno.EACCES, "/data/out/x")
    oom = cause_of(Py4JJavaError(": java.lang.OutOfMemoryError: Java heap space\n\tat x"))
    assert isinstance(oom, PipelineError) and "spark.driver_memory" in str(oom)


def test_other_exceptions_are_not_spark_errors() -> None:
    assert not is_spark_error(ValueError("x"))
    assert not is_spark_error(OSError(28, "No space left on device"))
    assert cause_of(ValueError("no traceback here")) is None


def test_local_jvm_is_started_quiet_about_failed_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed task's stack traces are Spark's log lines; without --debug they are off."""
    from pipeline.spark import session

    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    settings = {"spark.driver.extraJavaOptions": "-Dx=1"}
    session._quiet_logging(settings)
    options = settings["spark.driver.extraJavaOptions"]
    assert options.startswith("-Dx=1 -Dlog4j2.configurationFile=file:")
    text = Path(options.split("file:", 1)[1]).read_text(encoding="utf-8")
    assert "logger.executor.level = off" in text and "rootLogger.level = warn" in text
    mine = {"spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=my.properties"}
    session._quiet_logging(mine)  # the user's own logging config wins
    assert mine == {"spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=my.properties"}
    monkeypatch.setenv("PIPELINE_DEBUG", "1")
    debug: dict[str, str] = {}
    session._quiet_logging(debug)  # --debug: Spark's own defaults, every log line
    assert debug == {}
