"""``pipeline run`` end to end on the real English sample: incremental re-runs, --force,
the lock, a failing stage named in the exit, and the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.run import LOCK, RunError, RunLock
from tests.support.mirror import Mirror, serve, status_json

ROOT = Path(__file__).resolve().parents[2]
EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DATE = "20260101"
MIRRORED = f"enwiki-{DATE}-pages-articles.xml.bz2"  # EN under its name on the mirror
TINY = [
    "train.max_steps=6",
    "train.eval_every=3",
    "train.checkpoint_every=3",
    "train.eval_batches=2",
    "featurise.vocab_size=2000",
    "spark.ui_enabled=false",
]


def pipeline_run(work: Path, dump: Path | None, *extra: str) -> subprocess.CompletedProcess:
    """``pipeline run`` on ``dump``, or with ``dump=None`` on a wiki named in ``extra``."""
    source = ["--dump", str(dump)] if dump is not None else []
    cmd = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "run",
        "conf/local.yaml",
        *source,
        "--work-dir",
        str(work),
        *TINY,
        *extra,
    ]
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def stage_lines(out: str) -> dict[str, str]:
    lines = {}
    for line in out.splitlines():
        for stage in ("parse", "featurise", "train"):
            if line.startswith(f"pipeline run: {stage}: "):
                lines[stage] = line.split(": ", 2)[2]
    return lines


@pytest.fixture(scope="module")
def mirror(wiki_data: Path, tmp_path_factory) -> Iterator[Mirror]:
    """The English sample published as enwiki's 20260101 pages-articles dump, served in
    Wikimedia's layout from 127.0.0.1."""
    root = tmp_path_factory.mktemp("mirror")
    dated = root / "enwiki" / DATE
    dated.mkdir(parents=True)
    shutil.copy(wiki_data / EN, dated / MIRRORED)
    status_json(dated, {"articlesdump": ("done", [MIRRORED])})
    with serve(root) as server:
        yield server


def from_mirror(mirror: Mirror) -> list[str]:
    """Flags of a run that downloads its dump from ``mirror`` (no --dump)."""
    return [
        "--wiki",
        "enwiki",
        "--date",
        DATE,
        "download.kind=pages-articles",
        f"download.mirror={mirror.url}",
        "download.retries=1",
        "download.backoff_s=0",
    ]


@pytest.fixture(scope="module")
def first_run(mirror: Mirror, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("run") / "work"
    return work, pipeline_run(work, None, *from_mirror(mirror))


def test_first_run_downloads_then_makes_every_stage_a_sample_and_a_report(first_run) -> None:
    work, proc = first_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    dump = work / "dumps" / "enwiki" / DATE / MIRRORED
    assert f"pipeline run: download: enwiki {DATE} pages-articles" in proc.stdout
    assert f"{MIRRORED}: downloaded" in proc.stderr and dump.is_file()
    assert not list(dump.parent.glob("*.part"))
    stats = json.loads((work / "pages" / "_stats.json").read_text())
    assert [Path(f["file"]).name for f in stats["inputs"]] == [MIRRORED]
    assert {k: v.split(" ")[0] for k, v in stage_lines(proc.stdout).items()} == {
        "parse": "running",
        "featurise": "running",
        "train": "running",
    }
    assert "a generated sample:" in proc.stdout
    sample = proc.stdout.split("a generated sample:\n")[1].split("\npipeline run: report")[0]
    assert sample.strip()  # a 6-step model may stop early at <|endoftext|>
    report = work / "runs" / "gpt" / "report" / "report.html"
    assert f"report: {report}" in proc.stdout
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 5  # pages, curate, tokens, loss, throughput
    assert "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d" in html  # dump
    for stage_dir in ("pages", "shards", "runs/gpt"):
        fp = json.loads((work / stage_dir / "_fingerprint.json").read_text())
        assert len(fp["sha256"]) == 64 and fp["code"]
    model = json.loads((work / "runs/gpt/model/config.json").read_text())
    assert model["step"] == 6
    assert not (work / LOCK).exists()


def test_second_run_is_up_to_date_and_a_config_change_reruns_from_its_stage(
    first_run, mirror: Mirror
) -> None:
    work, first = first_run
    assert first.returncode == 0
    again = pipeline_run(work, None, *from_mirror(mirror))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{MIRRORED}: up to date" in again.stderr  # re-checked against its sha1, not fetched
    assert all(v.startswith("up to date") for v in stage_lines(again.stdout).values())
    assert "ran nothing (every stage up to date)" in again.stdout
    # the downloaded file given with --dump is the same input: parse stays up to date
    changed = pipeline_run(
        work,
        work / "dumps" / "enwiki" / DATE / MIRRORED,
        "featurise.block_size=64",
        "model.block_size=64",
    )
    assert changed.returncode == 0, changed.stderr[-3000:]
    lines = stage_lines(changed.stdout)
    assert lines["parse"].startswith("up to date")
    assert lines["featurise"].startswith("running") and lines["train"].startswith("running")
    assert "moved the old run to" in changed.stdout
    assert json.loads((work / "shards/manifest.json").read_text())["block_size"] == 64


def test_force_reruns_from_the_named_stage(first_run) -> None:
    work, _ = first_run
    dump = work / "dumps" / "enwiki" / DATE / MIRRORED
    proc = pipeline_run(
        work, dump, "featurise.block_size=64", "model.block_size=64", "--force", "train"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = stage_lines(proc.stdout)
    assert lines["parse"].startswith("up to date") and lines["featurise"].startswith("up to")
    assert lines["train"].startswith("running")


def test_a_failing_stage_is_named_and_exits_non_zero(wiki_data: Path, tmp_path: Path) -> None:
    bad = wiki_data / "edge-cases"
    truncated = next(p for p in bad.iterdir() if "TRUNCATED" in p.name)
    proc = pipeline_run(tmp_path / "work", truncated)
    assert proc.returncode == 1
    assert "pipeline run: stage parse failed:" in proc.stderr
    assert truncated.name in proc.stderr
    assert not (tmp_path / "work" / "pages").exists()


def test_a_failing_download_is_named_and_nothing_is_parsed(mirror: Mirror, tmp_path: Path) -> None:
    flags = [f if f != DATE else "20991231" for f in from_mirror(mirror)]
    proc = pipeline_run(tmp_path / "work", None, *flags)
    assert proc.returncode == 1
    assert "pipeline run: stage download failed:" in proc.stderr and "20991231" in proc.stderr
    assert not (tmp_path / "work" / "pages").exists()


def test_no_dump_is_a_clear_error(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--work-dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "no dump given" in proc.stderr


HOLD = """
import sys, time
from pathlib import Path
from pipeline.run import RunLock
with RunLock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_lock_refuses_a_live_run_and_clears_a_dead_ones(tmp_path: Path, capsys) -> None:
    lock = tmp_path / LOCK
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock), "60"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=f"another pipeline run holds .*pid.*{holder.pid}"):
            RunLock(lock).__enter__()
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, its flock goes with the process
        holder.wait()
    assert json.loads(lock.read_text())["pid"] == holder.pid
    with RunLock(lock):
        assert f'"pid": {os.getpid()}' in lock.read_text()
    assert "cleared a stale lock" in capsys.readouterr().out
    assert not lock.exists()
