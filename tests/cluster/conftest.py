"""The cluster tier: one Spark standalone cluster on 127.0.0.1 for the whole test session.

A master and one worker with 2 cores (the daemons shipped inside pyspark), started once
and stopped by their process ids at the end, also when tests fail. The ETL archive
(``scripts/package.sh``) is built once and reused while its inputs do not change.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psutil
import pytest

from pipeline.spark.standalone import StandaloneCluster, standalone_cluster
from tests.support.cluster import ROOT, failure, spark_submit

EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
# Small shards for the hybrid training test; several shards so that the byte comparison
# covers the per-task files and their order.
FEATURISE = (
    "featurise.vocab_size=2000",
    "featurise.block_size=32",
    "model.block_size=32",
    "featurise.shard_bytes=1048576",
    "spark.ui_enabled=false",
)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """The loopback standalone cluster: ``cluster.master_url`` is ``spark://127.0.0.1:PORT``."""
    with standalone_cluster(tmp_path_factory.mktemp("standalone"), cores=2) as c:
        pids = [p.pid for p in c.processes()]
        yield c
    # The executors' folders hold an unpacked archive (~400 MB) each; keep only their logs.
    for path in (c.base_dir / "work").glob("app-*/*/*"):
        if path.name in ("stdout", "stderr"):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    assert not alive, f"Spark daemons outlived the cluster: {alive}"


@pytest.fixture(scope="session")
def etl_archive() -> Path:
    """``env.tar.gz`` from ``scripts/package.sh`` (rebuilt only when its inputs changed)."""
    proc = subprocess.run(
        ["bash", "scripts/package.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, failure(proc)
    assert "--archives" in proc.stdout and "environment" in proc.stdout, proc.stdout
    return ROOT / "env.tar.gz"


@pytest.fixture(scope="session")
def en_pages(spark, wiki_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The English sample parsed in this process (local Spark), as a ``file://`` URI."""
    from pipeline.spark.parse_stage import run_parse
    from pipeline.stage_config import load_config

    out = tmp_path_factory.mktemp("en") / "pages"
    cfg = load_config(
        str(ROOT / "conf" / "local.yaml"),
        [f"parse.input=[{wiki_data / EN}]", f"parse.out={out}", "spark.ui_enabled=false"],
    )
    run_parse(cfg, progress=False)
    return f"file://{out}"


@pytest.fixture(scope="session")
def cluster_shards(
    cluster: StandaloneCluster, etl_archive: Path, en_pages: str, tmp_path_factory
) -> Path:
    """Shards of ``en_pages`` made by jobs/featurise.py submitted to the cluster with the
    ETL archive (``file://`` URIs in and out)."""
    out = tmp_path_factory.mktemp("cluster_featurise") / "shards"
    run = spark_submit(
        cluster,
        ROOT / "jobs" / "featurise.py",
        ["--pages", en_pages, "--out", f"file://{out}", *FEATURISE],
        archive=etl_archive,
    )
    assert run.proc.returncode == 0, failure(run.proc)
    assert "pipeline featurise: 106 pages" in run.proc.stdout, run.proc.stdout
    assert run.listening and not run.beyond_loopback(), run.beyond_loopback()
    return out
