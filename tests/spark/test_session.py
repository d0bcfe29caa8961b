"""Local Spark runtime: a real DataFrame job on real dumps, loopback-only listeners."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from pipeline.spark.session import build_spark_session, session_settings
from pipeline.stage_config import SparkConfig

# <page> counts of the six split_bz2 parts, from ../shared/data/wiki/SOURCES.md.
SPLIT_PARTS = {
    "elwikivoyage-pages-articles.xml-p1p358.bz2": 244,
    "elwikivoyage-pages-articles.xml-p359p1020.bz2": 439,
    "elwikivoyage-pages-articles.xml-p1021p1365.bz2": 275,
    "elwikivoyage-pages-articles.xml-p1366p1589.bz2": 171,
    "elwikivoyage-pages-articles.xml-p1590p2034.bz2": 386,
    "elwikivoyage-pages-articles.xml-p2035p2689.bz2": 525,
}
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_dataframe_job_counts_pages_of_real_multipart_dump(spark, wiki_data: Path) -> None:
    """Hadoop bz2 decoding + a grouped aggregation over the 6 real dump parts."""
    from pyspark.sql import functions as F

    lines = spark.read.text(str(wiki_data / "elwikivoyage-split"))
    per_file = (
        lines.where(F.trim("value") == "<page>")
        .groupBy(F.element_at(F.split(F.input_file_name(), "/"), -1).alias("file"))
        .count()
        .collect()
    )
    assert {r["file"]: r["count"] for r in per_file} == SPLIT_PARTS
    # The same parts together are the 2040 pages of the single-file sample.
    whole = spark.read.text(str(wiki_data / "elwikivoyage-sample-pages-articles.xml.bz2"))
    assert whole.where(F.trim("value") == "<page>").count() == sum(SPLIT_PARTS.values()) == 2040


def test_map_in_arrow_runs_python_on_executors(spark, wiki_data: Path) -> None:
    """Arrow batches reach a Python function on the executors and come back."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def count_titles(batches):
        for batch in batches:
            titles = pc.sum(pc.match_substring(batch.column("value"), "<title>")).as_py() or 0
            yield pa.RecordBatch.from_pydict({"titles": [titles]})

    df = spark.read.text(str(wiki_data / "enwiki-10k.xml.bz2")).repartition(2)
    out = df.mapInArrow(count_titles, "titles long").agg({"titles": "sum"}).collect()
    assert out[0][0] == 196  # <page> count of enwiki-10k.xml.bz2 in SOURCES.md


def test_session_is_bound_to_loopback_with_arrow_and_utc(spark) -> None:
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.master") == "local[2]"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.ui.enabled") == "false"


def test_factory_returns_the_running_session(spark) -> None:
    assert build_spark_session(SparkConfig(master="local[1]")) is spark


def _listeners(pid: int) -> list[tuple[str, int, str]]:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    out = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        out += [(c.laddr.ip, c.laddr.port, p.name()) for c in conns if c.status == "LISTEN"]
    return out


def test_nothing_listens_beyond_loopback_with_ui_on(tmp_path: Path) -> None:
    """A fresh driver with the web UI on: every listening socket of it and its JVM is
    on loopback. Run in a subprocess because a JVM's addresses are fixed at start-up."""
    script = textwrap.dedent(
        """
        import json, os, sys, psutil
        from pipeline.spark.session import build_spark_session
        from pipeline.stage_config import SparkConfig
        spark = build_spark_session(SparkConfig(master="local[1]", ui_enabled=True))
        spark.range(10).count()
        procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
        found = []
        for p in procs:
            for c in p.net_connections(kind="inet"):
                if c.status == "LISTEN":
                    found.append([c.laddr.ip, c.laddr.port, p.name()])
        print(json.dumps({"ui": spark.sparkContext.uiWebUrl, "listen": found}))
        spark.stop()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ui"].startswith("http://127.0.0.1:"), result["ui"]
    ports = {port for _, port, _ in result["listen"]}
    assert int(result["ui"].rsplit(":", 1)[1]) in ports  # the UI really was listening
    assert [x for x in result["listen"] if x[0] not in LOOPBACK] == []


def test_running_jvm_listens_on_loopback_only(spark) -> None:
    import os

    found = _listeners(os.getpid())
    assert found, "expected the driver JVM to listen somewhere"
    assert [x for x in found if x[0] not in LOOPBACK] == []


def test_settings_keep_loopback_over_user_conf() -> None:
    cfg = SparkConfig(conf={"spark.driver.host": "0.0.0.0", "spark.executor.memory": "3g"})
    settings = session_settings(cfg)
    assert settings["spark.driver.host"] == "127.0.0.1"
    assert settings["spark.driver.bindAddress"] == "127.0.0.1"
    assert settings["spark.executor.memory"] == "3g"
    assert settings["spark.master"] == "local[*]"


def test_under_spark_submit_master_and_address_come_from_submit() -> None:
    settings = session_settings(SparkConfig(master="local[2]"), submitted=True)
    assert "spark.master" not in settings
    assert "spark.driver.host" not in settings


@pytest.mark.parametrize("bad", ["", "0"])
def test_bad_bind_address_or_master(bad: str) -> None:
    with pytest.raises(ValueError):
        SparkConfig(master=bad or "local[*]", bind_address=bad)
