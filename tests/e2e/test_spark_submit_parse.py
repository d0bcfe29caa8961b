"""jobs/parse_dump.py under a real ``spark-submit --master local[2]``, driver on loopback.

The command is the runbook in the job's docstring. Its output must be complete
(``_SUCCESS``), account for every page SOURCES.md lists, and hold the same Parquet bytes
as an in-process :func:`pipeline.spark.parse_stage.run_parse` of the same input and config.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.spark.parse_stage import run_parse
from pipeline.stage_config import load_config
from tests.support.cluster import SPARK_SUBMIT, submit_argv
from tests.support.samples import expected_page_counts

ROOT = Path(__file__).resolve().parents[2]
DUMP = "elwikivoyage-pages-articles-multistream.xml-p2566p2583.bz2"
# Small enough that the 4 page streams of this dump become several tasks.
OVERRIDES = ("parse.split_bytes=4000", "spark.ui_enabled=false")


def spark_submit(dump: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Run the job's runbook command; returns the finished process."""
    env = dict(os.environ)
    # Never reuse this test process's JVM; use pyspark's own Spark and its default log4j
    # config (INFO at start-up: the addresses checked below are read from that log).
    for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "SPARK_HOME", "SPARK_CONF_DIR"):
        env.pop(key, None)
    env.update(
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    argv = submit_argv(
        "local[2]",
        ROOT / "jobs" / "parse_dump.py",
        ["conf/local.yaml", "--input", str(dump), "--out", str(out), *OVERRIDES],
        archive=None,
    )
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_parse_dump_under_spark_submit(spark, wiki_data: Path, tmp_path: Path) -> None:
    assert SPARK_SUBMIT.is_file(), f"pyspark ships bin/spark-submit; not found at {SPARK_SUBMIT}"
    dump = wiki_data / DUMP
    out = tmp_path / "submitted" / "pages"
    proc = spark_submit(dump, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "17 pages from 1 file(s) in" in proc.stdout, proc.stdout

    # Everything the driver listened on is loopback (Spark logs each service's address).
    addresses = re.findall(r"(?:Server created on|Start Jetty) ([^\s:]+):\d+", proc.stderr)
    assert addresses and set(addresses) == {"127.0.0.1"}, addresses
    assert "SparkUI" not in proc.stderr  # spark.ui_enabled=false reached the session

    assert (out / "_SUCCESS").is_file()
    stats = json.loads((out / "_stats.json").read_text())
    expected = expected_page_counts(wiki_data)[DUMP]
    assert expected == 17
    totals = stats["totals"]
    assert totals["pages"] == totals["rows"] == expected
    assert totals["namespaces"] == {"0": 16, "14": 1}  # SOURCES.md: 0:16, 14:1
    assert totals["status"]["ok"] == 16 and totals["status"]["namespace"] == 1
    assert stats["tasks"] >= 3 and len(stats["files"]) == stats["tasks"]

    # The same input and config in this process (the session-scoped local[2] Spark).
    local_out = tmp_path / "in_process" / "pages"
    cfg = load_config(
        str(ROOT / "conf" / "local.yaml"),
        [f"parse.input={json.dumps([str(dump)])}", f"parse.out={local_out}", *OVERRIDES],
    )
    local = run_parse(cfg, progress=False)
    assert local["files"] == stats["files"]
    assert local["totals"] == totals
    submitted_rows = pq.read_table([str(out / f) for f in stats["files"]]).to_pylist()
    local_rows = pq.read_table([str(local_out / f) for f in local["files"]]).to_pylist()
    assert submitted_rows == local_rows
    for name in stats["files"]:  # tasks write deterministic Parquet: same bytes
        assert (out / name).read_bytes() == (local_out / name).read_bytes(), name
