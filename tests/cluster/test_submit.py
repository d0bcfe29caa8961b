"""jobs/parse_dump.py, jobs/curate.py and jobs/featurise.py through spark-submit on the
loopback cluster.

Submitted with the ETL archive (``--archives env.tar.gz#environment``): the executors run
its Python. Their outputs must hold the same bytes as local mode in this process; only
the recorded config's ``spark.master`` may differ (it names the master). Inputs and
outputs are ``file://`` URIs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from pipeline.shards import format as fmt
from pipeline.spark.curate_stage import run_curate
from pipeline.spark.featurise_stage import run_featurise
from pipeline.spark.parse_stage import run_parse
from pipeline.spark.session import session_settings
from pipeline.stage_config import SparkConfig, load_config
from tests.cluster.conftest import FEATURISE
from tests.support.cluster import ROOT, digests, failure, spark_submit, without_master
from tests.support.curate_data import COPIES, with_copies

DUMP = "elwikivoyage-pages-articles-multistream.xml-p2566p2583.bz2"
# Small enough that the 4 page streams of this dump become several tasks.
PARSE = ("parse.split_bytes=4000", "spark.ui_enabled=false")


def test_under_spark_submit_the_executor_python_is_left_to_spark_submit() -> None:
    assert "spark.pyspark.python" not in session_settings(SparkConfig(), submitted=True)
    assert "spark.pyspark.python" in session_settings(SparkConfig())


def test_executors_run_the_archive_python(cluster, etl_archive: Path) -> None:
    run = spark_submit(
        cluster, ROOT / "tests" / "cluster" / "executor_probe.py", [], archive=etl_archive
    )
    assert run.proc.returncode == 0, failure(run.proc)
    line = next(x for x in run.proc.stdout.splitlines() if x.startswith("PROBE "))
    report = json.loads(line.removeprefix("PROBE "))
    assert report["master"] == cluster.master_url
    assert report["driver"]["executable"] == sys.executable  # the driver: this venv
    assert report["executor_python"] == "./environment/bin/python"
    work = str(cluster.base_dir / "work")
    for task in report["tasks"]:
        # The archive was unpacked in the executor's folder on the worker and its Python
        # (a venv-pack link to this machine's interpreter) runs the tasks.
        assert task["cwd"].startswith(work + "/app-"), task
        assert task["prefix"] == task["cwd"] + "/environment", task
        assert task["pipeline"].startswith(task["prefix"] + "/lib/"), task
        assert task["mwparserfromhell_c"] and not task["torch"], task
    assert not run.beyond_loopback(), run.beyond_loopback()


def test_parse_job_matches_local_mode(cluster, etl_archive, spark, wiki_data, tmp_path) -> None:
    dump = f"file://{(wiki_data / DUMP).resolve()}"
    out = tmp_path / "pages"  # both runs write here, one after the other
    run = spark_submit(
        cluster,
        ROOT / "jobs" / "parse_dump.py",
        [
            "conf/local.yaml",
            "--input",
            dump,
            "--out",
            f"file://{out}",
            *PARSE,
            f"spark.master={cluster.master_url}",
        ],  # recorded in _stats.json, truthfully
        archive=etl_archive,
    )
    assert run.proc.returncode == 0, failure(run.proc)
    assert "17 pages from 1 file(s) in" in run.proc.stdout, run.proc.stdout
    assert not run.beyond_loopback(), run.beyond_loopback()
    submitted = out.rename(tmp_path / "submitted")

    cfg = load_config(
        str(ROOT / "conf" / "local.yaml"),
        [f"parse.input=[{dump}]", f"parse.out=file://{out}", *PARSE],
    )
    run_parse(cfg, progress=False)
    local = out.rename(tmp_path / "local")

    stats = json.loads((submitted / "_stats.json").read_text())
    assert stats["totals"]["pages"] == stats["totals"]["rows"] == 17
    assert stats["tasks"] >= 3 and len(stats["files"]) == stats["tasks"]
    assert stats["config"]["spark"]["master"] == cluster.master_url
    ours, theirs = digests(submitted), digests(local)
    assert ours.keys() == theirs.keys()
    assert {"_SUCCESS", "_stats.json", "_config.yaml", "part-00002.parquet"} <= ours.keys()
    # Every file has the same bytes but the two that record the config, whose only
    # difference is spark.master.
    assert {k for k in ours if ours[k] != theirs[k]} == {"_stats.json", "_config.yaml"}
    assert without_master((submitted / "_stats.json").read_text()) == without_master(
        (local / "_stats.json").read_text()
    )
    configs = [yaml.safe_load((d / "_config.yaml").read_text()) for d in (submitted, local)]
    assert [c["spark"].pop("master") for c in configs] == [cluster.master_url, "local[2]"]
    assert configs[0] == configs[1]


def test_curate_job_matches_local_mode(cluster, etl_archive, spark, en_pages, tmp_path) -> None:
    # The English sample plus exact and edited copies of its articles: dedup, LSH and
    # components run on the cluster's executors (py3langid from the archive).
    pages = with_copies(Path(en_pages.removeprefix("file://")), tmp_path / "pages")
    out = tmp_path / "curated"  # both runs write here, one after the other
    args = ["--pages", f"file://{pages}", "--out", f"file://{out}", "spark.ui_enabled=false"]
    run = spark_submit(
        cluster,
        ROOT / "jobs" / "curate.py",
        ["conf/local.yaml", *args, f"spark.master={cluster.master_url}"],
        archive=etl_archive,
    )
    assert run.proc.returncode == 0, failure(run.proc)
    assert "pipeline curate:" in run.proc.stdout, run.proc.stdout
    assert not run.beyond_loopback(), run.beyond_loopback()
    submitted = out.rename(tmp_path / "submitted")

    cfg = load_config(
        str(ROOT / "conf" / "local.yaml"),
        [f"curate.pages=file://{pages}", f"curate.out=file://{out}", "spark.ui_enabled=false"],
    )
    run_curate(cfg, progress=False)
    local = out.rename(tmp_path / "local")

    stats = json.loads((submitted / "_stats.json").read_text())
    assert stats["status"]["duplicate"] >= COPIES and stats["status"]["near_duplicate"] >= 1
    ours, theirs = digests(submitted), digests(local)
    assert ours.keys() == theirs.keys()
    # Same bytes in every file (_stats.json records only the curate section) but the
    # resolved config, whose only difference is spark.master.
    assert {k for k in ours if ours[k] != theirs[k]} == {"_config.yaml"}
    configs = [yaml.safe_load((d / "_config.yaml").read_text()) for d in (submitted, local)]
    assert [c["spark"].pop("master") for c in configs] == [cluster.master_url, "local[2]"]
    assert configs[0] == configs[1]


def test_featurise_job_matches_local_mode(
    cluster_shards: Path, en_pages: str, spark, tmp_path: Path
) -> None:
    out = tmp_path / "shards"
    cfg = load_config(
        overrides=[f"featurise.pages={en_pages}", f"featurise.out=file://{out}", *FEATURISE]
    )
    run_featurise(cfg, progress=False)
    ours, theirs = digests(cluster_shards), digests(out)
    assert ours == theirs  # shards, manifest.json, tokenizer.json, _SUCCESS: same bytes
    manifest = fmt.load_manifest(f"file://{cluster_shards}")
    assert manifest.block_size == 32
    assert sum(k.startswith("train/") for k in ours) >= 2
