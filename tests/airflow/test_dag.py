"""The scheduling DAG (dags/spark_pipeline.py) under a real Apache Airflow 3.

``.venv-airflow`` is made by ``scripts/setup_airflow.sh`` when missing (about a minute;
cached afterwards by a stamp of its pins). Airflow gets a temporary home with SQLite in
pytest's tmp folder (``airflow db migrate``), the Spark connection ``spark_local`` from an
environment variable (master ``local[2]``), and runs the whole DAG with ``airflow dags
test``: the download task fetches the real English sample from a mirror on 127.0.0.1 (the
sample published as enwiki's 20260101 pages-articles dump), parse, curate and featurise are
submitted with the project's ``spark-submit``, a tiny model trains with 2 Horovod ranks,
and the report is written. A run whose featurise fails leaves the pages, the curated table,
the previous shards and the run exactly as they were; a run after it finds every stage up
to date.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support.mirror import Mirror, serve, status_json
from tests.support.samples import expected_page_counts

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DATE = "20260101"
MIRRORED = f"enwiki-{DATE}-pages-articles.xml.bz2"
# A tiny training config over conf/local.yaml: 2 ranks, 6 steps of a 2-layer model.
TINY = [
    "train.max_steps=6",
    "train.eval_every=3",
    "train.checkpoint_every=3",
    "train.eval_batches=2",
    "train.global_batch=8",
    "train.micro_batch=4",
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=32",
    "model.block_size=64",
    "featurise.block_size=64",
    "featurise.vocab_size=2000",
    "spark.ui_enabled=false",
    "download.retries=1",
    "download.backoff_s=0",
]
STAGES = ("parse", "curate", "featurise", "train")
# The first test builds .venv-airflow when missing and runs the whole DAG: pytest's default
# 600 s per test is too short for that on 2 busy cores.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """The environment of every airflow command: the venv made (or found up to date), a
    migrated SQLite home in tmp, this repository's dags/ and the local Spark connection."""
    setup = subprocess.run(
        ["bash", "scripts/setup_airflow.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-4000:]
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYSPARK"))}
    env.pop("SPARK_HOME", None)
    env.pop("SPARK_CONF_DIR", None)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW_CONN_SPARK_LOCAL=json.dumps({"conn_type": "spark", "host": "local[2]"}),
        SPARK_PIPELINE_RETRY_DELAY_S="1",
    )
    migrate = airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stdout[-3000:]
    assert (home / "airflow.db").is_file()
    return env


def airflow(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``.venv-airflow/bin/airflow ARGS``; stdout and stderr together in ``.stdout``."""
    return subprocess.run(
        [str(AIRFLOW), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def mirror(wiki_data: Path, tmp_path_factory) -> Iterator[Mirror]:
    """The English sample published as enwiki's 20260101 pages-articles dump on 127.0.0.1."""
    root = tmp_path_factory.mktemp("mirror")
    dated = root / "enwiki" / DATE
    dated.mkdir(parents=True)
    shutil.copy(wiki_data / EN, dated / MIRRORED)
    status_json(dated, {"articlesdump": ("done", [MIRRORED])})
    with serve(root) as server:
        yield server


def dag_test(env: dict[str, str], day: int, mirror: Mirror, work: Path, *extra: str):
    """``airflow dags test spark_pipeline 2026-01-DAY`` with the tiny config; the date param
    is left empty, so the dump date is the run's logical date, 2026-01-01's for day 1."""
    conf = {
        "wiki": "enwiki",
        "date": DATE if day != 1 else None,
        "kind": "pages-articles",
        "mirror": mirror.url,
        "work_dir": str(work),
        "overrides": [*TINY, *extra],
    }
    day_ = f"2026-01-{day:02d}"
    return airflow(
        env, "dags", "test", "spark_pipeline", day_, "-c", json.dumps(conf), timeout=1500
    )


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (mtime_ns, sha256)}`` of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def lines(log: str, pattern: str) -> list[str]:
    return [line for line in log.splitlines() if re.search(pattern, line)]


@pytest.fixture(scope="module")
def first_run(airflow_env, mirror: Mirror, tmp_path_factory):
    """The first run of the DAG, and a snapshot of every output folder it left."""
    work = tmp_path_factory.mktemp("dag") / "work"
    code = code_hashes()
    proc = dag_test(airflow_env, 1, mirror, work)
    if code_hashes() != code:
        code = {}  # edited while the DAG ran: unknown which code made the outputs
    folders = ("pages", "curated", "shards", "runs/gpt/model", "runs/gpt/checkpoints")
    return work, proc, {d: snapshot(work / d) for d in folders if (work / d).is_dir()}, code


def code_hashes() -> dict[str, str]:
    """The code hash of each stage (part of its fingerprint, see pipeline.run)."""
    from pipeline.run import code_hash

    return {stage: code_hash(stage) for stage in STAGES}


def skip_if_code_changed(code: dict[str, str]) -> None:
    """Stages are rightly re-run when their code changed since the first run: that happens
    only in a working tree being edited while the tests run, never in CI's clean clone."""
    if code_hashes() != code:
        pytest.skip("the project's code changed since the first DAG run (edited meanwhile)")


def test_the_dag_imports_without_errors(airflow_env) -> None:
    errors = airflow(airflow_env, "dags", "list-import-errors", "--local", "-o", "json")
    assert errors.returncode == 0, errors.stdout[-3000:]
    assert "spark_pipeline" not in errors.stdout and "Traceback" not in errors.stdout
    tasks = airflow(airflow_env, "tasks", "list", "spark_pipeline")
    assert tasks.returncode == 0, tasks.stdout[-3000:]
    listed = {t for t in tasks.stdout.split() if re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", t)}
    assert {
        "download",
        "parse.check",
        "parse.spark_submit",
        "parse.record",
        "curate.check",
        "curate.spark_submit",
        "curate.record",
        "featurise.check",
        "featurise.spark_submit",
        "featurise.record",
        "train.check",
        "train.run",
        "report",
    } <= listed


def test_the_whole_dag_downloads_parses_featurises_trains_and_reports(
    first_run, mirror: Mirror, wiki_data: Path
) -> None:
    work, proc, _, _ = first_run
    log = proc.stdout
    assert proc.returncode == 0, log[-6000:]
    assert "DagRun Finished" in log and "state=success" in log
    # download: fetched from the mirror on 127.0.0.1 into WORK/dumps/enwiki/20260101/
    dump = work / "dumps" / "enwiki" / DATE / MIRRORED
    assert dump.read_bytes() == (wiki_data / EN).read_bytes()
    assert mirror.gets(MIRRORED) and mirror.url.startswith("http://127.0.0.1:")
    # parse, curate and featurise went through spark-submit of the project's .venv, local[2],
    # the driver on loopback
    submits = lines(log, r"Spark-Submit cmd: ")
    assert len(submits) == 3, submits
    for job, line in zip(("parse_dump.py", "curate.py", "featurise.py"), submits, strict=True):
        assert f"{ROOT}/.venv/bin/spark-submit --master local[2]" in line
        assert "spark.driver.bindAddress=127.0.0.1" in line and f"jobs/{job}" in line
    pages = work / "pages"
    assert (pages / "_SUCCESS").is_file()
    assert pq.read_table(pages).num_rows == expected_page_counts(wiki_data)[EN] == 206
    assert pq.read_table(work / "curated").num_rows == 206  # one row per page
    manifest = json.loads((work / "shards" / "manifest.json").read_text())
    assert manifest["block_size"] == 64 and manifest["totals"]["sequences"] > 0
    # train: 2 Horovod ranks, exported at step 6; the report's provenance names the shards
    run = work / "runs" / "gpt"
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 6
    assert lines(log, r"pipeline train: 2 rank\(s\)")
    html = (run / "report" / "report.html").read_text()
    shards_sha256 = hashlib.sha256((work / "shards" / "manifest.json").read_bytes()).hexdigest()
    assert f"manifest sha256 {shards_sha256}" in html
    assert html.count("data:image/png;base64,") >= 3  # tokens, loss, throughput
    assert lines(log, rf"report: {run}/report/report.html")
    for stage in STAGES:
        assert lines(log, rf"\] {stage}: to run -> "), stage


def test_a_failed_stage_leaves_earlier_outputs_untouched(
    first_run, airflow_env, mirror: Mirror, tmp_path: Path
) -> None:
    work, proc, _, code = first_run
    assert proc.returncode == 0, proc.stdout[-3000:]
    skip_if_code_changed(code)
    before = {d: snapshot(work / d) for d in ("pages", "curated", "shards", "runs")}
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")  # not a tokenizer: featurise fails, after its check said "to run"
    failed = dag_test(airflow_env, 2, mirror, work, f"featurise.tokenizer={bad}")
    skip_if_code_changed(code)
    log = failed.stdout
    assert failed.returncode != 0 or "state=failed" in log, log[-6000:]
    assert lines(log, r"\] parse: up to date \(") and lines(log, r"\] curate: up to date \(")
    assert lines(log, r"\] featurise: to run -> ")
    # featurise failed on both tries (retries=1); train and report never ran
    assert len(lines(log, r"Spark-Submit cmd: .*jobs/featurise.py")) == 2
    assert not lines(log, r"\] train: ") and not lines(log, r"report: .*report.html")
    assert {d: snapshot(work / d) for d in ("pages", "curated", "shards", "runs")} == before
    assert not [p for p in work.iterdir() if ".staging-" in p.name]


def test_a_rerun_finds_every_stage_up_to_date(first_run, airflow_env, mirror: Mirror) -> None:
    """The first run's parameters again (after the failed run of the test above, if it
    ran): every check skips its stage, no job is submitted, and no output changes."""
    work, proc, outputs, code = first_run
    assert proc.returncode == 0, proc.stdout[-3000:]
    skip_if_code_changed(code)
    again = dag_test(airflow_env, 3, mirror, work)
    skip_if_code_changed(code)
    log = again.stdout
    assert again.returncode == 0, log[-6000:]
    for stage in STAGES:
        assert lines(log, rf"\] {stage}: up to date \("), stage
    assert not lines(log, r"Spark-Submit cmd: ") and not lines(log, r"pipeline train: \d+ steps")
    assert {d: snapshot(work / d) for d in outputs} == outputs
    assert lines(log, r"report: .*/runs/gpt/report/report.html")  # the report still runs
    assert "state=success" in log
